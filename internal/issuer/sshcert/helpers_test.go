package sshcert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/store"
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

// memLeases is a LeaseLister over a fixed set, filtering like the store.
type memLeases struct {
	mu sync.Mutex
	ls []core.Lease
}

func (m *memLeases) add(l core.Lease) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ls = append(m.ls, l)
}

func (m *memLeases) ListLeases(_ context.Context, f store.LeaseFilter) ([]core.Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []core.Lease
	for _, l := range m.ls {
		if f.Target != "" && l.Target != f.Target {
			continue
		}
		ok := len(f.States) == 0
		for _, s := range f.States {
			ok = ok || s == l.State
		}
		if ok {
			out = append(out, l)
		}
	}
	return out, nil
}

func newIssuer(t testing.TB, keyType string, roles map[string]RoleConfig, leases LeaseLister) *Issuer {
	t.Helper()
	is, err := New(Config{Name: "bastion", KeyType: keyType, Roles: roles, Keys: &memKeys{}, Leases: leases})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func workload() core.Principal {
	return core.Principal{Provider: "prod", Kind: "kubernetes", Subject: "system:serviceaccount:agents:deployer",
		Attributes: map[string]any{"namespace": "agents", "service_account": "deployer"}}
}

func request(leaseID, role string, params map[string]string, issued, expires time.Time) issuer.Request {
	return issuer.Request{LeaseID: leaseID, Role: role, Principal: workload(), IssuedAt: issued, ExpiresAt: expires, Params: params}
}

// clientKey makes an Ed25519 key pair and its authorized-keys line.
func clientKey(t testing.TB) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
}

func parseCert(t testing.TB, line string) *ssh.Certificate {
	t.Helper()
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	c, ok := pk.(*ssh.Certificate)
	if !ok {
		t.Fatalf("credential.certificate is a %T, not a certificate", pk)
	}
	return c
}
