package sshcert

// Issue builds its output without the generic helpers it used to call
// (ssh.MarshalAuthorizedKey, ssh.FingerprintSHA256, json.Marshal,
// text/template for plain field references). The tests here hold each
// fast path to the helper it replaces, byte for byte.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
)

// testKeys are user keys of every type ParsePublicKey accepts, by name
// ("generated": none sent), made once for the package's tests.
func testKeys(t testing.TB) map[string]string {
	t.Helper()
	keys, err := testKeysOnce()
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

var testKeysOnce = sync.OnceValues(makeTestKeys)

func makeTestKeys() (map[string]string, error) {
	keys := map[string]string{}
	add := func(name string, k any) error {
		p, err := ssh.NewPublicKey(k)
		if err != nil {
			return err
		}
		keys[name] = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p)))
		return nil
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := add("ed25519", edPub); err != nil {
		return nil, err
	}
	for name, c := range map[string]elliptic.Curve{"ecdsa-p256": elliptic.P256(), "ecdsa-p384": elliptic.P384(), "ecdsa-p521": elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := add(name, &k.PublicKey); err != nil {
			return nil, err
		}
	}
	for _, bits := range []int{2048, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, err
		}
		if err := add("rsa-"+strconv.Itoa(bits), &k.PublicKey); err != nil {
			return nil, err
		}
	}
	// Security-key types, built from their wire form, with a comment.
	sk := func(name string, wire []byte) error {
		p, err := ssh.ParsePublicKey(wire)
		if err != nil {
			return err
		}
		keys[name] = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p))) + " comment"
		return nil
	}
	if err := sk("sk-ed25519", ssh.Marshal(struct {
		Name, Key, App string
	}{ssh.KeyAlgoSKED25519, string(edPub), "ssh:"})); err != nil {
		return nil, err
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	point, err := ek.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	if err := sk("sk-ecdsa-p256", ssh.Marshal(struct {
		Name, Curve, Key, App string
	}{ssh.KeyAlgoSKECDSA256, "nistp256", string(point), "ssh:"})); err != nil {
		return nil, err
	}
	keys["generated"] = ""
	return keys, nil
}

// equivRoles exercise every path of render and of the option maps.
var equivRoles = map[string]RoleConfig{
	"ops": roles["ops"],
	"all-options": {Principals: []string{"deploy", "{{.namespace}}"},
		Extensions:      []string{"permit-pty", "permit-port-forwarding", "permit-agent-forwarding", "permit-pty", "permit-X11-forwarding"},
		CriticalOptions: map[string]string{"source-address": "10.0.0.0/8", "force-command": "/usr/bin/true --flag"}},
	"no-options":  {Principals: []string{"{{.service_account}}"}},
	"host":        roles["host"],
	"host-ext":    {Principals: []string{"{{.namespace}}.example.com", "{{.identity.service_account}}"}, CertType: "host", Extensions: []string{"x@example.com"}},
	"identity":    {Principals: []string{"{{.identity.namespace}}", "{{.identity.provider}}-{{ .kind }}"}},
	"human":       {Principals: []string{"{{.human.subject}}", "{{.human.email}}"}},
	"human-only":  {Principals: []string{"{{.human.subject}}"}, AllowedPrincipals: []string{"*@example.com"}},
	"missing":     {Principals: []string{"{{.missing}}"}},
	"id-missing":  {Principals: []string{"ok", "{{.identity.missing}}"}},
	"pipeline":    {Principals: []string{`{{.namespace | printf "%s-x"}}`, `{{if .service_account}}{{.service_account}}{{end}}`}},
	"number":      {Principals: []string{"{{.uid}}"}},
	"nested":      {Principals: []string{"{{.team.name}}", "u-{{.team.id}}"}},
	"invalid":     {Principals: []string{"{{.subject}}"}},
	"not-allowed": {Principals: []string{"{{.namespace}}"}, AllowedPrincipals: []string{"deploy*"}},
	"duplicates":  {Principals: []string{"{{.namespace}}", "agents", "{{.identity.namespace}}"}},
}

// TestIssueLineIsSSHEncoding checks, for every role, key type and
// human, that the certificate line and internal data are what ssh and
// encoding/json make of the certificate parsed back, and that the
// credential's fields name what the certificate holds.
func TestIssueLineIsSSHEncoding(t *testing.T) {
	ctx := context.Background()
	keys := testKeys(t)
	humans := []*core.Principal{nil, {Provider: "sso", Subject: "bob \"<b>&</b>\" é"}}
	for _, caKind := range []string{"ed25519", "ecdsa-p256"} {
		is := newIssuer(t, caKind, equivRoles, nil)
		issued := 0
		for keyName, key := range keys {
			for roleName := range equivRoles {
				for _, h := range humans {
					now := time.Now()
					req := request("l-"+keyName+"-"+roleName, roleName, map[string]string{"public_key": key}, now, now.Add(time.Minute))
					req.Human = h
					res, err := is.Issue(ctx, req)
					if err != nil {
						continue // roles whose principals this identity cannot have; sshcert_test covers the refusals
					}
					issued++
					name := caKind + " " + keyName + " " + roleName
					c := parseCert(t, res.Credential["certificate"])
					if want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c))); res.Credential["certificate"] != want {
						t.Errorf("%s: certificate line differs from ssh.MarshalAuthorizedKey of itself", name)
					}
					wantInternal, _ := json.Marshal(internalData{Serial: c.Serial, KeyID: c.KeyId,
						Fingerprint: ssh.FingerprintSHA256(c.Key), Principals: c.ValidPrincipals})
					if !bytes.Equal(res.Internal, wantInternal) {
						t.Errorf("%s: internal %s, want %s", name, res.Internal, wantInternal)
					}
					if c.Serial != Serial(req.LeaseID) || c.KeyId != keyID(&req) ||
						res.Credential["key_id"] != c.KeyId || res.Credential["principals"] != strings.Join(c.ValidPrincipals, ",") {
						t.Errorf("%s: serial %d, key id %q, credential %q", name, c.Serial, c.KeyId, res.Credential)
					}
				}
			}
		}
		if issued < 20 {
			t.Fatalf("%s: only %d certificates issued: the table tests too little", caKind, issued)
		}
	}
}

func TestIssueConcurrentSharesRoleMapsReadOnly(t *testing.T) {
	is := newIssuer(t, "", equivRoles, nil)
	_, pub := clientKey(t)
	before := is.roles["all-options"]
	crit, ext := maps.Clone(before.criticalOptions), maps.Clone(before.extensions)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				now := time.Now()
				res, err := is.Issue(context.Background(), request(fmt.Sprint(g, "-", i), "all-options", map[string]string{"public_key": pub}, now, now.Add(time.Minute)))
				if err != nil {
					t.Error(err)
					return
				}
				c := parseCert(t, res.Credential["certificate"])
				if !maps.Equal(c.CriticalOptions, crit) || !maps.Equal(c.Extensions, ext) {
					t.Errorf("options %v %v", c.CriticalOptions, c.Extensions)
				}
			}
		})
	}
	wg.Wait()
	if !maps.Equal(is.roles["all-options"].criticalOptions, crit) || !maps.Equal(is.roles["all-options"].extensions, ext) {
		t.Fatal("issuing changed the role's option maps")
	}
	if len(ext) != 4 || len(crit) != 2 {
		t.Fatalf("option maps %v %v", crit, ext)
	}
}

// renderCases are principal templates and whether render should take the
// fast path (no text/template) for them.
var renderCases = []struct {
	tmpl string
	fast bool
}{
	{"{{.service_account}}", true},
	{"{{ .service_account }}", true},
	{"{{- .service_account -}}", true},
	{"  {{- .service_account -}}  ", true},
	{"{{.identity.namespace}}", true},
	{"{{.identity.provider}}", true},
	{"{{.identity.identity}}", true},
	{"{{.identity.human}}", true},
	{"{{.identity.kind}}", true},
	{"{{.identity}}", true},
	{"{{.human}}", true},
	{"{{.human.subject}}", true},
	{"{{.human.email}}", true},
	{"{{.human.missing}}", true},
	{"{{.human.subject.x}}", true},
	{"{{.provider}}", true},
	{"{{.kind}}", true},
	{"{{.subject}}", true},
	{"{{.issuer}}", true},
	{"{{.Provider}}", true},
	{"{{.missing}}", true},
	{"{{.missing.x}}", true},
	{"{{.identity.missing}}", true},
	{"{{.uid}}", true},
	{"{{.ratio}}", true},
	{"{{.flag}}", true},
	{"{{.list}}", true},
	{"{{.nothing}}", true},
	{"{{.nothing.x}}", true},
	{"{{.empty}}", true},
	{"{{.stringer}}", true},
	{"{{.named}}", true},
	{"{{.team.name}}", true},
	{"{{.team.id}}", true},
	{"{{.team.missing}}", true},
	{"{{.team.name.x}}", true},
	{"{{.team.deep.er}}", true},
	{"{{.nilmap.x}}", true},
	{"{{.strmap.x}}", true},
	{"{{.namespace.x}}", true},
	{"deploy", true},
	{"", false},
	{"{{/* comment */}}deploy", true},
	{"{{.namespace}}.hosts.example.com", true},
	{"{{.kind}}-{{.namespace}}", true},
	{"a{{.missing}}b", true},
	{"{{.}}", false},
	{"{{$}}", false},
	{"{{$.namespace}}", false},
	{"{{$x := .namespace}}{{$x}}", false},
	{`{{.namespace | printf "%s"}}`, false},
	{`{{printf "%s" .namespace}}`, false},
	{`{{index . "namespace"}}`, false},
	{"{{if .namespace}}{{.namespace}}{{end}}", false},
	{"{{with .namespace}}{{.}}{{end}}", false},
	{"{{(.team).name}}", false},
	{`{{define "x"}}{{.missing}}{{end}}{{.namespace}}`, true},
	{`{{define "x"}}{{.namespace}}{{end}}{{template "x" .}}`, false},
	{`{{"literal"}}`, false},
	{"{{nil}}", false},
}

type stringer struct{}

func (stringer) String() string { return "from-stringer" }

type named string

var renderPrincipals = map[string]core.Principal{
	"workload": workload(),
	"typed": {Provider: "prod", Kind: "k8s", Subject: "sub", Issuer: "iss",
		Attributes: map[string]any{"namespace": "agents", "uid": int64(1000), "ratio": 1.5, "flag": true,
			"list": []string{"a", "b"}, "nothing": nil, "empty": "", "stringer": stringer{}, "named": named("named-value"),
			"team":     map[string]any{"name": "ops", "id": "7", "deep": map[string]any{"er": "deeper"}},
			"nilmap":   map[string]any(nil),
			"strmap":   map[string]string{"x": "y"},
			"identity": "shadowed-identity", "human": "shadowed-human", "provider": "shadowed-provider", "Provider": "capital",
			"service_account": "deployer"}},
	"bare":     {},
	"no attrs": {Provider: "a", Kind: "b", Subject: "c"},
}

var renderHumans = map[string]*core.Principal{
	"nil":   nil,
	"human": {Provider: "sso", Kind: "oidc", Subject: "alice", Attributes: map[string]any{"email": "alice@example.com", "subject": "shadowed"}},
	"bare":  {},
}

func TestRenderMatchesTemplate(t *testing.T) {
	for _, tc := range renderCases {
		r, err := newRole(RoleConfig{Principals: []string{tc.tmpl}})
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		if got := r.fast[0] != nil; got != tc.fast {
			t.Errorf("%q: fast path %v, want %v", tc.tmpl, got, tc.fast)
		}
		for pName, p := range renderPrincipals {
			for hName, h := range renderHumans {
				checkExpand(t, r, p, h, tc.tmpl+" over "+pName+", human "+hName)
			}
		}
	}
}

// checkExpand holds the fast path of r's one template to text/template:
// where it answers, the template executes without error to the same name.
func checkExpand(t *testing.T, r role, p core.Principal, h *core.Principal, name string) {
	t.Helper()
	got, ok := expand(r.fast[0], &p, h)
	if !ok {
		return
	}
	var b strings.Builder
	if err := r.principals[0].Execute(&b, templateData(&p, h)); err != nil || b.String() != got {
		t.Errorf("%s: fast path %q, text/template %q, %v", name, got, b.String(), err)
	}
}

func FuzzRenderMatchesTemplate(f *testing.F) {
	for _, tc := range renderCases {
		f.Add(tc.tmpl, "agents", "alice")
	}
	f.Add("{{.namespace}}", "a b", "")
	f.Add("{{.human.subject}}", "", "x@y")
	f.Fuzz(func(t *testing.T, tmpl, attr, human string) {
		r, err := newRole(RoleConfig{Principals: []string{tmpl}})
		if err != nil || len(r.fast) != 1 {
			return
		}
		p := core.Principal{Provider: "p", Kind: "k", Subject: attr, Attributes: map[string]any{"namespace": attr, "m": map[string]any{"x": attr}}}
		h := &core.Principal{Subject: human, Attributes: map[string]any{"a": human}}
		for _, h := range []*core.Principal{nil, h} {
			checkExpand(t, r, p, h, tmpl)
		}
	})
}

func TestValidPrincipal(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"deploy", true}, {"a.b_c-d@e+f", true}, {"A-Z0-9", true}, {strings.Repeat("a", 255), true},
		{"", false}, {strings.Repeat("a", 256), false}, {"a b", false}, {"a,b", false}, {"a\x00", false},
		{"é", false}, {"a\xff", false}, {"\u2028", false}, {"a/b", false}, {"a:b", false}, {"~", false},
	} {
		if got := validPrincipal(tc.s); got != tc.ok {
			t.Errorf("validPrincipal(%q) = %v, want %v", tc.s, got, tc.ok)
		}
	}
}

func TestKeyIDNamesLeasePrincipalAndHuman(t *testing.T) {
	p := core.Principal{Provider: "k8s", Subject: "system:serviceaccount:agents:bot"}
	for _, tc := range []struct {
		human *core.Principal
		want  string
	}{
		{nil, "stint lease=l-1 principal=k8s:system:serviceaccount:agents:bot"},
		{&core.Principal{Subject: "alice@example.com"}, "stint lease=l-1 principal=k8s:system:serviceaccount:agents:bot human=alice@example.com"},
	} {
		req := issuer.Request{LeaseID: "l-1", Principal: p, Human: tc.human}
		if got := keyID(&req); got != tc.want {
			t.Errorf("keyID = %q, want %q", got, tc.want)
		}
	}
}

// TestSerialKnownAnswers pins the serial (and so every KRL stint has
// published) to SHA-256("stint-ssh-serial\x00" + lease id)[:8], big-endian;
// the values were computed independently (Python's hashlib).
func TestSerialKnownAnswers(t *testing.T) {
	for id, want := range map[string]uint64{
		"":                                     17254245544124800861,
		"lease-1":                              16814597393020067555,
		"01a2184d-6911-7bfc-a4a0-f82331a41c1f": 12748243570287767983,
	} {
		if got := Serial(id); got != want {
			t.Errorf("Serial(%q) = %d, want %d", id, got, want)
		}
	}
}

// rawKey is a PublicKey with arbitrary wire bytes, for encoding tests.
type rawKey []byte

func (k rawKey) Type() string                        { return "raw-key" }
func (k rawKey) Marshal() []byte                     { return k }
func (k rawKey) Verify([]byte, *ssh.Signature) error { return errors.New("raw key") }

func TestAuthorizedKeyMatchesMarshalAuthorizedKey(t *testing.T) {
	// Every length across the 768-byte chunk boundaries.
	wire := make([]byte, 3*768+10)
	if _, err := rand.Read(wire); err != nil {
		t.Fatal(err)
	}
	for n := range len(wire) {
		k := rawKey(wire[:n])
		if got, want := authorizedKey(k.Type(), k.Marshal())+"\n", string(ssh.MarshalAuthorizedKey(k)); got != want {
			t.Fatalf("length %d: %q, want %q", n, got, want)
		}
	}
	// Real keys and certificates.
	is := newIssuer(t, "rsa-3072", equivRoles, nil)
	for name, line := range testKeys(t) {
		now := time.Now()
		res, err := is.Issue(context.Background(), request("l", "all-options", map[string]string{"public_key": line}, now, now.Add(time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		c := parseCert(t, res.Credential["certificate"])
		for _, k := range []ssh.PublicKey{c, c.Key, c.SignatureKey} {
			if got, want := authorizedKey(k.Type(), k.Marshal())+"\n", string(ssh.MarshalAuthorizedKey(k)); got != want {
				t.Errorf("%s %s: %q, want %q", name, k.Type(), got, want)
			}
			if got, want := fingerprintSHA256(k.Marshal()), ssh.FingerprintSHA256(k); got != want {
				t.Errorf("%s %s: fingerprint %q, want %q", name, k.Type(), got, want)
			}
		}
	}
}

func TestFingerprintMatchesSSH(t *testing.T) {
	for name, line := range testKeys(t) {
		if line == "" {
			continue
		}
		pub, err := ParsePublicKey(line)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fingerprintSHA256(pub.Marshal()), ssh.FingerprintSHA256(pub); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	for n := range 200 {
		k := rawKey(bytes.Repeat([]byte{byte(n)}, n))
		if got, want := fingerprintSHA256(k), ssh.FingerprintSHA256(k); got != want {
			t.Errorf("raw %d: %q, want %q", n, got, want)
		}
	}
}

var jsonStrings = []string{
	"", "plain", "stint lease=l principal=prod:system:serviceaccount:agents:deployer human=alice",
	`quote"`, `back\slash`, "<script>&amp;</script>", "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f",
	"é ü 中文 🙂", "\u2028\u2029", "invalid \xff\xfe utf-8", "\xed\xa0\x80", "SHA256:abc+/def",
	"a~b`c{d}|e", "a<b", "a>b", "a&b", strings.Repeat("x", 1000),
}

func TestAppendInternalMatchesJSON(t *testing.T) {
	principalSets := [][]string{nil, {}, {"deploy"}, {"deploy", "ops-1", "a.b_c-d@e+f"}}
	for _, s := range jsonStrings {
		principalSets = append(principalSets, []string{s, "ok"})
	}
	for _, serial := range []uint64{0, 1, 1 << 53, 1<<64 - 1} {
		for _, keyID := range jsonStrings {
			for _, fp := range []string{"SHA256:" + strings.Repeat("A", 43), jsonStrings[4]} {
				for _, ps := range principalSets {
					want, err := json.Marshal(internalData{Serial: serial, KeyID: keyID, Fingerprint: fp, Principals: ps})
					if err != nil {
						t.Fatal(err)
					}
					if got := appendInternal(nil, serial, keyID, fp, ps); !bytes.Equal(got, want) {
						t.Fatalf("got  %s\nwant %s", got, want)
					}
				}
			}
		}
	}
}

func TestFirstFieldIsStringsFields(t *testing.T) {
	texts := []string{"", " ", "ssh-dss", " ssh-dss AAAA", "\tssh-dss-cert-v01@openssh.com x", "ssh-dssx AAAA",
		"\u00a0ssh-dss AAAA", "\u2003ssh-dss\u2003AAAA", "\xffssh-dss AAAA", "ssh-dss\x85AAAA",
		"a b", "  a  b  ", "\n", "a\u2028b", "\u2028a"}
	for _, line := range testKeys(t) {
		texts = append(texts, line, " "+line+"\n")
	}
	for _, s := range texts {
		f := strings.Fields(s)
		want := ""
		if len(f) > 0 {
			want = f[0]
		}
		if got := firstField(s); got != want {
			t.Errorf("firstField(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestCertWireMatchesMarshal(t *testing.T) {
	ctx := context.Background()
	keys := testKeys(t)
	for _, caKind := range []string{"ed25519", "ecdsa-p256", "rsa-3072"} {
		t.Run(caKind, func(t *testing.T) {
			is := newIssuer(t, caKind, equivRoles, nil)
			ca, err := is.CA(ctx)
			if err != nil {
				t.Fatal(err)
			}
			signed := 0
			for keyName, key := range keys {
				pub, err := ParsePublicKey(key)
				if err != nil {
					continue // testKeys holds refused keys too
				}
				signed++
				cert := &ssh.Certificate{Key: pub, Serial: 7, CertType: ssh.UserCert, KeyId: "k " + keyName,
					ValidPrincipals: []string{"ops", "deploy"}, ValidBefore: 1 << 40,
					Permissions: ssh.Permissions{CriticalOptions: map[string]string{"force-command": "id"},
						Extensions: map[string]string{"permit-pty": ""}}}
				signer, captured := capturing(ca)
				if err := cert.SignCert(rand.Reader, signer); err != nil {
					t.Fatal(err)
				}
				if captured == nil || captured.signed == nil {
					t.Fatalf("%s: the CA signer did not capture the signed bytes (fast path not taken)", keyName)
				}
				if got, want := certWire(cert, captured), cert.Marshal(); !bytes.Equal(got, want) {
					t.Errorf("%s: certWire differs from Certificate.Marshal", keyName)
				}
			}
			if signed < 5 {
				t.Fatalf("only %d user keys signed", signed)
			}
		})
	}
}
