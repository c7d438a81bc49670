package main

import (
	"errors"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/agent"
)

func newAgentCmd(g *globals) *cobra.Command {
	var file, logLevel string
	var check bool
	cmd := &cobra.Command{
		Use:   "agent --config agent.yaml",
		Short: "Sidecar: keep credentials fetched, written to files, renewed; revoke them on shutdown",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("agent: --config is required")
			}
			cfg, err := agent.LoadConfig(file)
			if err != nil {
				return err
			}
			if check {
				cmd.Println("agent: config OK")
				return nil
			}
			src, err := agent.Detect(cfg.Identity.Options())
			if err != nil {
				return err
			}
			addr := g.addr
			if addr == "" {
				addr = cfg.Server
			}
			var lvl slog.Level
			_ = lvl.UnmarshalText([]byte(logLevel))
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			d, err := agent.NewDaemon(cfg, agent.DaemonOptions{
				Conn: &agent.Conn{Client: client.New(addr, nil), Identity: src},
				Log:  log,
				OnHealthListen: func(a string) {
					log.Info("health endpoint", "url", "http://"+a+"/healthz")
				},
			})
			if err != nil {
				return err
			}
			log.Info("stint agent starting", "identity", src.Name(), "credentials", len(cfg.Credentials))
			return d.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "agent config (YAML)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().BoolVar(&check, "check", false, "validate the config and exit")
	return cmd
}
