// Command dbcred shows an agent written in Go using stint's client: it
// proves who it is with its platform token, gets a temporary PostgreSQL
// user, uses it, and revokes it when done — no database password is ever
// configured or stored.
//
//	go run ./examples/dbcred -token-file /var/run/secrets/stint/token -target orders-db -role readonly
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/client"
)

func main() {
	addr := flag.String("addr", "", "stint server (default $STINT_ADDR or "+client.DefaultAddr+")")
	tokenFile := flag.String("token-file", os.Getenv("STINT_IDENTITY_TOKEN_FILE"), "the workload's identity token (e.g. a projected service-account token)")
	target := flag.String("target", "orders-db", "postgres target")
	role := flag.String("role", "readonly", "role on the target")
	flag.Parse()
	if err := run(*addr, *tokenFile, *target, *role); err != nil {
		fmt.Fprintln(os.Stderr, "dbcred:", err)
		os.Exit(1)
	}
}

func run(addr, tokenFile, target, role string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Re-read the token for every call in a long-lived agent: the
	// platform rotates it.
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	token := strings.TrimSpace(string(b))

	c := client.New(addr, nil)
	cred, err := c.Credentials(ctx, token, client.CredentialRequest{Target: target, Role: role})
	if err != nil {
		return err
	}
	// Revoke on the way out, whatever happens: the user is dropped now
	// rather than at the end of its TTL.
	defer func() {
		if _, err := c.Revoke(context.WithoutCancel(ctx), token, cred.LeaseID, false); err != nil {
			fmt.Fprintln(os.Stderr, "dbcred: revoke:", err)
		}
	}()

	conn, err := pgx.Connect(ctx, cred.Credential["dsn"])
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var user string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
		return err
	}
	fmt.Printf("connected as %s (lease %s, expires %s)\n", user, cred.LeaseID, cred.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}
