package app_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/stint-dev/stint/internal/audit"
	"github.com/stint-dev/stint/internal/issuer/sshcert"
)

// certsConfig is testConfig's providers with an ssh and an x509 target.
const certsConfig = `
server:
  store: sqlite://{{dir}}/stint.db
  issuer_url: {{url}}
identity_providers:
  - name: dev-cluster
    type: kubernetes
    issuer: https://dev-cluster.stint.local
    jwks_file: {{dir}}/dev-cluster-jwks.json
    attributes: { cluster: dev }
targets:
  - name: bastion
    type: ssh
    roles:
      ops:
        principals: ["{{.service_account}}", deploy]
        allowed_principals: ["deploy*", "support-*"]
        extensions: [permit-pty]
        default_ttl: 10m
  - name: mesh
    type: x509
    roles:
      svid:
        spiffe_id: "spiffe://example.org/ns/{{.namespace}}/sa/{{.service_account}}"
        dns_names: ["*.svc.example.org"]
policies:
  - name: agents-certs
    grants: [bastion/ops, mesh/svid]
    max_ttl: 1h
    when: identity.provider == "dev-cluster" && identity.namespace == "agents"
audit:
  sinks:
    - { type: file, path: {{dir}}/audit.jsonl }
`

func (e *env) get(path, accept string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func sshPublicKey(t *testing.T) string {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	p, _ := ssh.NewPublicKey(pub)
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p)))
}

// TestSSHCertificateLeaseAndKRL: a certificate minted over HTTP verifies
// against the served CA line; once its lease is revoked the served KRL
// revokes it (as ssh-keygen -Q reads it, when OpenSSH is here).
func TestSSHCertificateLeaseAndKRL(t *testing.T) {
	e := newEnvConfig(t, certsConfig)
	agent := e.workload("agents", "support-bot")
	code, res := e.post("/v1/credentials", agent, map[string]any{"target": "bastion", "role": "ops", "public_key": sshPublicKey(t)})
	if code != 200 {
		t.Fatalf("issue: %d %v", code, res)
	}
	leaseID := res["lease_id"].(string)
	cred := res["credential"].(map[string]any)
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cred["certificate"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	cert := pk.(*ssh.Certificate)
	code, caLine := e.get("/v1/ssh/ca?target=bastion", "")
	if code != 200 {
		t.Fatalf("ca: %d %s", code, caLine)
	}
	ca, _, _, _, err := ssh.ParseAuthorizedKey(caLine)
	if err != nil {
		t.Fatalf("ca line %q: %v", caLine, err)
	}
	checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), ca.Marshal()) }}
	if err := checker.CheckCert("support-bot", cert); err != nil {
		t.Fatalf("certificate does not verify against the served CA: %v", err)
	}
	if cert.Serial != sshcert.Serial(leaseID) || !strings.Contains(cert.KeyId, leaseID) || !strings.Contains(cert.KeyId, "support-bot") {
		t.Fatalf("serial %d key id %q", cert.Serial, cert.KeyId)
	}
	serial := binary.BigEndian.AppendUint64(nil, cert.Serial)
	if _, krl := e.get("/v1/ssh/krl?target=bastion", ""); bytes.Contains(krl, serial) || !bytes.HasPrefix(krl, []byte("SSHKRL\n\x00")) {
		t.Fatalf("krl before revocation: %x", krl)
	}
	if code, res := e.post("/v1/leases/"+leaseID+"/revoke", agent, nil); code != 200 {
		t.Fatalf("revoke: %d %v", code, res)
	}
	code, krl := e.get("/v1/ssh/krl?target=bastion", "")
	if code != 200 || !bytes.Contains(krl, serial) {
		t.Fatalf("krl after revocation lacks the serial: %d %x", code, krl)
	}
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		dir := t.TempDir()
		_ = os.WriteFile(filepath.Join(dir, "krl"), krl, 0o600)
		_ = os.WriteFile(filepath.Join(dir, "c-cert.pub"), []byte(cred["certificate"].(string)+"\n"), 0o600)
		out, err := exec.Command(keygen, "-Q", "-f", filepath.Join(dir, "krl"), filepath.Join(dir, "c-cert.pub")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "REVOKED") {
			t.Fatalf("ssh-keygen -Q: %v %s", err, out)
		}
	}
	for _, q := range []string{"/v1/ssh/ca", "/v1/ssh/krl?target=nope", "/v1/x509/bundle?target=bastion"} {
		if code, _ := e.get(q, ""); code != 400 && code != 404 {
			t.Errorf("%s: %d", q, code)
		}
	}
}

// TestSSHGeneratedKeyIsNotStored: asked to generate the key pair, stint
// returns the private key once; it is in neither the store nor the audit.
func TestSSHGeneratedKeyIsNotStored(t *testing.T) {
	e := newEnvConfig(t, certsConfig)
	code, res := e.post("/v1/credentials", e.workload("agents", "support-bot"), map[string]any{"target": "bastion", "role": "ops"})
	if code != 200 {
		t.Fatalf("issue: %d %v", code, res)
	}
	priv := res["credential"].(map[string]any)["private_key"].(string)
	if _, err := ssh.ParsePrivateKey([]byte(priv)); err != nil {
		t.Fatalf("private_key: %v", err)
	}
	block, _ := pem.Decode([]byte(priv))
	needle := block.Bytes[len(block.Bytes)-80 : len(block.Bytes)-40]
	e.app.Close() // flush the store and the audit file
	files, _ := filepath.Glob(filepath.Join(e.dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if bytes.Contains(b, needle) || bytes.Contains(b, []byte(strings.Split(priv, "\n")[2])) {
			t.Fatalf("the generated private key is in %s", filepath.Base(f))
		}
	}
}

// TestCertBadInputIsAClearAuditedClientError: refused keys and CSRs get a
// 400 with the reason, an audited failure, and no certificate.
func TestCertBadInputIsAClearAuditedClientError(t *testing.T) {
	e := newEnvConfig(t, certsConfig)
	agent := e.workload("agents", "support-bot")
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallPub, _ := ssh.NewPublicKey(&small.PublicKey)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"evil.example.com"}}, edPriv)
	outside := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	cases := []struct {
		name   string
		body   map[string]any
		reason string
	}{
		{"malformed public key", map[string]any{"target": "bastion", "role": "ops", "public_key": "ssh-ed25519 AAAA!!"}, "not an OpenSSH public key"},
		{"rsa under 2048", map[string]any{"target": "bastion", "role": "ops", "public_key": string(ssh.MarshalAuthorizedKey(smallPub))}, "below the 2048-bit floor"},
		{"malformed csr", map[string]any{"target": "mesh", "role": "svid", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, "not a valid PKCS#10"},
		{"csr san outside allow-list", map[string]any{"target": "mesh", "role": "svid", "csr": outside}, "not allowed by role"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, res := e.post("/v1/credentials", agent, tc.body)
			if code != 400 || !strings.Contains(res["error_description"].(string), tc.reason) || res["credential"] != nil {
				t.Fatalf("%d %v", code, res)
			}
		})
	}
	failures := 0
	readAudit(t, e.dir, func(ev audit.Event) {
		if ev.Type == audit.CredentialIssue && ev.Outcome == audit.OutcomeFailure {
			failures++
		}
		if ev.Type == audit.CredentialIssue && ev.Outcome == audit.OutcomeSuccess {
			t.Errorf("a refused request was audited as issued: %+v", ev)
		}
	})
	if failures != len(cases) {
		t.Fatalf("%d audited failures, want %d", failures, len(cases))
	}
}

// TestX509CertificateAndBundle: an SVID minted over HTTP from a CSR
// verifies against the served bundle, in PEM and as a SPIFFE trust bundle.
func TestX509CertificateAndBundle(t *testing.T) {
	e := newEnvConfig(t, certsConfig)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"api.svc.example.org"}}, key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	code, res := e.post("/v1/credentials", e.workload("agents", "support-bot"), map[string]any{"target": "mesh", "role": "svid", "csr": csr})
	if code != 200 {
		t.Fatalf("issue: %d %v", code, res)
	}
	cred := res["credential"].(map[string]any)
	if cred["spiffe_id"] != "spiffe://example.org/ns/agents/sa/support-bot" || cred["private_key"] != nil {
		t.Fatalf("credential %v", cred)
	}
	b, _ := pem.Decode([]byte(cred["certificate"].(string)))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	code, bundlePEM := e.get("/v1/x509/bundle?target=mesh", "")
	pool := x509.NewCertPool()
	if code != 200 || !pool.AppendCertsFromPEM(bundlePEM) {
		t.Fatalf("bundle: %d %s", code, bundlePEM)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify against the served bundle: %v", err)
	}
	code, doc := e.get("/v1/x509/bundle?target=mesh", "application/json")
	sb, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("example.org"), doc)
	if code != 200 || err != nil || len(sb.X509Authorities()) != 1 {
		t.Fatalf("spiffe bundle: %d %v %s", code, err, doc)
	}
}
