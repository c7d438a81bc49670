package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/app"
	"github.com/stint-dev/stint/internal/proxy"
)

// newTargetCmd manages targets' stored secrets. A key goes in and never
// comes back out: no command or API returns it.
func newTargetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "target", Short: "Manage targets' stored upstream keys"}
	var cfgFile, from string
	setKey := &cobra.Command{
		Use:   "set-key NAME --config F [--from-file F]",
		Short: "Store the static upstream key of an http target (sealed; read from a file or stdin; never shown again)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgFile == "" {
				return fmt.Errorf("--config is required")
			}
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			var r io.Reader = cmd.InOrStdin()
			if from != "" && from != "-" {
				f, err := os.Open(from)
				if err != nil {
					return fmt.Errorf("target: %w", err)
				}
				defer f.Close()
				r = f
			} else if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "reading the key from stdin (end with Ctrl-D)…")
			}
			key, err := io.ReadAll(io.LimitReader(r, proxy.MaxKeyBytes+2))
			if err != nil {
				return fmt.Errorf("target: read key: %w", err)
			}
			if err := app.SetUpstreamKey(cmd.Context(), cfg, args[0], key); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stored the upstream key of %s (sealed); running servers use it within 30 s\n", args[0])
			return nil
		},
	}
	setKey.Flags().StringVar(&cfgFile, "config", "", "server config")
	setKey.Flags().StringVar(&from, "from-file", "", "read the key from this file (default: stdin)")
	cmd.AddCommand(setKey)
	return cmd
}
