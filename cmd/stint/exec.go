package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/agent"
)

func newExecCmd(g *globals) *cobra.Command {
	var id identityFlags
	var creds, envs []string
	var ttl string
	cmd := &cobra.Command{
		Use:   "exec --cred TARGET/ROLE[:NAME] … -- CMD [ARGS…]",
		Short: "Run a command with credentials in its environment; renew while it runs, revoke when it ends",
		Long: `exec fetches every --cred, starts CMD with them in its environment
(postgres: PG* and DATABASE_URL; mysql: MYSQL_* and DATABASE_URL; jwt:
ACCESS_TOKEN and STINT_TOKEN_<NAME>; aws: AWS_*; every field also as
STINT_<NAME>_<FIELD>), forwards signals to it, renews renewable leases at two
thirds of their TTL, and revokes every lease when CMD exits or stint is told
to stop. The exit code is CMD's. If any credential cannot be fetched, CMD is
not started.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 {
				return errors.New("exec: put the command after --, e.g. stint exec --cred db/ro -- psql")
			}
			src, err := id.source()
			if err != nil {
				return err
			}
			conn := &agent.Conn{Client: g.client(), Identity: src}
			if id.onBehalfOfFile != "" {
				conn.OnBehalfOf = &agent.FileSource{Path: id.onBehalfOfFile}
			}
			o := agent.ExecOptions{Conn: conn, Command: args, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
			for _, c := range creds {
				s, err := agent.ParseSpec(c)
				if err != nil {
					return err
				}
				s.TTL = ttl
				o.Creds = append(o.Creds, s)
			}
			for _, e := range envs {
				ov, err := agent.ParseEnvOverride(e)
				if err != nil {
					return err
				}
				o.Env = append(o.Env, ov)
			}
			code, err := agent.Exec(cmd.Context(), o)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	id.add(cmd)
	cmd.Flags().StringArrayVar(&creds, "cred", nil, "credential to fetch, TARGET/ROLE[:NAME] (repeatable; NAME defaults to TARGET)")
	cmd.Flags().StringArrayVar(&envs, "env", nil, "extra variable VAR=NAME.FIELD, e.g. DB_PASS=orders.password (repeatable)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "lifetime asked for every credential (default: the role's)")
	return cmd
}

// kubeExecCredential is client.authentication.k8s.io/v1 ExecCredential,
// what kubectl expects from an exec credential plugin.
type kubeExecCredential struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Status     struct {
		Token               string `json:"token"`
		ExpirationTimestamp string `json:"expirationTimestamp"`
	} `json:"status"`
}

func printKubeExec(w io.Writer, c client.Credential) error {
	tok := c.Credential["access_token"]
	if tok == "" {
		return errors.New("--format kube-exec needs a jwt target's credential (an access_token)")
	}
	var k kubeExecCredential
	k.APIVersion, k.Kind = "client.authentication.k8s.io/v1", "ExecCredential"
	k.Status.Token = tok
	k.Status.ExpirationTimestamp = c.ExpiresAt.UTC().Format(time.RFC3339)
	return printJSON(w, k)
}

// awsProcess is the output of an AWS credential_process (version 1).
type awsProcess struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken,omitempty"`
	Expiration      string `json:"Expiration"`
}

func printAWSProcess(w io.Writer, c client.Credential) error {
	if agent.Kind(c.Credential) != agent.KindAWS {
		return fmt.Errorf("--format aws-process needs an aws-sts target's credential (access_key_id, secret_access_key)")
	}
	return printJSON(w, awsProcess{
		Version: 1, AccessKeyID: c.Credential["access_key_id"], SecretAccessKey: c.Credential["secret_access_key"],
		SessionToken: c.Credential["session_token"], Expiration: c.ExpiresAt.UTC().Format(time.RFC3339),
	})
}
