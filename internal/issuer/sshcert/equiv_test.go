package sshcert

// Issue builds its output without the generic helpers it used to call
// (ssh.MarshalAuthorizedKey, ssh.FingerprintSHA256, json.Marshal,
// fmt, text/template for plain field references, fresh option maps). The
// tests here hold the fast paths to those helpers byte for byte: the
// reference* functions are Issue and its helpers as they were written
// with them.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
)

// referenceIssue is Issue as written with the generic helpers.
func referenceIssue(is *Issuer, ctx context.Context, req issuer.Request) (issuer.Result, error) {
	r, ok := is.roles[req.Role]
	if !ok {
		return issuer.Result{}, core.Invalid("target %s has no role %q", is.cfg.Name, req.Role)
	}
	cred := core.Credential{}
	var pub ssh.PublicKey
	if text := strings.TrimSpace(req.Params["public_key"]); text != "" {
		var err error
		if pub, err = referenceParsePublicKey(text); err != nil {
			return issuer.Result{}, err
		}
	} else {
		p, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return issuer.Result{}, fmt.Errorf("sshcert %s: generate key: %w", is.cfg.Name, err)
		}
		if pub, err = ssh.NewPublicKey(p); err != nil {
			return issuer.Result{}, fmt.Errorf("sshcert %s: generate key: %w", is.cfg.Name, err)
		}
		block, err := ssh.MarshalPrivateKey(priv, "stint "+req.LeaseID)
		if err != nil {
			return issuer.Result{}, fmt.Errorf("sshcert %s: encode key: %w", is.cfg.Name, err)
		}
		cred["private_key"] = string(pemEncode(block.Type, block.Bytes))
		cred["public_key"] = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	}
	principals, err := referenceRender(r, req.Principal, req.Human, req.Params["principals"])
	if err != nil {
		return issuer.Result{}, err
	}
	ca, err := is.CA(ctx)
	if err != nil {
		return issuer.Result{}, err
	}
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          referenceSerial(req.LeaseID),
		CertType:        r.certType,
		KeyId:           referenceKeyID(req),
		ValidPrincipals: principals,
		ValidAfter:      unixSeconds(req.IssuedAt.Add(-Backdate)),
		ValidBefore:     unixSeconds(req.ExpiresAt),
		Permissions:     ssh.Permissions{CriticalOptions: map[string]string{}, Extensions: map[string]string{}},
	}
	for k, v := range r.CriticalOptions {
		cert.CriticalOptions[k] = v
	}
	for _, e := range r.Extensions {
		cert.Extensions[e] = ""
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return issuer.Result{}, fmt.Errorf("sshcert %s: sign: %w", is.cfg.Name, err)
	}
	internal, err := json.Marshal(internalData{Serial: cert.Serial, KeyID: cert.KeyId,
		Fingerprint: ssh.FingerprintSHA256(pub), Principals: principals})
	if err != nil {
		return issuer.Result{}, fmt.Errorf("sshcert %s: %w", is.cfg.Name, err)
	}
	cred["certificate"] = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	cred["serial"] = strconv.FormatUint(cert.Serial, 10)
	cred["key_id"] = cert.KeyId
	cred["principals"] = strings.Join(principals, ",")
	cred["cert_type"] = map[uint32]string{ssh.UserCert: "user", ssh.HostCert: "host"}[r.certType]
	return issuer.Result{Credential: cred, Internal: internal}, nil
}

func referenceSerial(leaseID string) uint64 {
	h := sha256.Sum256([]byte("stint-ssh-serial\x00" + leaseID))
	s := binary.BigEndian.Uint64(h[:8])
	if s == 0 {
		s = 1
	}
	return s
}

func referenceKeyID(req issuer.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stint lease=%s principal=%s:%s", req.LeaseID, req.Principal.Provider, req.Principal.Subject)
	if req.Human != nil {
		fmt.Fprintf(&b, " human=%s", req.Human.Subject)
	}
	return b.String()
}

func referenceRender(r role, p core.Principal, h *core.Principal, requested string) ([]string, error) {
	data := p.Map()
	data["identity"] = p.Map()
	data["human"] = h.Map()
	var out []string
	for _, t := range r.principals {
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, core.Forbidden("a certificate principal cannot be derived from this identity", err)
		}
		name := b.String()
		if !referenceValidPrincipal(name) {
			return nil, core.Forbidden("a certificate principal derived from this identity is not a valid name", fmt.Errorf("principal %q", name))
		}
		if len(r.AllowedPrincipals) > 0 && !slices.ContainsFunc(r.AllowedPrincipals, func(pat string) bool {
			ok, _ := path.Match(pat, name)
			return ok
		}) {
			return nil, core.Forbidden("a certificate principal derived from this identity is not allowed by the role", fmt.Errorf("principal %q", name))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if requested = strings.TrimSpace(requested); requested != "" {
		var narrowed []string
		for _, n := range strings.Split(requested, ",") {
			n = strings.TrimSpace(n)
			if !slices.Contains(out, n) {
				return nil, core.Invalid("principal %q is not one this role grants you", n)
			}
			if !slices.Contains(narrowed, n) {
				narrowed = append(narrowed, n)
			}
		}
		out = narrowed
	}
	return out, nil
}

func referenceValidPrincipal(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("._-@+", c):
		default:
			return false
		}
	}
	return true
}

func referenceParsePublicKey(text string) (ssh.PublicKey, error) {
	if len(text) > maxPublicKeyBytes {
		return nil, core.Invalid("public_key is too long")
	}
	if strings.Contains(text, "PRIVATE KEY") {
		return nil, core.Invalid("public_key holds a private key; send only the public key")
	}
	if f := strings.Fields(text); len(f) > 0 && (f[0] == "ssh-dss" || f[0] == "ssh-dss-cert-v01@openssh.com") {
		return nil, core.Invalid("public_key: dsa keys are not accepted (use ed25519)")
	}
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		return nil, core.Invalid("public_key is not an OpenSSH public key (want e.g. \"ssh-ed25519 AAAA…\")")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, core.Invalid("public_key must hold exactly one key")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, core.Invalid("public_key is a certificate; send the plain public key")
	}
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
	case ssh.KeyAlgoRSA:
		cp, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return nil, core.Invalid("public_key: unreadable rsa key")
		}
		rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return nil, core.Invalid("public_key: unreadable rsa key")
		}
		if bits := rk.N.BitLen(); bits < MinRSABits {
			return nil, core.Invalid("public_key: rsa key of %d bits is below the %d-bit floor", bits, MinRSABits)
		}
	default:
		return nil, core.Invalid("public_key: key type %s is not accepted", pub.Type())
	}
	return pub, nil
}

// sameError reports whether two errors would be told apart by a caller:
// message, kind, code, public text, and the type and text of the cause.
func sameError(a, b error) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	if a.Error() != b.Error() || reflect.TypeOf(a) != reflect.TypeOf(b) {
		return false
	}
	var ca, cb *core.Error
	if errors.As(a, &ca) != errors.As(b, &cb) {
		return false
	}
	if ca != nil && (ca.Kind != cb.Kind || ca.Code != cb.Code || ca.Public != cb.Public) {
		return false
	}
	ua, ub := errors.Unwrap(a), errors.Unwrap(b)
	return reflect.TypeOf(ua) == reflect.TypeOf(ub) && fmt.Sprint(ua) == fmt.Sprint(ub)
}

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

func TestIssueMatchesReference(t *testing.T) {
	ctx := context.Background()
	keys := testKeys(t)
	humans := map[string]*core.Principal{
		"no human": nil,
		"human": {Provider: "sso", Kind: "oidc", Subject: "alice@example.com",
			Attributes: map[string]any{"email": "alice@example.com"}},
		"odd human": {Provider: "sso", Subject: "bob \"<b>&</b>\" é\u2028\x01\xff",
			Attributes: map[string]any{"email": 7.0}},
	}
	workloads := map[string]core.Principal{
		"workload": workload(),
		"rich": {Provider: "gh", Kind: "github-actions", Subject: "repo:o/r:ref:refs/heads/main", Issuer: "https://token.actions.githubusercontent.com",
			Attributes: map[string]any{"namespace": "agents", "service_account": "deployer", "uid": int64(1000),
				"team": map[string]any{"name": "ops-team", "id": "42"}, "identity": "shadowed", "kind": "shadowed"}},
		"odd": {Provider: "p\"<>&", Kind: "k", Subject: "s\n\t\\ \u00e9\u2029",
			Attributes: map[string]any{"namespace": "agents", "service_account": []string{"a"}}},
	}
	requests := []string{"", "deploy", " deploy , deploy,deploy ", "root", ","}
	for _, caKind := range []string{"ed25519", "ecdsa-p256", "rsa-3072"} {
		t.Run(caKind, func(t *testing.T) {
			is := newIssuer(t, caKind, equivRoles, nil)
			if _, err := is.CA(ctx); err != nil {
				t.Fatal(err)
			}
			now := time.Unix(1_800_000_000, 0)
			seed := uint64(0)
			n := 0
			for _, keyName := range slices.Sorted(maps.Keys(keys)) {
				if caKind == "rsa-3072" && !strings.HasPrefix(keyName, "ed25519") && !strings.HasPrefix(keyName, "rsa") {
					continue // rsa signing is slow; the other key types are covered by the faster CAs
				}
				for _, roleName := range slices.Sorted(maps.Keys(equivRoles)) {
					for _, wName := range slices.Sorted(maps.Keys(workloads)) {
						for _, hName := range slices.Sorted(maps.Keys(humans)) {
							for _, requested := range requests {
								if requested != "" && (roleName != "ops" || wName != "workload") {
									continue
								}
								seed++
								params := map[string]string{"public_key": keys[keyName], "principals": requested}
								req := issuer.Request{LeaseID: "lease-" + strconv.FormatUint(seed, 10), Role: roleName,
									Principal: workloads[wName], Human: humans[hName],
									IssuedAt: now, ExpiresAt: now.Add(time.Duration(seed) * time.Minute), Params: params}
								cryptotest.SetGlobalRandom(t, seed)
								got, gotErr := is.Issue(ctx, req)
								cryptotest.SetGlobalRandom(t, seed)
								want, wantErr := referenceIssue(is, ctx, req)
								name := fmt.Sprintf("key %s role %s principal %s %s principals %q", keyName, roleName, wName, hName, requested)
								if !sameError(gotErr, wantErr) {
									t.Fatalf("%s: error %v, want %v", name, gotErr, wantErr)
								}
								if !reflect.DeepEqual(got, want) {
									t.Fatalf("%s:\n got %q\n%s\nwant %q\n%s", name, got.Credential, got.Internal, want.Credential, want.Internal)
								}
								if gotErr == nil {
									n++
								}
							}
						}
					}
				}
			}
			if n < 50 {
				t.Fatalf("only %d certificates issued: the table tests too little", n)
			}
			if _, ok := is.signer.Load().s.(caSigner); !ok {
				t.Errorf("Issue signed with %T, not the caching caSigner", is.signer.Load().s)
			}
		})
	}
}

// TestIssueLineIsSSHEncoding checks, without fixing the random stream,
// that the certificate line and internal data are what ssh and
// encoding/json make of the certificate parsed back.
func TestIssueLineIsSSHEncoding(t *testing.T) {
	ctx := context.Background()
	keys := testKeys(t)
	for _, caKind := range []string{"ed25519", "ecdsa-p256"} {
		is := newIssuer(t, caKind, equivRoles, nil)
		for keyName, key := range keys {
			now := time.Now()
			res, err := is.Issue(ctx, request("l-"+keyName, "all-options", map[string]string{"public_key": key}, now, now.Add(time.Minute)))
			if err != nil {
				t.Fatal(err)
			}
			c := parseCert(t, res.Credential["certificate"])
			if want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c))); res.Credential["certificate"] != want {
				t.Errorf("%s %s: certificate line differs from ssh.MarshalAuthorizedKey of itself", caKind, keyName)
			}
			wantInternal, _ := json.Marshal(internalData{Serial: c.Serial, KeyID: c.KeyId,
				Fingerprint: ssh.FingerprintSHA256(c.Key), Principals: c.ValidPrincipals})
			if !bytes.Equal(res.Internal, wantInternal) {
				t.Errorf("%s %s: internal %s, want %s", caKind, keyName, res.Internal, wantInternal)
			}
			if _, ok := c.Key.(wireKey); ok {
				t.Error("the cached key type leaked into the certificate")
			}
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
				for _, requested := range []string{"", "agents", "deployer,deployer"} {
					got, gotErr := r.render(&p, h, requested)
					want, wantErr := referenceRender(r, p, h, requested)
					if !sameError(gotErr, wantErr) || !slices.Equal(got, want) {
						t.Errorf("%q over %s, human %s, requested %q: %q, %v; want %q, %v", tc.tmpl, pName, hName, requested, got, gotErr, want, wantErr)
					}
				}
			}
		}
	}
}

func TestRenderManyTemplatesMatchesTemplate(t *testing.T) {
	var tmpls []string
	for _, tc := range renderCases {
		if tc.tmpl != "" {
			tmpls = append(tmpls, tc.tmpl)
		}
	}
	for _, allowed := range [][]string{nil, {"deploy*", "agents", "*.hosts.example.com"}} {
		// Every template together, and sliding windows of three, so a
		// fast one runs before and after text/template ones.
		sets := [][]string{tmpls}
		for i := 0; i+3 <= len(tmpls); i++ {
			sets = append(sets, tmpls[i:i+3])
		}
		for _, set := range sets {
			r, err := newRole(RoleConfig{Principals: set, AllowedPrincipals: allowed})
			if err != nil {
				t.Fatal(err)
			}
			for pName, p := range renderPrincipals {
				for hName, h := range renderHumans {
					got, gotErr := r.render(&p, h, "")
					want, wantErr := referenceRender(r, p, h, "")
					if !sameError(gotErr, wantErr) || !slices.Equal(got, want) {
						t.Errorf("%q over %s, human %s: %q, %v; want %q, %v", set, pName, hName, got, gotErr, want, wantErr)
					}
				}
			}
		}
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
		if err != nil {
			return
		}
		p := core.Principal{Provider: "p", Kind: "k", Subject: attr, Attributes: map[string]any{"namespace": attr, "m": map[string]any{"x": attr}}}
		h := &core.Principal{Subject: human, Attributes: map[string]any{"a": human}}
		for _, h := range []*core.Principal{nil, h} {
			got, gotErr := r.render(&p, h, "")
			want, wantErr := referenceRender(r, p, h, "")
			if !sameError(gotErr, wantErr) || !slices.Equal(got, want) {
				t.Fatalf("%q: %q, %v; want %q, %v", tmpl, got, gotErr, want, wantErr)
			}
		}
	})
}

func TestValidPrincipalMatchesReference(t *testing.T) {
	for _, s := range []string{"", "a", "deploy", "a.b_c-d@e+f", "A-Z0-9", "a b", "a,b", "a\x00", "é", "a\xff", "\u2028",
		"a/b", "a:b", "~", strings.Repeat("a", 255), strings.Repeat("a", 256), strings.Repeat("é", 100)} {
		if got, want := validPrincipal(s), referenceValidPrincipal(s); got != want {
			t.Errorf("validPrincipal(%q) = %v, want %v", s, got, want)
		}
	}
	for c := range 256 {
		s := "x" + string([]byte{byte(c)})
		if got, want := validPrincipal(s), referenceValidPrincipal(s); got != want {
			t.Errorf("validPrincipal(%q) = %v, want %v", s, got, want)
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

func TestKeyIDMatchesReference(t *testing.T) {
	for _, leaseID := range []string{"", "lease-1", "%s %d", "é\n"} {
		for _, p := range renderPrincipals {
			for _, h := range renderHumans {
				req := issuer.Request{LeaseID: leaseID, Principal: p, Human: h}
				if got, want := keyID(&req), referenceKeyID(req); got != want {
					t.Errorf("%q, want %q", got, want)
				}
			}
		}
	}
}

func TestSerialMatchesReference(t *testing.T) {
	for _, id := range []string{"", "x", "lease-1", strings.Repeat("l", 110), strings.Repeat("l", 111), strings.Repeat("l", 500)} {
		if got, want := Serial(id), referenceSerial(id); got != want {
			t.Errorf("Serial(%q) = %d, want %d", id, got, want)
		}
	}
}

func TestParsePublicKeyMatchesReference(t *testing.T) {
	texts := []string{"", " ", "ssh-dss", " ssh-dss AAAA", "\tssh-dss-cert-v01@openssh.com x", "ssh-dssx AAAA",
		"\u00a0ssh-dss AAAA", "\u2003ssh-dss\u2003AAAA", "\xffssh-dss AAAA", "ssh-dss\x85AAAA",
		"ssh-ed25519 AAAA", "-----BEGIN OPENSSH PRIVATE KEY-----", strings.Repeat("a", maxPublicKeyBytes+1)}
	for _, line := range testKeys(t) {
		if line != "" {
			texts = append(texts, line, line+"\n", line+"\n \t", line+"\n"+line, " "+line)
		}
	}
	for _, text := range texts {
		got, gotErr := ParsePublicKey(text)
		want, wantErr := referenceParsePublicKey(text)
		if !sameError(gotErr, wantErr) {
			t.Errorf("%q: error %v, want %v", text, gotErr, wantErr)
		}
		if (got == nil) != (want == nil) || got != nil && !bytes.Equal(got.Marshal(), want.Marshal()) {
			t.Errorf("%q: key differs", text)
		}
	}
	for _, s := range append(texts, "a b", "  a  b  ", "\n", "a\u2028b", "\u2028a") {
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
			ca, err := is.issueSigner(ctx)
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
