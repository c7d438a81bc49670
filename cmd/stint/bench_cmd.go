package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/bench"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Load generators for BENCHMARKS.md",
		// The load generator shares the machine with the server: spend as
		// little CPU on its own garbage as the server does.
		PersistentPreRun: func(*cobra.Command, []string) { tuneGC() }}
	var o bench.Options
	var id identityFlags
	var audience string
	var baseline bool
	var serverPID int
	exchange := &cobra.Command{
		Use:   "exchange",
		Short: "Drive POST /oauth2/token on a running server; report exchanges/s and p50/p99",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := id.token()
			if err != nil {
				return err
			}
			form := url.Values{
				"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token":      {tok},
				"subject_token_type": {client.TokenTypeJWT},
			}
			if audience != "" {
				form.Set("audience", audience)
			}
			addr := strings.TrimRight(client.Addr(g.addr), "/")
			spec := bench.Spec{URL: addr + "/oauth2/token", ContentType: "application/x-www-form-urlencoded", Body: []byte(form.Encode()), Expect: `"access_token"`}
			res := bench.Run(cmd.Context(), "exchange", o, spec)
			return report(cmd, res, baseline, serverPID)
		},
	}
	exchange.Flags().StringVar(&audience, "audience", "", "exchange for an access token of this audience (default: session tokens)")
	id.add(exchange)

	var target, role, ttl, pubFile string
	var revoke bool
	creds := &cobra.Command{
		Use:   "creds --target T --role R",
		Short: "Drive POST /v1/credentials on a running server; report credentials/s and p50/p99",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := id.token()
			if err != nil {
				return err
			}
			req := client.CredentialRequest{Target: target, Role: role, TTL: ttl}
			if pubFile != "" {
				b, err := os.ReadFile(pubFile)
				if err != nil {
					return err
				}
				req.PublicKey = strings.TrimSpace(string(b))
			}
			body, _ := json.Marshal(req)
			addr := strings.TrimRight(client.Addr(g.addr), "/")
			name := "creds " + target + "/" + role
			if revoke {
				name += " issue+revoke"
			}
			res := bench.Run(cmd.Context(), name, o, bench.IssueRevoke(addr, tok, body, revoke))
			return report(cmd, res, baseline, serverPID)
		},
	}
	creds.Flags().StringVar(&target, "target", "", "target")
	creds.Flags().StringVar(&role, "role", "", "role")
	creds.Flags().StringVar(&ttl, "ttl", "", "lease TTL")
	creds.Flags().StringVar(&pubFile, "public-key-file", "", "send this public key (ssh targets) instead of letting stint generate a key pair")
	creds.Flags().BoolVar(&revoke, "revoke", false, "revoke each lease right after issuing it (a create+drop cycle)")
	id.add(creds)

	var d time.Duration
	var alg string
	base := &cobra.Command{
		Use: "baseline", Short: "Raw crypto per second on one core: ES256 sign + RS256 verify (default) or Ed25519 sign", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if alg == "ed25519" {
				r, err := bench.BaselineEd25519(d)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "baseline: %.0f Ed25519 signatures per second on one core\n", r)
				return nil
			}
			r, err := bench.Baseline(d)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "baseline: %.0f ES256 sign + RS256 verify per second on one core\n", r)
			return nil
		},
	}
	base.Flags().DurationVar(&d, "duration", 5*time.Second, "how long to measure")
	base.Flags().StringVar(&alg, "alg", "es256-rs256", "es256-rs256 or ed25519")

	for _, c := range []*cobra.Command{exchange, creds} {
		c.Flags().IntVarP(&o.Concurrency, "concurrency", "c", 32, "concurrent requests")
		c.Flags().DurationVarP(&o.Duration, "duration", "d", 10*time.Second, "measured duration")
		c.Flags().DurationVar(&o.Warmup, "warmup", 2*time.Second, "warm-up before measuring")
		c.Flags().BoolVar(&baseline, "baseline", true, "also measure the raw-crypto baseline (5 s, one core) and print the ratio")
		c.Flags().IntVar(&serverPID, "server-pid", 0, "report this server process's RSS")
		c.Flags().Int64Var(&o.MaxRequests, "max-requests", 0, "stop after this many requests (0: run for --duration)")
	}
	cmd.AddCommand(exchange, creds, base)
	return cmd
}

func report(cmd *cobra.Command, res bench.Result, baseline bool, pid int) error {
	out := cmd.OutOrStdout()
	fmt.Fprintln(out, res)
	if res.Requests == 0 {
		return fmt.Errorf("no request succeeded")
	}
	if pid > 0 {
		if rss, peak, err := bench.RSS(pid); err == nil {
			fmt.Fprintf(out, "server RSS: %.1f MB (peak %.1f MB)\n", float64(rss)/1e6, float64(peak)/1e6)
		}
	}
	if baseline {
		b, err := bench.Baseline(5 * time.Second)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "baseline: %.0f ES256 sign + RS256 verify /s on one core; ratio %.2f\n", b, res.PerSecond/b)
	}
	return nil
}
