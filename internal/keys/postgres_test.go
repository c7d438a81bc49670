package keys

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/internal/store"
	"github.com/stint-dev/stint/internal/store/postgres"
	"github.com/stint-dev/stint/internal/testenv"
)

// pgReplicas opens n stores on one fresh PostgreSQL schema, each with its
// own connection pool, as n stint replicas would.
func pgReplicas(t *testing.T, n int) []store.Store {
	t.Helper()
	url := testenv.Require(t, "STINT_TEST_POSTGRES_URL")
	b := make([]byte, 6)
	rand.Read(b)
	schema := "stint_keys_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	out := make([]store.Store, n)
	for i := range out {
		st, err := postgres.OpenSchema(context.Background(), url, schema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() }) // runs before the schema is dropped
		if err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		out[i] = st
	}
	return out
}

// TestPostgresReplicas runs first start, the kek race, rotation, per-purpose
// signers and secrets across replicas sharing one PostgreSQL database.
func TestPostgresReplicas(t *testing.T) {
	ctx := context.Background()
	sts := pgReplicas(t, 3)

	// Each replica has its own kek file; exactly one initialises the store.
	dir := t.TempDir()
	sealers := make([]*Sealer, len(sts))
	errs := make([]error, len(sts))
	var wg sync.WaitGroup
	for i, st := range sts {
		wg.Go(func() { sealers[i], errs[i] = OpenSealer(ctx, st, filepath.Join(dir, "kek"+string(rune('0'+i)))) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("replicas %d and %d both initialised the store with their own kek", winner, i)
		case !errors.Is(err, ErrKEKMismatch) && !errors.Is(err, ErrKEKMissing):
			// Mismatch when it lost the race, missing when it came after.
			t.Fatalf("replica %d: %v, want ErrKEKMismatch or ErrKEKMissing", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no replica initialised the store")
	}
	// Replicas share the winner's kek, as an operator would arrange.
	for i := range sealers {
		sealers[i] = sealers[winner]
	}

	clk := newClock()
	ms := make([]*Manager, len(sts))
	for i, st := range sts {
		wg.Go(func() {
			m, err := NewManager(ctx, st, sealers[i], Options{Now: clk.Now, Reload: -1})
			if err != nil {
				t.Error(err)
				return
			}
			ms[i] = m
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, m := range ms {
		defer m.Close()
	}
	clk.Add(time.Second)
	kid, err := ms[0].Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := ms[0].Sign(testClaims{Sub: "pg"})
	for i, m := range ms {
		if _, err := m.Key(ctx, kid); err != nil {
			t.Fatalf("replica %d cannot find rotated kid: %v", i, err)
		}
		if cur, _ := m.Current(); cur != kid {
			t.Fatalf("replica %d uses %s after reload, want %s", i, cur, kid)
		}
		if _, _, err := verify(t, m.JWKS(), tok, "ES256"); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}

	signers := make([]crypto.Signer, len(ms))
	secrets := make([][]byte, len(ms))
	for i, m := range ms {
		wg.Go(func() {
			var err error
			if signers[i], err = m.Signer(ctx, "ssh-ca:pg", KindEd25519); err != nil {
				t.Error(err)
			}
			if secrets[i], err = m.Secret(ctx, "audit-hmac"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	type eq interface{ Equal(crypto.PublicKey) bool }
	for i := range ms {
		if !signers[0].Public().(eq).Equal(signers[i].Public()) || string(secrets[0]) != string(secrets[i]) {
			t.Fatalf("replica %d got another ssh-ca key or secret", i)
		}
	}
}
