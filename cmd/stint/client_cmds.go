package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/agent"
	"github.com/stint-dev/stint/internal/core"
)

// maxTokenFile bounds token files read from stdin or disk.
const maxTokenFile = 64 << 10

// identityFlags find the caller's identity (internal/agent detects the
// platform's token source; --identity names one).
type identityFlags struct {
	opts           agent.IdentityOptions
	onBehalfOfFile string
}

func (f *identityFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.opts.Identity, "identity", "", "identity source: auto, "+strings.Join(agent.DetectOrder, ", ")+" (default $STINT_IDENTITY or auto)")
	cmd.Flags().StringVar(&f.opts.TokenFile, "identity-token-file", "", "file holding the workload's platform or stint token (default $STINT_IDENTITY_TOKEN_FILE)")
	cmd.Flags().StringVar(&f.opts.KubeTokenFile, "kube-token-file", "", "projected service-account token path (default $STINT_KUBE_TOKEN_FILE or "+agent.DefaultKubeTokenFile+")")
	cmd.Flags().StringVar(&f.opts.Audience, "identity-audience", "", "audience asked of GitHub Actions, GCP, Azure and SPIFFE (default $STINT_IDENTITY_AUDIENCE or "+agent.DefaultAudience+")")
	cmd.Flags().StringVar(&f.opts.GitLabVar, "gitlab-token-var", agent.DefaultGitLabVar, "variable holding the GitLab CI id_token")
	cmd.Flags().StringVar(&f.onBehalfOfFile, "on-behalf-of-file", "", "file holding the human's own token, when acting for one")
}

func readTokenFile(path string) (string, error) { return agent.ReadTokenFile(path) }

// source finds the identity source.
func (f *identityFlags) source() (agent.Source, error) { return agent.Detect(f.opts) }

func (f *identityFlags) token() (string, error) {
	s, err := f.source()
	if err != nil {
		return "", err
	}
	return s.Token(context.Background())
}

func (f *identityFlags) onBehalfOf() (string, error) {
	if f.onBehalfOfFile == "" {
		return "", nil
	}
	return readTokenFile(f.onBehalfOfFile)
}

func newTokenCmd(g *globals) *cobra.Command {
	var id identityFlags
	var audience, scope, actorFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Exchange a platform token for a stint token (RFC 8693)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := id.token()
			if err != nil {
				return err
			}
			req := client.ExchangeRequest{SubjectToken: tok, Audience: audience, Scope: scope}
			if actorFile != "" {
				if req.ActorToken, err = readTokenFile(actorFile); err != nil {
					return err
				}
			}
			res, err := g.client().Exchange(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.AccessToken)
			return nil
		},
	}
	id.add(cmd)
	cmd.Flags().StringVar(&audience, "audience", "", "audience of a jwt target role (none: a stint session token)")
	cmd.Flags().StringVar(&scope, "scope", "", "space-separated scopes (capped by the role)")
	cmd.Flags().StringVar(&actorFile, "actor-token-file", "", "the acting workload's token, when the subject is a human")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the whole RFC 8693 response")
	return cmd
}

func newCredsCmd(g *globals) *cobra.Command {
	var id identityFlags
	var ttl, format, scope string
	var sshFiles sshOut
	cmd := &cobra.Command{
		Use:   "creds TARGET/ROLE",
		Short: "Get a credential under a lease",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			gr, err := core.ParseGrant(args[0])
			if err != nil {
				return err
			}
			tok, err := id.token()
			if err != nil {
				return err
			}
			obo, err := id.onBehalfOf()
			if err != nil {
				return err
			}
			req := client.CredentialRequest{Target: gr.Target, Role: gr.Role, TTL: ttl, OnBehalfOf: obo, Scope: scope}
			if err := sshFiles.prepare(format, &req); err != nil {
				return err
			}
			c, err := g.client().Credentials(cmd.Context(), tok, req)
			if err != nil {
				return err
			}
			if format == "ssh" {
				return sshFiles.write(cmd.OutOrStdout(), c)
			}
			return printCredential(cmd.OutOrStdout(), format, c)
		},
	}
	id.add(cmd)
	cmd.Flags().StringVar(&ttl, "ttl", "", "lifetime, e.g. 5m (default: the role's)")
	cmd.Flags().StringVar(&scope, "scope", "", "scopes for a jwt role")
	cmd.Flags().StringVar(&format, "format", "json", "output: json, env, kube-exec (kubectl exec plugin), aws-process (AWS credential_process) or ssh (key and certificate files in --out)")
	sshFiles.add(cmd)
	return cmd
}

// envNames maps credential fields to the variables tools expect.
var envNames = map[string]map[string]string{
	"postgres": {"username": "PGUSER", "password": "PGPASSWORD", "host": "PGHOST", "port": "PGPORT", "database": "PGDATABASE", "dsn": "DATABASE_URL"},
	"mysql":    {"username": "MYSQL_USER", "password": "MYSQL_PWD", "host": "MYSQL_HOST", "port": "MYSQL_TCP_PORT", "database": "MYSQL_DATABASE", "dsn": "DATABASE_URL"},
}

func printCredential(w io.Writer, format string, c client.Credential) error {
	switch format {
	case "json":
		return printJSON(w, c)
	case "env":
		kind := "generic"
		if _, ok := c.Credential["password"]; ok {
			kind = "postgres"
			if strings.HasPrefix(c.Credential["dsn"], "mysql") || strings.Contains(c.Credential["dsn"], "@tcp(") {
				kind = "mysql"
			}
		}
		keys := make([]string, 0, len(c.Credential))
		for k := range c.Credential {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := envNames[kind][k]
			if name == "" {
				name = "STINT_" + strings.ToUpper(k)
			}
			fmt.Fprintf(w, "%s=%s\n", name, shellQuote(c.Credential[k]))
		}
		fmt.Fprintf(w, "STINT_LEASE_ID=%s\nSTINT_EXPIRES_AT=%s\n", c.LeaseID, c.ExpiresAt.UTC().Format(time.RFC3339))
		return nil
	case "kube-exec":
		return printKubeExec(w, c)
	case "aws-process":
		return printAWSProcess(w, c)
	default:
		return fmt.Errorf("--format must be json, env, kube-exec or aws-process")
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newLeasesCmd(g *globals) *cobra.Command {
	var id identityFlags
	cmd := &cobra.Command{Use: "leases", Short: "List, renew and revoke leases"}
	var state, target string
	list := &cobra.Command{
		Use: "list", Short: "List your leases (admins: all)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := id.token()
			if err != nil {
				return err
			}
			ls, err := g.client().Leases(cmd.Context(), tok, client.LeaseFilter{State: state, Target: target})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LEASE\tTARGET/ROLE\tSUBJECT\tSTATE\tEXPIRES\tATTEMPTS\tLAST ERROR")
			for _, l := range ls {
				fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%d\t%s\n", l.ID, l.Target, l.Role, l.Subject, l.State, l.ExpiresAt.UTC().Format(time.RFC3339), l.Attempts, l.LastError)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", "", "only leases in this state (pending, active, revoking, revoked, failed)")
	list.Flags().StringVar(&target, "target", "", "only leases of this target")
	var ttl string
	renew := &cobra.Command{
		Use: "renew LEASE_ID", Short: "Extend a lease within its max TTL", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := id.token()
			if err != nil {
				return err
			}
			l, err := g.client().Renew(cmd.Context(), tok, args[0], ttl)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), l)
		},
	}
	renew.Flags().StringVar(&ttl, "ttl", "", "new lifetime from now")
	var force bool
	revoke := &cobra.Command{
		Use: "revoke LEASE_ID", Short: "Revoke a lease now (idempotent)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := id.token()
			if err != nil {
				return err
			}
			l, err := g.client().Revoke(cmd.Context(), tok, args[0], force)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), l)
		},
	}
	revoke.Flags().BoolVar(&force, "force", false, "admin: mark revoked without reaching the target (audited as abandoned)")
	for _, c := range []*cobra.Command{list, renew, revoke} {
		id.add(c)
	}
	cmd.AddCommand(list, renew, revoke)
	return cmd
}

func newRevokeCmd(g *globals) *cobra.Command {
	var id identityFlags
	var f client.LeaseFilter
	var awsf awsRevokeFlags
	cmd := &cobra.Command{
		Use:   "revoke --subject S | --human H | --target T [--role R] | --rule R",
		Short: "Kill switch: revoke every lease matching a selector (admin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := id.token()
			if err != nil {
				return err
			}
			n, err := g.client().RevokeMatching(cmd.Context(), tok, f)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoking %d leases\n", n)
			return awsf.run(cmd.Context(), cmd.OutOrStdout(), time.Now())
		},
	}
	id.add(cmd)
	awsf.add(cmd)
	cmd.Flags().StringVar(&f.Subject, "subject", "", "principal subject")
	cmd.Flags().StringVar(&f.Provider, "provider", "", "identity provider")
	cmd.Flags().StringVar(&f.Human, "human", "", "human subject")
	cmd.Flags().StringVar(&f.Target, "target", "", "target")
	cmd.Flags().StringVar(&f.Role, "role", "", "role")
	cmd.Flags().StringVar(&f.Rule, "rule", "", "policy rule")
	return cmd
}
