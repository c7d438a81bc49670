package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/app"
	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/keys"
	"github.com/stint-dev/stint/internal/policy"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Check a config and test policy decisions"}
	check := &cobra.Command{
		Use: "check CONFIG", Short: "Validate a config file (every problem, with file:line) without starting anything",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := loadConfig(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		},
	}
	var cfgFile, idFile, humanFile, idToken, humanToken, grant string
	test := &cobra.Command{
		Use:   "test --config F (--identity claims.json | --identity-token-file T) [--human claims.json] --grant TARGET/ROLE",
		Short: "Print the decision for a principal and a grant, and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			gr, err := core.ParseGrant(grant)
			if err != nil {
				return err
			}
			id, err := principalFrom(cmd, cfg, idFile, idToken)
			if err != nil {
				return fmt.Errorf("identity: %w", err)
			}
			if id == nil {
				return errors.New("--identity or --identity-token-file is required")
			}
			human, err := principalFrom(cmd, cfg, humanFile, humanToken)
			if err != nil {
				return fmt.Errorf("human: %w", err)
			}
			eng, err := app.Policy(cfg)
			if err != nil {
				return err
			}
			x := eng.Explain(policy.Input{Identity: id, Human: human, Grant: gr,
				Request: map[string]any{"target": gr.Target, "role": gr.Role}, Now: time.Now()})
			out := cmd.OutOrStdout()
			verdict := "DENY"
			if x.Decision.Allow {
				verdict = "ALLOW"
			}
			fmt.Fprintf(out, "%s %s for %s/%s\n  %s\n", verdict, gr, id.Provider, id.Subject, x.Decision.Reason)
			if err := printJSON(out, x); err != nil {
				return err
			}
			if !x.Decision.Allow {
				return exitError{code: 3}
			}
			return nil
		},
	}
	test.Flags().StringVar(&cfgFile, "config", "", "config file")
	test.Flags().StringVar(&idFile, "identity", "", "JSON file: {provider, subject, kind, attributes…} or a flat map of attributes with provider and subject")
	test.Flags().StringVar(&idToken, "identity-token-file", "", "a real token, verified against the config's identity providers")
	test.Flags().StringVar(&humanFile, "human", "", "JSON file of the human principal")
	test.Flags().StringVar(&humanToken, "human-token-file", "", "the human's real token")
	test.Flags().StringVar(&grant, "grant", "", "TARGET/ROLE")
	_ = g
	cmd.AddCommand(check, test)
	return cmd
}

// principalFrom reads a principal from a JSON file or verifies a token.
func principalFrom(cmd *cobra.Command, cfg *config.Config, file, tokenFile string) (*core.Principal, error) {
	switch {
	case file != "" && tokenFile != "":
		return nil, errors.New("give a claims file or a token file, not both")
	case tokenFile != "":
		tok, err := readTokenFile(tokenFile)
		if err != nil {
			return nil, err
		}
		r, err := app.Identities(cmd.Context(), cfg)
		if err != nil {
			return nil, err
		}
		p, err := r.Verify(cmd.Context(), tok)
		if err != nil {
			return nil, err
		}
		return &p, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return parsePrincipal(b)
	}
	return nil, nil
}

// parsePrincipal accepts a core.Principal or a flat attribute map.
func parsePrincipal(b []byte) (*core.Principal, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, nested := m["attributes"]; nested {
		var p core.Principal
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, err
		}
		return &p, nil
	}
	p := core.Principal{Attributes: map[string]any{}}
	for k, v := range m {
		s, _ := v.(string)
		switch k {
		case "provider":
			p.Provider = s
		case "kind":
			p.Kind = s
		case "subject", "sub":
			p.Subject = s
		case "issuer", "iss":
			p.Issuer = s
		default:
			if list, ok := v.([]any); ok {
				ss := make([]string, 0, len(list))
				for _, x := range list {
					ss = append(ss, fmt.Sprint(x))
				}
				p.Attributes[k] = ss
				continue
			}
			p.Attributes[k] = v
		}
	}
	return &p, nil
}

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and read the audit record"}
	var cfgFile string
	var requireCheckpoint bool
	verify := &cobra.Command{
		Use: "verify FILE…", Short: "Check the hash chain (and, with --config, the signed checkpoints); print the first bad sequence number",
		Long: "Files are read as one record, in the order given. Given one file, its rotated segments (FILE.<time>) are read before it.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files := args
			if len(args) == 1 {
				segs, err := audit.Segments(args[0])
				if err != nil {
					return err
				}
				files = segs
			}
			var readers []io.Reader
			for _, name := range files {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				readers = append(readers, f)
			}
			f := io.MultiReader(readers...)
			var o audit.VerifyOptions
			o.RequireCheckpoint = requireCheckpoint
			if cfgFile != "" {
				km, done, err := openKeys(cmd, cfgFile)
				if err != nil {
					return err
				}
				defer done()
				if o.PublicKey, err = app.AuditPublicKey(cmd.Context(), km); err != nil {
					return err
				}
			}
			res, err := audit.VerifyWith(f, o)
			if err != nil {
				var ve *audit.VerifyError
				if errors.As(err, &ve) {
					fmt.Fprintf(cmd.ErrOrStderr(), "BROKEN at seq %d (line %d): %s\n", ve.Seq, ve.Line, ve.Reason)
					return exitError{code: 2}
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %d events, seq %d..%d, %d checkpoints, sealed up to seq %d, %d events after the last checkpoint\n",
				res.Events, res.FirstSeq, res.LastSeq, res.Checkpoints, res.SealedSeq, res.UnsealedEvents)
			return nil
		},
	}
	verify.Flags().StringVar(&cfgFile, "config", "", "server config: verify checkpoint signatures with the installation's audit key")
	verify.Flags().BoolVar(&requireCheckpoint, "require-checkpoint", false, "fail when events follow the last checkpoint")

	var since time.Duration
	var types, outcomes []string
	var subject string
	query := &cobra.Command{
		Use: "query FILE", Short: "Print events by time, type, outcome and subject", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			var from time.Time
			if since > 0 {
				from = time.Now().Add(-since)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			return audit.Query(f, audit.Filter{Types: types, Outcomes: outcomes}, from, func(e audit.Event) error {
				if subject != "" && (e.Principal == nil || e.Principal.Subject != subject) && (e.Human == nil || e.Human.Subject != subject) {
					return nil
				}
				return enc.Encode(e)
			})
		},
	}
	query.Flags().DurationVar(&since, "since", 0, "only events newer than this, e.g. 1h")
	query.Flags().StringSliceVar(&types, "type", nil, "event type or prefix (admin.)")
	query.Flags().StringSliceVar(&outcomes, "outcome", nil, "success, failure or denied")
	query.Flags().StringVar(&subject, "subject", "", "principal or human subject")

	fingerprint := &cobra.Command{
		Use: "fingerprint --config F", Short: "Compute the audit fingerprint of a value read from stdin (for investigators)",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			km, done, err := openKeys(cmd, cfgFile)
			if err != nil {
				return err
			}
			defer done()
			key, err := km.Secret(cmd.Context(), "audit-fingerprint")
			if err != nil {
				return err
			}
			b, err := readAllLimited(os.Stdin, maxTokenFile)
			if err != nil {
				return err
			}
			l, err := audit.NewLog(audit.Options{FingerprintKey: key})
			if err != nil {
				return err
			}
			defer l.Close()
			fmt.Fprintln(cmd.OutOrStdout(), l.Fingerprint(strings.TrimRight(string(b), "\r\n")))
			return nil
		},
	}
	fingerprint.Flags().StringVar(&cfgFile, "config", "", "server config")
	cmd.AddCommand(verify, query, fingerprint, newAuditTailCmd())
	return cmd
}

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List and rotate signing keys"}
	var cfgFile string
	list := &cobra.Command{
		Use: "list --config F", Short: "List signing keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			km, done, err := openKeys(cmd, cfgFile)
			if err != nil {
				return err
			}
			defer done()
			ks, err := km.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KID\tALG\tCREATED\tPUBLISHED UNTIL\tCURRENT")
			for _, k := range ks {
				until := "-"
				if !k.NotAfter.IsZero() {
					until = k.NotAfter.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", k.KID, k.Algorithm, k.Created.UTC().Format(time.RFC3339), until, k.Current)
			}
			return tw.Flush()
		},
	}
	rotate := &cobra.Command{
		Use: "rotate --config F", Short: "Add a new current signing key; the old one stays published until its tokens expire", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			km, done, err := openKeys(cmd, cfgFile)
			if err != nil {
				return err
			}
			defer done()
			kid, err := km.Rotate(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new current key %s (servers pick it up within 30 s)\n", kid)
			return nil
		},
	}
	for _, c := range []*cobra.Command{list, rotate} {
		c.Flags().StringVar(&cfgFile, "config", "", "server config")
	}
	cmd.AddCommand(list, rotate)
	return cmd
}

func readAllLimited(f *os.File, n int64) ([]byte, error) {
	b := make([]byte, 0, 1024)
	buf := make([]byte, 4096)
	for {
		k, err := f.Read(buf)
		b = append(b, buf[:k]...)
		if int64(len(b)) > n {
			return nil, fmt.Errorf("input larger than %d bytes", n)
		}
		if err != nil {
			break
		}
	}
	return b, nil
}

func newAuditTailCmd() *cobra.Command {
	var n int
	var follow bool
	cmd := &cobra.Command{
		Use: "tail FILE", Short: "Print the last events of the local record; -f follows new ones", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			var last []audit.Event
			if err := audit.Query(f, audit.Filter{}, time.Time{}, func(e audit.Event) error {
				last = append(last, e)
				if len(last) > n {
					last = last[1:]
				}
				return nil
			}); err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			for _, e := range last {
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
			if !follow {
				return nil
			}
			// Follow: read complete lines appended after what was printed.
			rd := bufio.NewReader(f)
			var partial []byte
			for {
				line, err := rd.ReadBytes('\n')
				partial = append(partial, line...)
				if err != nil {
					select {
					case <-cmd.Context().Done():
						return nil
					case <-time.After(200 * time.Millisecond):
					}
					continue
				}
				var e audit.Event
				if json.Unmarshal(partial, &e) == nil {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				partial = partial[:0]
			}
		},
	}
	cmd.Flags().IntVarP(&n, "lines", "n", 20, "how many events")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events")
	return cmd
}

// openKeys opens the store and key manager of a config for an offline
// admin command; done closes them.
func openKeys(cmd *cobra.Command, cfgFile string) (*keys.Manager, func(), error) {
	cfg, err := loadConfig(cfgFile)
	if err != nil {
		return nil, nil, err
	}
	km, st, err := app.Keys(cmd.Context(), cfg)
	if err != nil {
		return nil, nil, err
	}
	return km, func() { km.Close(); st.Close() }, nil
}
