package x509ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/testenv"
)

func TestIssuedCertificateIsAValidX509SVID(t *testing.T) {
	for _, kind := range CAKinds[:2] {
		t.Run(kind, func(t *testing.T) {
			is := newCA(t, kind)
			now := time.Now()
			res := issue(t, is, "svid", map[string]string{"dns_names": "api.svc.example.org"}, now, now.Add(time.Hour))
			svid, err := x509svid.Parse([]byte(res.Credential["chain"]), []byte(res.Credential["private_key"]))
			if err != nil {
				t.Fatalf("go-spiffe rejects the SVID: %v", err)
			}
			want := "spiffe://example.org/ns/payments/sa/api"
			if svid.ID.String() != want || res.Credential["spiffe_id"] != want {
				t.Fatalf("id %s, credential %s", svid.ID, res.Credential["spiffe_id"])
			}
			leaf := svid.Certificates[0]
			id, err := spiffeid.FromURI(leaf.URIs[0])
			if err != nil || id.String() != want {
				t.Fatalf("FromURI: %v %v", id, err)
			}
			roots, err := is.Bundle(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			bundle := x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString("example.org"), roots)
			if _, _, err := x509svid.Verify(svid.Certificates, bundle, x509svid.WithTime(now)); err != nil {
				t.Fatalf("go-spiffe does not verify the SVID against the bundle: %v", err)
			}
			if !leaf.NotBefore.Equal(now.Add(-Backdate).Truncate(time.Second)) || !leaf.NotAfter.Equal(now.Add(time.Hour).Truncate(time.Second)) {
				t.Errorf("validity %s..%s", leaf.NotBefore, leaf.NotAfter)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}) {
				t.Errorf("eku %v", leaf.ExtKeyUsage)
			}
			if !slices.Equal(leaf.DNSNames, []string{"api.svc.example.org"}) {
				t.Errorf("dns %v", leaf.DNSNames)
			}
			if strings.Contains(string(res.Internal), "PRIVATE") {
				t.Error("the generated private key is kept in the lease")
			}
		})
	}
}

// tlsPair turns a credential into a tls.Certificate.
func tlsPair(t *testing.T, cred core.Credential) tls.Certificate {
	c, err := tls.X509KeyPair([]byte(cred["chain"]), []byte(cred["private_key"]))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLSServerWithTheBundle runs a crypto/tls server that trusts only the
// published bundle for client certificates (and serves a stint-minted
// server certificate): a minted client certificate gets in; an expired one
// and one from another CA do not.
func TestTLSServerWithTheBundle(t *testing.T) {
	is := newCA(t, "ecdsa-p256")
	other := newCA(t, "ecdsa-p256")
	now := time.Now()
	roots, err := is.Bundle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	srvCert := tlsPair(t, issue(t, is, "web", map[string]string{"dns_names": "localhost"}, now, now.Add(time.Hour)).Credential)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
		_, _ = io.WriteString(w, "hello "+id.String())
	}))
	srvLog := &syncBuffer{}
	srv.Config.ErrorLog = log.New(srvLog, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	addr := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	cases := []struct {
		name string
		cred core.Credential
		why  string // what the server logs when it refuses
	}{
		{"minted certificate accepted", issue(t, is, "client", nil, now, now.Add(time.Hour)).Credential, ""},
		{"expired certificate rejected", issue(t, is, "client", nil, now.Add(-2*time.Hour), now.Add(-time.Hour)).Credential, "certificate has expired"},
		{"certificate of another CA rejected", issue(t, other, "client", nil, now, now.Add(time.Hour)).Credential, "certificate signed by unknown authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: pool, Certificates: []tls.Certificate{tlsPair(t, tc.cred)}}}}
			resp, err := c.Get(addr)
			if tc.why != "" {
				if err == nil {
					resp.Body.Close()
					t.Fatal("handshake succeeded")
				}
				// The client sees only an alert; the server says why,
				// possibly just after the client gave up.
				for end := time.Now().Add(2 * time.Second); !strings.Contains(srvLog.String(), tc.why) && time.Now().Before(end); {
					time.Sleep(10 * time.Millisecond)
				}
				if !strings.Contains(srvLog.String(), tc.why) {
					t.Fatalf("client error %v; server log lacks %q: %s", err, tc.why, srvLog.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if string(body) != "hello spiffe://example.org/ns/payments/sa/api" {
				t.Fatalf("body %q", body)
			}
		})
	}
}

func TestOpenSSLVerifiesTheMintedCertificate(t *testing.T) {
	openssl := testenv.Require(t, "STINT_TEST_OPENSSL")
	is := newCA(t, "ecdsa-p256")
	other := newCA(t, "ecdsa-p256")
	now := time.Now()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	roots, _ := is.Bundle(context.Background())
	bundle := write("bundle.pem", string(encodeBundle(roots)))
	good := write("cert.pem", issue(t, is, "svid", nil, now, now.Add(time.Hour)).Credential["certificate"])
	foreign := write("foreign.pem", issue(t, other, "svid", nil, now, now.Add(time.Hour)).Credential["certificate"])
	out, err := exec.Command(openssl, "verify", "-CAfile", bundle, good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cert.pem: OK") {
		t.Fatalf("openssl verify: %v: %s", err, out)
	}
	out, err = exec.Command(openssl, "verify", "-purpose", "sslclient", "-CAfile", bundle, good).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl verify -purpose sslclient: %v: %s", err, out)
	}
	if out, err := exec.Command(openssl, "verify", "-CAfile", bundle, foreign).CombinedOutput(); err == nil {
		t.Fatalf("openssl accepted another CA's certificate: %s", out)
	}
}

func TestIssueFromCSR(t *testing.T) {
	is := newCA(t, "ecdsa-p256")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, _ := url.Parse("spiffe://example.org/ns/payments/sa/api")
	now := time.Now()
	res := issue(t, is, "svid", map[string]string{"csr": csrPEM(t, key, &x509.CertificateRequest{
		DNSNames: []string{"localhost"}, URIs: []*url.URL{id}})}, now, now.Add(time.Hour))
	leaf := parsePEMCert(t, res.Credential["certificate"])
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("certificate is not for the CSR's key")
	}
	if _, ok := res.Credential["private_key"]; ok {
		t.Fatal("a private key came back for a CSR")
	}
	if leaf.URIs[0].String() != id.String() || leaf.DNSNames[0] != "localhost" {
		t.Fatalf("sans %v %v", leaf.URIs, leaf.DNSNames)
	}
	// base64 DER is accepted too.
	b, _ := pem.Decode([]byte(csrPEM(t, key, &x509.CertificateRequest{})))
	issue(t, is, "svid", map[string]string{"csr": base64.StdEncoding.EncodeToString(b.Bytes)}, now, now.Add(time.Hour))
}

func TestIssueRefusesBadInput(t *testing.T) {
	is := newCA(t, "ecdsa-p256")
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	other, _ := url.Parse("spiffe://example.org/ns/kube-system/sa/admin")
	good := csrPEM(t, ec, &x509.CertificateRequest{})
	tampered := []byte(good)
	blk, _ := pem.Decode(tampered)
	blk.Bytes[len(blk.Bytes)-3] ^= 0xff
	cases := []struct {
		name   string
		role   string
		params map[string]string
		kind   core.Kind
		reason string
	}{
		{"malformed csr", "svid", map[string]string{"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"}, core.KindInvalid, "not a valid PKCS#10"},
		{"not pem nor base64", "svid", map[string]string{"csr": "hello!"}, core.KindInvalid, "neither PEM nor base64"},
		{"bad signature", "svid", map[string]string{"csr": string(pem.EncodeToMemory(blk))}, core.KindInvalid, "csr"},
		{"rsa below 2048 bits", "svid", map[string]string{"csr": csrPEM(t, small, &x509.CertificateRequest{})}, core.KindInvalid, "below the 2048-bit floor"},
		{"dns san outside allow-list", "svid", map[string]string{"csr": csrPEM(t, ec, &x509.CertificateRequest{DNSNames: []string{"evil.example.com"}})}, core.KindInvalid, "not allowed by role"},
		{"wildcard does not match the suffix itself", "svid", map[string]string{"dns_names": "svc.example.org"}, core.KindInvalid, "not allowed by role"},
		{"other spiffe id", "svid", map[string]string{"csr": csrPEM(t, ec, &x509.CertificateRequest{URIs: []*url.URL{other}})}, core.KindInvalid, "grants only its SPIFFE ID"},
		{"ip san", "svid", map[string]string{"csr": csrPEM(t, ec, &x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}})}, core.KindInvalid, "IP or email"},
		{"private key instead of csr", "svid", map[string]string{"csr": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, core.KindInvalid, "holds a private key"},
		{"dns role without names", "web", nil, core.KindInvalid, "send a csr or dns_names"},
		{"attribute missing", "badns", nil, core.KindForbidden, "cannot be derived"},
		{"unknown role", "nope", nil, core.KindInvalid, "no role"},
	}
	now := time.Now()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := is.Issue(context.Background(), issuerRequest(tc.role, tc.params, now))
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Kind != tc.kind || !strings.Contains(ce.Public, tc.reason) {
				t.Fatalf("err = %v, want kind %d with %q", err, tc.kind, tc.reason)
			}
			if res.Credential != nil {
				t.Fatal("signed anyway")
			}
		})
	}
}

func TestGeneratedRootIsSharedThroughTheMetaStore(t *testing.T) {
	keys, meta := &memKeys{}, &memMeta{}
	a, err := New(Config{Name: "mesh", Roles: testRoles, Keys: keys, Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Name: "mesh", Roles: testRoles, Keys: keys, Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	ra, _ := a.Bundle(context.Background())
	rb, _ := b.Bundle(context.Background())
	if !ra[0].Equal(rb[0]) {
		t.Fatal("two issuers of one target publish different roots")
	}
	if ra[0].URIs[0].String() != "spiffe://example.org" || !ra[0].IsCA {
		t.Fatalf("root %v", ra[0].URIs)
	}
	// A stored root for another key is refused, not used.
	c, _ := New(Config{Name: "mesh", Roles: testRoles, Keys: &memKeys{}, Meta: meta})
	if _, err := c.Bundle(context.Background()); err == nil {
		t.Fatal("root of another key accepted")
	}
}

// TestIntermediateFromFiles signs with an intermediate loaded from PEM
// files; the leaf verifies up to the root through the returned chain, in
// Go and (when available) in openssl.
func TestIntermediateFromFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkixName("test root"), NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	root, _ := x509.ParseCertificate(rootDER)
	intKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	intTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkixName("test intermediate"), NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(2 * time.Hour), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign}
	intDER, _ := x509.CreateCertificate(rand.Reader, intTmpl, root, intKey.Public(), rootKey)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(intKey)
	files := map[string][]byte{"int.pem": pemCert("CERTIFICATE", intDER), "int.key": pemCert("PRIVATE KEY", keyDER), "root.pem": pemCert("CERTIFICATE", rootDER)}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	if _, err := New(Config{Name: "m", CertFile: p("int.pem"), KeyFile: p("int.key"), Roles: testRoles}); err == nil || !strings.Contains(err.Error(), "bundle_file is required") {
		t.Fatalf("intermediate without bundle: %v", err)
	}
	if _, err := New(Config{Name: "m", CertFile: p("root.pem"), KeyFile: p("int.key"), Roles: testRoles}); err == nil {
		t.Fatal("mismatched key accepted")
	}
	is, err := New(Config{Name: "m", CertFile: p("int.pem"), KeyFile: p("int.key"), BundleFile: p("root.pem"), Roles: testRoles})
	if err != nil {
		t.Fatal(err)
	}
	res := issue(t, is, "svid", nil, now, now.Add(8*time.Hour))
	leaf := parsePEMCert(t, res.Credential["certificate"])
	if !leaf.NotAfter.Equal(intTmpl.NotAfter.Truncate(time.Second)) || !res.ExpiresAt.Equal(leaf.NotAfter) {
		t.Fatalf("leaf outlives its intermediate or the lease was not shortened: %s / %s", leaf.NotAfter, res.ExpiresAt)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	rest := []byte(res.Credential["chain"])
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, _ := x509.ParseCertificate(b.Bytes)
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("chain does not verify: %v", err)
	}
	if bundle, _ := is.Bundle(context.Background()); !bundle[0].Equal(root) {
		t.Fatal("bundle is not the root")
	}
	if openssl := os.Getenv("STINT_TEST_OPENSSL"); openssl != "" {
		if err := os.WriteFile(p("leaf.pem"), []byte(res.Credential["certificate"]), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(openssl, "verify", "-CAfile", p("root.pem"), "-untrusted", p("int.pem"), p("leaf.pem")).CombinedOutput(); err != nil {
			t.Fatalf("openssl verify with the chain: %v: %s", err, out)
		}
	}
}

func TestBundleHandler(t *testing.T) {
	is := newCA(t, "ecdsa-p256")
	srv := httptest.NewServer(Handlers{Targets: map[string]*Issuer{"mesh": is}}.Bundle())
	defer srv.Close()
	roots, _ := is.Bundle(context.Background())
	get := func(q, accept string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", srv.URL+q, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get("?target=mesh", "")
	if resp.StatusCode != 200 || string(body) != string(encodeBundle(roots)) {
		t.Fatalf("pem: %d %q", resp.StatusCode, body)
	}
	resp, body = get("?target=mesh", "application/json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	b, err := spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("example.org"), body)
	if err != nil {
		t.Fatalf("go-spiffe cannot parse the trust bundle: %v\n%s", err, body)
	}
	if got := b.X509Authorities(); len(got) != 1 || !got[0].Equal(roots[0]) {
		t.Fatalf("authorities %v", got)
	}
	if !strings.Contains(string(body), `"use":"x509-svid"`) || !strings.Contains(string(body), `"x5c"`) {
		t.Fatalf("body %s", body)
	}
	if resp, _ := get("", ""); resp.StatusCode != 400 {
		t.Fatalf("no target: %d", resp.StatusCode)
	}
	if resp, _ := get("?target=nope", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown target: %d", resp.StatusCode)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := map[string]Config{
		"no spiffe id nor dns":     {Roles: map[string]RoleConfig{"r": {}}},
		"templated trust domain":   {Roles: map[string]RoleConfig{"r": {SPIFFEID: "spiffe://{{.td}}/x"}}},
		"not spiffe":               {Roles: map[string]RoleConfig{"r": {SPIFFEID: "https://example.org/x"}}},
		"two trust domains":        {Roles: map[string]RoleConfig{"a": {SPIFFEID: "spiffe://a.org/x"}, "b": {SPIFFEID: "spiffe://b.org/x"}}},
		"bad usage":                {Roles: map[string]RoleConfig{"r": {DNSNames: []string{"a"}, Usages: []string{"email"}}}},
		"bad dns pattern":          {Roles: map[string]RoleConfig{"r": {DNSNames: []string{"a.*.org"}}}},
		"bad key type":             {KeyType: "rsa-1024", Roles: map[string]RoleConfig{"r": {DNSNames: []string{"a"}}}},
		"cert without key":         {CertFile: "x.pem"},
		"bundle without cert file": {BundleFile: "b.pem", Roles: map[string]RoleConfig{"r": {DNSNames: []string{"a"}}}},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			cfg.Name, cfg.Keys, cfg.Meta = "t", &memKeys{}, &memMeta{}
			if _, err := New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
