package proxy

import (
	"context"
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/keys"
	"github.com/stint-dev/stint/internal/store/sqlite"
)

func TestCleanPath(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"", "/", true},
		{"/", "/", true},
		{"/v1/chat/completions", "/v1/chat/completions", true},
		{"/v1/models/", "/v1/models/", true},
		{"/v1/models/gpt%2D4", "/v1/models/gpt-4", true},
		{"/a%20b", "/a b", false}, // a space is refused raw and encoded alike? no: encoded is fine below
		{"v1", "", false},
		{"/v1/../admin", "", false},
		{"/v1/./x", "", false},
		{"/v1/%2e%2e/admin", "", false},
		{"/v1/%2E/x", "", false},
		{"/v1//x", "", false},
		{"/v1/a%2fb", "", false},
		{"/v1/a%5Cb", "", false},
		{"/v1/a\\b", "", false},
		{"/v1/%00", "", false},
		{"/v1/%0d%0aHost:evil", "", false},
		{"/v1/%zz", "", false},
		{"/v1/x#frag", "", false},
		{"/..", "", false},
		{"/public/..;/admin", "", false},
		{"/public/.;x/admin", "", false},
		{"/v1/a;b/c", "/v1/a;b/c", true},
	}
	for _, c := range cases {
		got, err := CleanPath(c.in)
		if c.in == "/a%20b" { // encoded space decodes to a printable path
			if err != nil || got != "/a b" {
				t.Errorf("CleanPath(%q) = %q, %v", c.in, got, err)
			}
			continue
		}
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q ok=%v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadPath) {
			t.Errorf("CleanPath(%q) error %v is not ErrBadPath", c.in, err)
		}
	}
}

func TestRouterMatchesMethodAndPath(t *testing.T) {
	rt, err := newRouter([]Route{
		{Role: "chat", Methods: []string{"POST"}, Paths: []string{"/v1/chat/completions", "/v1/responses"}},
		{Role: "models", Methods: []string{"GET"}, Paths: []string{"/v1/models/*"}},
		{Role: "all", Methods: []string{"*"}, Paths: []string{"/*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ method, path, want string }{
		{"POST", "/v1/chat/completions", "all,chat"},
		{"GET", "/v1/chat/completions", "all"},
		{"GET", "/v1/models/gpt-4", "all,models"},
		{"GET", "/v1/models/", "all,models"},
		{"GET", "/v1/models", "all"},
		{"POST", "/v1/chat/completions/x", "all"},
	}
	for _, c := range cases {
		if got := strings.Join(rt.match(c.method, c.path), ","); got != c.want {
			t.Errorf("%s %s → %q, want %q", c.method, c.path, got, c.want)
		}
	}
	for _, bad := range []string{"v1", "/v1/*/x", "/v1*", "/v1/../x", "/v1//x"} {
		if _, err := newRouter([]Route{{Role: "r", Methods: []string{"GET"}, Paths: []string{bad}}}); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

// FuzzCleanPath holds the invariant the proxy's security rests on: a path
// CleanPath accepts is already clean, so the upstream cannot resolve it to
// anything other than what the matcher saw, and an exact pattern matches
// only itself.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/v1/chat/completions", "/v1/models/%2e%2e/x", "/a%2fb", "//x", "/v1/models/", "/%c0%ae%c0%ae/", "/a/./b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := CleanPath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") || strings.Contains(p, "\\") || strings.ContainsAny(p, "\x00\r\n") {
			t.Fatalf("CleanPath(%q) = %q is not clean", in, p)
		}
		trimmed := strings.TrimSuffix(p, "/")
		if trimmed != "" && path.Clean(trimmed) != trimmed {
			t.Fatalf("CleanPath(%q) = %q changes under path.Clean", in, p)
		}
		if matchPath("/v1/models/*", p) && !strings.HasPrefix(p, "/v1/models/") {
			t.Fatalf("prefix matched outside: %q", p)
		}
		if matchPath("/admin", p) && p != "/admin" {
			t.Fatalf("exact matched %q", p)
		}
	})
}

func TestStaticKeySealedAndBoundToTarget(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := keys.NewSealer(make([]byte, keys.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(ctx, st, s, "openai"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("unset key: %v", err)
	}
	if err := SetKey(ctx, st, s, "openai", []byte("sk-first\n"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := SetKey(ctx, st, s, "openai", []byte("sk-second\n"), time.Now()); err != nil {
		t.Fatal(err)
	}
	recs, _ := st.ListKeys(ctx, KeyPurpose("openai"))
	if len(recs) != 1 || strings.Contains(string(recs[0].Private), "sk-second") || len(recs[0].Public) != 0 {
		t.Fatalf("stored records %d; cleartext stored: %v", len(recs), strings.Contains(string(recs[0].Private), "sk-"))
	}
	if k, err := LoadKey(ctx, st, s, "openai"); err != nil || string(k) != "sk-second" {
		t.Fatalf("LoadKey = %q, %v", k, err)
	}
	// The sealed value copied onto another target does not open there.
	moved := recs[0]
	moved.ID, moved.Purpose = KeyPurpose("other"), KeyPurpose("other")
	if err := st.PutKey(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(ctx, st, s, "other"); !errors.Is(err, keys.ErrOpen) {
		t.Errorf("moved key opened: %v", err)
	}
	for _, bad := range []string{"", "\n", "a\nb", "a\x00"} {
		if err := SetKey(ctx, st, s, "openai", []byte(bad), time.Now()); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	// The source re-reads the store after its refresh interval.
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	src := NewStaticKey(st, s, "openai", time.Minute, clk.now)
	if k, _ := src.Credential(ctx, corePrincipal(), nil); k != "sk-second" {
		t.Fatalf("got %q", k)
	}
	_ = SetKey(ctx, st, s, "openai", []byte("sk-third"), time.Now())
	if k, _ := src.Credential(ctx, corePrincipal(), nil); k != "sk-second" {
		t.Fatalf("refreshed too early: %q", k)
	}
	clk.add(time.Minute)
	if k, _ := src.Credential(ctx, corePrincipal(), nil); k != "sk-third" {
		t.Fatalf("not refreshed: %q", k)
	}
}

func corePrincipal() core.Principal { return core.Principal{Subject: "s"} }
