package x509ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
)

// memKeys generates each purpose's key once, like keys.Manager without
// the store.
type memKeys struct {
	mu   sync.Mutex
	keys map[string]crypto.Signer
}

func (m *memKeys) Signer(_ context.Context, purpose, kind string) (crypto.Signer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]crypto.Signer{}
	}
	if k, ok := m.keys[purpose]; ok {
		return k, nil
	}
	var k crypto.Signer
	var err error
	switch {
	case kind == "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case kind == "ecdsa-p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case strings.HasPrefix(kind, "rsa-"):
		bits, _ := strconv.Atoi(strings.TrimPrefix(kind, "rsa-"))
		k, err = rsa.GenerateKey(rand.Reader, bits)
	default:
		err = fmt.Errorf("kind %s", kind)
	}
	if err != nil {
		return nil, err
	}
	m.keys[purpose] = k
	return k, nil
}

// memMeta is the write-once meta record store.
type memMeta struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (m *memMeta) GetMeta(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.m[key]; ok {
		return v, nil
	}
	return nil, core.ErrNotFound
}

func (m *memMeta) PutMetaIfAbsent(_ context.Context, key string, v []byte) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string][]byte{}
	}
	if old, ok := m.m[key]; ok {
		return old, nil
	}
	m.m[key] = v
	return v, nil
}

var testRoles = map[string]RoleConfig{
	"svid":   {SPIFFEID: "spiffe://example.org/ns/{{.namespace}}/sa/{{.service_account}}", DNSNames: []string{"localhost", "*.svc.example.org"}},
	"client": {SPIFFEID: "spiffe://example.org/ns/{{.namespace}}/sa/{{.service_account}}", Usages: []string{"client"}},
	"web":    {DNSNames: []string{"localhost"}, Usages: []string{"server"}},
	"badns":  {SPIFFEID: "spiffe://example.org/ns/{{.missing}}"},
}

func newCA(t testing.TB, kind string) *Issuer {
	t.Helper()
	is, err := New(Config{Name: "mesh", KeyType: kind, Roles: testRoles, Keys: &memKeys{}, Meta: &memMeta{}})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func workload() core.Principal {
	return core.Principal{Provider: "prod", Kind: "kubernetes", Subject: "system:serviceaccount:payments:api",
		Attributes: map[string]any{"namespace": "payments", "service_account": "api"}}
}

func issue(t testing.TB, is *Issuer, role string, params map[string]string, issued, expires time.Time) issuer.Result {
	t.Helper()
	res, err := is.Issue(context.Background(), issuer.Request{LeaseID: "l", Role: role, Principal: workload(),
		IssuedAt: issued, ExpiresAt: expires, Params: params})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return res
}

func parsePEMCert(t testing.TB, s string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("no PEM in %q", s)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func csrPEM(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func issuerRequest(role string, params map[string]string, now time.Time) issuer.Request {
	return issuer.Request{LeaseID: "bad", Role: role, Principal: workload(), IssuedAt: now, ExpiresAt: now.Add(time.Hour), Params: params}
}

// syncBuffer collects a server's log while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
