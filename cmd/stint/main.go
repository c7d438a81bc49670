// Command stint is the workload identity provider and just-in-time
// credential broker: server, client, admin and benchmark commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	_ "time/tzdata" // policy rules name time zones; minimal images lack zoneinfo

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/client"
)

// exitError carries an exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "stint: ") {
			msg = "stint: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// globals are the flags every client command shares.
type globals struct {
	addr string
}

func (g *globals) client() *client.Client { return client.New(g.addr, nil) }

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "stint",
		Short:         "Workload identity in, short-lived credentials out",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.addr, "addr", "", "stint server address (default $STINT_ADDR or "+client.DefaultAddr+")")
	root.AddCommand(
		newServerCmd(),
		newDevCmd(g),
		newTokenCmd(g),
		newCredsCmd(g),
		newExecCmd(g),
		newAgentCmd(g),
		newWhoamiCmd(g),
		newLeasesCmd(g),
		newRevokeCmd(g),
		newPolicyCmd(g),
		newAuditCmd(),
		newKeysCmd(),
		newBenchCmd(g),
		newScanCmd(),
		newInventoryCmd(g),
		newProxyCmd(),
		newTargetCmd(),
	)
	return root
}
