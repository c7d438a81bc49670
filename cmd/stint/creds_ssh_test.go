package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/issuer/sshcert"
)

type oneKey struct{ k crypto.Signer }

func (o oneKey) Signer(context.Context, string, string) (crypto.Signer, error) { return o.k, nil }

// mint signs a certificate for req the way the server would.
func mint(t *testing.T, req client.CredentialRequest) client.Credential {
	_, ca, _ := ed25519.GenerateKey(rand.Reader)
	is, err := sshcert.New(sshcert.Config{Name: "bastion", Keys: oneKey{ca}, Roles: map[string]sshcert.RoleConfig{"ops": {Principals: []string{"deploy"}}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	params := map[string]string{}
	if req.PublicKey != "" {
		params["public_key"] = req.PublicKey
	}
	res, err := is.Issue(context.Background(), issuer.Request{LeaseID: "lease-1", Role: "ops", Principal: core.Principal{Provider: "p", Subject: "s"},
		IssuedAt: now, ExpiresAt: now.Add(time.Minute), Params: params})
	if err != nil {
		t.Fatal(err)
	}
	return client.Credential{LeaseID: "lease-1", ExpiresAt: now.Add(time.Minute), Credential: res.Credential}
}

func checkFiles(t *testing.T, dir string) {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(dir, "id_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatalf("id_ed25519: %v", err)
	}
	line, _ := os.ReadFile(filepath.Join(dir, "id_ed25519-cert.pub"))
	pk, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pk.(*ssh.Certificate).Key.Marshal(), signer.PublicKey().Marshal()) {
		t.Fatal("certificate is not for the written key")
	}
	for _, f := range []string{"id_ed25519", "id_ed25519-cert.pub"} {
		st, _ := os.Stat(filepath.Join(dir, f))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
	}
}

func TestCredsSSHKeyMadeLocally(t *testing.T) {
	o := sshOut{dir: filepath.Join(t.TempDir(), "keys")}
	var req client.CredentialRequest
	if err := o.prepare("ssh", &req); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(req.PublicKey, "ssh-ed25519 ") || strings.Contains(req.PublicKey, "PRIVATE") {
		t.Fatalf("request public_key %q", req.PublicKey)
	}
	c := mint(t, req)
	var out bytes.Buffer
	if err := o.write(&out, c); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, o.dir)
	if !strings.Contains(out.String(), "ssh -i "+filepath.Join(o.dir, "id_ed25519")+" deploy@HOST") {
		t.Errorf("output %q", out.String())
	}
}

func TestCredsSSHServerGeneratedKey(t *testing.T) {
	o := sshOut{dir: t.TempDir()}
	if err := o.write(&bytes.Buffer{}, mint(t, client.CredentialRequest{})); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, o.dir)
}

func TestCredsSSHRefuses(t *testing.T) {
	if err := (&sshOut{}).prepare("ssh", &client.CredentialRequest{}); err == nil {
		t.Error("--format ssh without --out accepted")
	}
	if err := (&sshOut{dir: "x"}).prepare("json", &client.CredentialRequest{}); err == nil {
		t.Error("--out with --format json accepted")
	}
	// A certificate for another key than the one made here is not written.
	o := sshOut{dir: t.TempDir()}
	if err := o.prepare("ssh", &client.CredentialRequest{}); err != nil {
		t.Fatal(err)
	}
	other := sshOut{dir: o.dir}
	var req client.CredentialRequest
	_ = other.prepare("ssh", &req)
	if err := o.write(&bytes.Buffer{}, mint(t, req)); err == nil || !strings.Contains(err.Error(), "not for this key") {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(filepath.Join(o.dir, "id_ed25519")); err == nil {
		t.Fatal("a key was written anyway")
	}
	if err := o.write(&bytes.Buffer{}, client.Credential{Credential: map[string]string{"access_token": "x"}}); err == nil {
		t.Fatal("a non-ssh credential was accepted")
	}
}
