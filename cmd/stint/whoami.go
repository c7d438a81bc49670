package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/agent"
)

func newWhoamiCmd(g *globals) *cobra.Command {
	var id identityFlags
	var check bool
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the identity stint would present, and its attributes (never the token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := id.source()
			if err != nil {
				return err
			}
			tok, err := src.Token(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "source\t%s\n", src.Name())
			cl, err := agent.PeekClaims(tok)
			if err != nil {
				fmt.Fprintf(tw, "token\tnot a JWT (%d bytes)\n", len(tok))
			} else {
				printClaims(tw, "", cl)
			}
			if check {
				res, err := g.client().Exchange(cmd.Context(), client.ExchangeRequest{SubjectToken: tok})
				if err != nil {
					tw.Flush()
					return fmt.Errorf("whoami: the server refused this identity: %w", err)
				}
				if sc, err := agent.PeekClaims(res.AccessToken); err == nil {
					printClaims(tw, "stint ", sc)
				}
			}
			return tw.Flush()
		},
	}
	id.add(cmd)
	cmd.Flags().BoolVar(&check, "check", false, "also exchange the token with the server and show how stint sees it")
	return cmd
}

// printClaims writes what a token says, unverified, one claim a line.
func printClaims(tw *tabwriter.Writer, prefix string, cl agent.Claims) {
	fmt.Fprintf(tw, "%sissuer\t%s\n", prefix, cl.Issuer)
	fmt.Fprintf(tw, "%ssubject\t%s\n", prefix, cl.Subject)
	if len(cl.Audience) > 0 {
		fmt.Fprintf(tw, "%saudience\t%v\n", prefix, cl.Audience)
	}
	if !cl.Expiry.IsZero() {
		fmt.Fprintf(tw, "%sexpires\t%s (in %s)\n", prefix, cl.Expiry.UTC().Format(time.RFC3339), time.Until(cl.Expiry).Round(time.Second))
	}
	for _, k := range cl.OtherKeys() {
		b, _ := json.Marshal(cl.Other[k])
		fmt.Fprintf(tw, "%s%s\t%s\n", prefix, k, b)
	}
}
