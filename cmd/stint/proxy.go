package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/app"
	"github.com/stint-dev/stint/internal/proxy"
)

// newProxyCmd runs the credential-injecting gateway on its own, near the
// agent: on a loopback port, and/or on a Unix socket whose callers are
// identified by their kernel-reported uid/gid (SO_PEERCRED).
func newProxyCmd() *cobra.Command {
	var file, listen, socket, mode string
	cmd := &cobra.Command{
		Use:   "proxy --config FILE [--listen ADDR] [--socket PATH]",
		Short: "Run the gateway for http targets alone (/proxy/{target}/…), on TCP and/or a Unix socket",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("--config is required")
			}
			perm, err := strconv.ParseUint(mode, 8, 32)
			if err != nil || perm > 0o777 {
				return fmt.Errorf("--socket-mode: want an octal mode such as 0660")
			}
			if listen == "" && socket == "" {
				listen = "127.0.0.1:8421"
			}
			cfg, err := loadConfig(file)
			if err != nil {
				return err
			}
			log := newLogger(cfg.Server.LogLevel)
			a, err := app.New(cmd.Context(), cfg, app.Options{Logger: log})
			if err != nil {
				return err
			}
			defer a.Close()
			return runProxy(cmd.Context(), a.Proxy, log, listen, socket, os.FileMode(perm))
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "config file (YAML)")
	cmd.Flags().StringVar(&listen, "listen", "", "TCP address (default 127.0.0.1:8421 when no --socket)")
	cmd.Flags().StringVar(&socket, "socket", "", "Unix socket path; callers without a token are identified by peer credentials")
	cmd.Flags().StringVar(&mode, "socket-mode", "0660", "file mode of the Unix socket")
	return cmd
}

func runProxy(ctx context.Context, h *proxy.Handler, log *slog.Logger, listen, socket string, mode os.FileMode) error {
	mux := http.NewServeMux()
	for p, hd := range h.Routes() {
		mux.Handle(p, hd)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	newServer := func() *http.Server {
		return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
			MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	}
	var servers []*http.Server
	errc := make(chan error, 2)
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("proxy: listen %s: %w", listen, err)
		}
		s := newServer()
		servers = append(servers, s)
		go func() { errc <- s.Serve(ln) }()
		log.Info("stint proxy ready", "addr", ln.Addr().String())
	}
	if socket != "" {
		ln, err := proxy.ListenUnix(socket, mode)
		if err != nil {
			return err
		}
		s := newServer()
		s.ConnContext = proxy.PeerContext
		servers = append(servers, s)
		go func() { errc <- s.Serve(ln) }()
		log.Info("stint proxy ready", "socket", socket)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	return runErr
}
