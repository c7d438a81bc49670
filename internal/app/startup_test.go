package app_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/internal/app"
	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/devcluster"
	"github.com/stint-dev/stint/internal/testenv"
)

func loadTestConfig(t *testing.T, dir, store, kek string) *config.Config {
	t.Helper()
	text := strings.NewReplacer("{{dir}}", dir, "{{url}}", "http://127.0.0.1:1").Replace(testConfig)
	text = strings.Replace(text, "store: sqlite://"+dir+"/stint.db", "store: "+store+"\n  kek_file: "+kek, 1)
	path := filepath.Join(dir, "stint.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A changed or lost key-encryption key is a clear start-up error, never a
// silent re-keying.
func TestStartRefusesChangedOrMissingKEK(t *testing.T) {
	dir := t.TempDir()
	if err := devcluster.Init(dir); err != nil {
		t.Fatal(err)
	}
	kek := filepath.Join(dir, "kek")
	cfg := loadTestConfig(t, dir, "sqlite://"+dir+"/stint.db", kek)
	quiet := app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a, err := app.New(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	st, err := os.Stat(kek)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kek file: %v %v", err, st)
	}

	other := make([]byte, 32)
	_, _ = rand.Read(other)
	if err := os.WriteFile(kek, []byte(base64.StdEncoding.EncodeToString(other)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := app.New(context.Background(), cfg, quiet); err == nil || !strings.Contains(strings.ToLower(err.Error()), "kek") {
		t.Fatalf("changed KEK: got %v", err)
	}
	if err := os.Remove(kek); err != nil {
		t.Fatal(err)
	}
	_, err = app.New(context.Background(), cfg, quiet)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "kek") {
		t.Fatalf("missing KEK: got %v", err)
	}
	if _, statErr := os.Stat(kek); statErr == nil {
		t.Fatal("a missing KEK was silently recreated")
	}
}

// The same server runs on PostgreSQL, selected by a postgres:// store URL.
func TestServerOnPostgresStore(t *testing.T) {
	pgURL := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	ctx := context.Background()
	schema := fmt.Sprintf("stint_app_test_%d", os.Getpid())
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE; CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	u, _ := url.Parse(pgURL)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	dir := t.TempDir()
	if err := devcluster.Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := loadTestConfig(t, dir, u.String(), filepath.Join(dir, "kek"))
	a, err := app.New(ctx, cfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+schema+".keys").Scan(&n); err != nil || n == 0 {
		t.Fatalf("signing key not stored in PostgreSQL: %d %v", n, err)
	}
}
