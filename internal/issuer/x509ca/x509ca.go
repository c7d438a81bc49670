// Package x509ca is the issuer for targets of type x509: a small
// certificate authority that signs short-lived X.509 certificates (SPIFFE
// X.509-SVIDs when the role names a SPIFFE ID) for mTLS. Its CA key is
// generated and kept sealed by stint, or an intermediate loaded from files.
// Certificates live for an hour or so and are not revoked: there is no
// CRL or OCSP, the short lifetime is the revocation.
package x509ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
)

// Backdate is how far before issuance a certificate becomes valid, for
// peers whose clocks lag.
const Backdate = 60 * time.Second

// DefaultTTL is a role's lifetime when it sets none.
const DefaultTTL = time.Hour

// caLifetime is how long a generated root stays valid.
const caLifetime = 10 * 365 * 24 * time.Hour

// CAKinds are the kinds a generated CA key may be.
var CAKinds = []string{"ecdsa-p256", "ed25519", "rsa-3072", "rsa-4096"}

// KeySource hands out the CA private key for a purpose, generating it on
// first use (keys.Manager does).
type KeySource interface {
	Signer(ctx context.Context, purpose, kind string) (crypto.Signer, error)
}

// MetaStore keeps the generated CA certificate so every replica and every
// restart publishes the same one (store.Store does).
type MetaStore interface {
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMetaIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
}

// RoleConfig is one x509 role.
type RoleConfig struct {
	// SPIFFEID is a text/template over the principal's attributes (top
	// level, and under .identity and .human) rendering the URI SAN, e.g.
	// spiffe://example.org/ns/{{.namespace}}/sa/{{.service_account}}.
	SPIFFEID string
	// DNSNames is the allow-list of DNS SANs a caller may ask for: exact
	// names, or "*.suffix" matching any name under suffix.
	DNSNames []string
	// Usages are "client" and/or "server" (default both).
	Usages     []string
	DefaultTTL time.Duration
}

// Config configures one x509 target.
type Config struct {
	Name string
	// KeyType is the kind of a generated CA key (default ecdsa-p256).
	KeyType string
	// CertFile and KeyFile load an intermediate CA instead (PEM).
	CertFile, KeyFile string
	// BundleFile holds the trust anchors to publish (PEM); required for an
	// intermediate that is not self-signed.
	BundleFile string
	// TrustDomain is the SPIFFE trust domain every SPIFFE ID must be in
	// (default: the one the role templates name).
	TrustDomain string
	Roles       map[string]RoleConfig
	Keys        KeySource
	Meta        MetaStore
	Now         func() time.Time
}

// Issuer signs certificates for one x509 target.
type Issuer struct {
	cfg   Config
	td    spiffeid.TrustDomain
	roles map[string]role

	mu sync.Mutex
	ca *authority // nil until loaded
}

// authority is the signing certificate and key, the chain above it and
// the anchors relying parties trust.
type authority struct {
	cert   *x509.Certificate
	key    crypto.Signer
	chain  []*x509.Certificate // intermediates to send after the leaf
	bundle []*x509.Certificate
}

type role struct {
	RoleConfig
	spiffe *template.Template
	ekus   []x509.ExtKeyUsage
}

// New checks the config, loads a file-based CA at once (so a bad file
// fails at start) and parses the role templates.
func New(cfg Config) (*Issuer, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	is := &Issuer{cfg: cfg, roles: map[string]role{}}
	switch {
	case cfg.CertFile != "" || cfg.KeyFile != "":
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return nil, fmt.Errorf("x509ca %s: cert_file and key_file go together", cfg.Name)
		}
		ca, err := loadAuthority(cfg.CertFile, cfg.KeyFile, cfg.BundleFile)
		if err != nil {
			return nil, fmt.Errorf("x509ca %s: %w", cfg.Name, err)
		}
		is.ca = ca
	default:
		if cfg.Keys == nil || cfg.Meta == nil {
			return nil, fmt.Errorf("x509ca %s: a generated ca needs a key source and a meta store", cfg.Name)
		}
		if cfg.KeyType == "" {
			is.cfg.KeyType = "ecdsa-p256"
		}
		if !slices.Contains(CAKinds, is.cfg.KeyType) {
			return nil, fmt.Errorf("x509ca %s: key_type %q: want one of %s", cfg.Name, cfg.KeyType, strings.Join(CAKinds, ", "))
		}
		if cfg.BundleFile != "" {
			return nil, fmt.Errorf("x509ca %s: bundle_file applies to a ca loaded from cert_file", cfg.Name)
		}
	}
	td := cfg.TrustDomain
	for name, rc := range cfg.Roles {
		r, rtd, err := newRole(rc)
		if err != nil {
			return nil, fmt.Errorf("x509ca %s: role %s: %w", cfg.Name, name, err)
		}
		if rtd != "" && td == "" {
			td = rtd
		}
		if rtd != "" && rtd != td {
			return nil, fmt.Errorf("x509ca %s: role %s: spiffe id is in trust domain %s, not %s", cfg.Name, name, rtd, td)
		}
		is.roles[name] = r
	}
	if td != "" {
		var err error
		if is.td, err = spiffeid.TrustDomainFromString(td); err != nil {
			return nil, fmt.Errorf("x509ca %s: trust domain %q: %w", cfg.Name, td, err)
		}
	}
	return is, nil
}

// newRole parses a role; it returns the trust domain its SPIFFE ID
// template names literally, if any.
func newRole(rc RoleConfig) (role, string, error) {
	r := role{RoleConfig: rc}
	if rc.SPIFFEID == "" && len(rc.DNSNames) == 0 {
		return role{}, "", fmt.Errorf("a role needs spiffe_id or dns_names")
	}
	var td string
	if rc.SPIFFEID != "" {
		rest, ok := strings.CutPrefix(rc.SPIFFEID, "spiffe://")
		if !ok {
			return role{}, "", fmt.Errorf("spiffe_id %q must start with spiffe://", rc.SPIFFEID)
		}
		host, _, _ := strings.Cut(rest, "/")
		if host == "" || strings.Contains(host, "{{") {
			return role{}, "", fmt.Errorf("spiffe_id %q: the trust domain must be literal", rc.SPIFFEID)
		}
		td = host
		t, err := template.New("spiffe_id").Option("missingkey=error").Parse(rc.SPIFFEID)
		if err != nil {
			return role{}, "", fmt.Errorf("spiffe_id: %w", err)
		}
		r.spiffe = t
	}
	for _, d := range rc.DNSNames {
		if strings.TrimPrefix(d, "*.") == "" || strings.Contains(strings.TrimPrefix(d, "*."), "*") {
			return role{}, "", fmt.Errorf("dns name pattern %q: want a name or *.suffix", d)
		}
	}
	usages := rc.Usages
	if len(usages) == 0 {
		usages = []string{"client", "server"}
	}
	for _, u := range usages {
		switch u {
		case "client":
			r.ekus = append(r.ekus, x509.ExtKeyUsageClientAuth)
		case "server":
			r.ekus = append(r.ekus, x509.ExtKeyUsageServerAuth)
		default:
			return role{}, "", fmt.Errorf("usage %q: want client or server", u)
		}
	}
	return r, td, nil
}

// Roles lists the role names.
func (is *Issuer) Roles() []string {
	out := make([]string, 0, len(is.roles))
	for n := range is.roles {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// DefaultTTL is the role's lifetime (1h when unset).
func (is *Issuer) DefaultTTL(roleName string) time.Duration {
	if r, ok := is.roles[roleName]; ok && r.DefaultTTL > 0 {
		return r.DefaultTTL
	}
	return DefaultTTL
}

// TrustDomain is the SPIFFE trust domain (zero when no role names one).
func (is *Issuer) TrustDomain() spiffeid.TrustDomain { return is.td }

// Bundle returns the trust anchors relying parties should hold.
func (is *Issuer) Bundle(ctx context.Context) ([]*x509.Certificate, error) {
	ca, err := is.authority(ctx)
	if err != nil {
		return nil, err
	}
	return ca.bundle, nil
}

func (is *Issuer) authority(ctx context.Context) (*authority, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.ca != nil {
		return is.ca, nil
	}
	key, err := is.cfg.Keys.Signer(ctx, "x509-ca:"+is.cfg.Name, is.cfg.KeyType)
	if err != nil {
		return nil, fmt.Errorf("x509ca %s: ca key: %w", is.cfg.Name, err)
	}
	cert, err := is.rootCert(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("x509ca %s: %w", is.cfg.Name, err)
	}
	is.ca = &authority{cert: cert, key: key, bundle: []*x509.Certificate{cert}}
	return is.ca, nil
}

// rootCert returns the self-signed certificate of the generated key,
// creating it once for all replicas through a write-once meta record.
func (is *Issuer) rootCert(ctx context.Context, key crypto.Signer) (*x509.Certificate, error) {
	metaKey := "x509ca/" + is.cfg.Name + "/root"
	der, err := is.cfg.Meta.GetMeta(ctx, metaKey)
	if err != nil {
		now := is.cfg.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          randomSerial(),
			Subject:               pkixName("stint " + is.cfg.Name + " CA"),
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(caLifetime),
			IsCA:                  true,
			BasicConstraintsValid: true,
			MaxPathLenZero:        true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		}
		if !is.td.IsZero() {
			tmpl.URIs = []*url.URL{is.td.ID().URL()}
		}
		fresh, cerr := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if cerr != nil {
			return nil, fmt.Errorf("create root certificate: %w", cerr)
		}
		if der, err = is.cfg.Meta.PutMetaIfAbsent(ctx, metaKey, fresh); err != nil {
			return nil, fmt.Errorf("store root certificate: %w", err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("stored root certificate: %w", err)
	}
	if !publicKeyEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("stored root certificate is not for the ca key")
	}
	return cert, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

func randomSerial() *big.Int {
	// 128 random bits, positive: unique without coordination.
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic("x509ca: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

// internalData is what the lease keeps.
type internalData struct {
	Serial   string `json:"serial"`
	SPIFFEID string `json:"spiffe_id,omitempty"`
}

// Issue signs a certificate for the caller's CSR (params csr) or for a
// fresh ECDSA P-256 key returned once in the credential. DNS SANs come
// from the CSR or params dns_names (comma-separated), each checked
// against the role's allow-list; the URI SAN is the role's SPIFFE ID.
func (is *Issuer) Issue(ctx context.Context, req issuer.Request) (issuer.Result, error) {
	r, ok := is.roles[req.Role]
	if !ok {
		return issuer.Result{}, core.Invalid("target %s has no role %q", is.cfg.Name, req.Role)
	}
	id, err := r.render(req.Principal, req.Human, is.td)
	if err != nil {
		return issuer.Result{}, err
	}
	cred := core.Credential{}
	var pub crypto.PublicKey
	var dns []string
	if text := strings.TrimSpace(req.Params["csr"]); text != "" {
		csr, err := ParseCSR(text)
		if err != nil {
			return issuer.Result{}, err
		}
		if err := checkCSRNames(csr, id); err != nil {
			return issuer.Result{}, err
		}
		pub, dns = csr.PublicKey, csr.DNSNames
	} else {
		for _, d := range strings.Split(req.Params["dns_names"], ",") {
			if d = strings.TrimSpace(d); d != "" {
				dns = append(dns, d)
			}
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return issuer.Result{}, fmt.Errorf("x509ca %s: generate key: %w", is.cfg.Name, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return issuer.Result{}, fmt.Errorf("x509ca %s: encode key: %w", is.cfg.Name, err)
		}
		pub = key.Public()
		cred["private_key"] = string(pemCert("PRIVATE KEY", der))
	}
	for _, d := range dns {
		if !r.allowsDNS(d) {
			return issuer.Result{}, core.Invalid("dns name %q is not allowed by role %s", d, req.Role)
		}
	}
	if id.IsZero() && len(dns) == 0 {
		return issuer.Result{}, core.Invalid("role %s issues certificates for DNS names: send a csr or dns_names", req.Role)
	}
	ca, err := is.authority(ctx)
	if err != nil {
		return issuer.Result{}, err
	}
	notAfter := req.ExpiresAt
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter // a leaf never outlives its issuer
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		NotBefore:             req.IssuedAt.Add(-Backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           r.ekus,
		BasicConstraintsValid: true,
		DNSNames:              dns,
	}
	if len(dns) > 0 {
		tmpl.Subject.CommonName = dns[0]
	}
	if _, isRSA := pub.(*rsa.PublicKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // TLS 1.2 RSA key exchange
	}
	if !id.IsZero() {
		tmpl.URIs = []*url.URL{id.URL()}
		cred["spiffe_id"] = id.String()
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return issuer.Result{}, fmt.Errorf("x509ca %s: sign: %w", is.cfg.Name, err)
	}
	serial := hex.EncodeToString(tmpl.SerialNumber.Bytes())
	internal, err := json.Marshal(internalData{Serial: serial, SPIFFEID: cred["spiffe_id"]})
	if err != nil {
		return issuer.Result{}, fmt.Errorf("x509ca %s: %w", is.cfg.Name, err)
	}
	leaf := pemCert("CERTIFICATE", der)
	chain := bytes.Clone(leaf)
	for _, c := range ca.chain {
		chain = append(chain, pemCert("CERTIFICATE", c.Raw)...)
	}
	cred["certificate"] = string(leaf)
	cred["chain"] = string(chain)
	cred["ca_bundle"] = string(encodeBundle(ca.bundle))
	cred["serial"] = serial
	if len(dns) > 0 {
		cred["dns_names"] = strings.Join(dns, ",")
	}
	res := issuer.Result{Credential: cred, Internal: internal}
	if notAfter.Before(req.ExpiresAt) {
		res.ExpiresAt = notAfter
	}
	return res, nil
}

// render expands the SPIFFE ID template and checks the result is a valid
// SPIFFE ID in the target's trust domain.
func (r role) render(p core.Principal, h *core.Principal, td spiffeid.TrustDomain) (spiffeid.ID, error) {
	if r.spiffe == nil {
		return spiffeid.ID{}, nil
	}
	data := p.Map()
	data["identity"] = p.Map()
	data["human"] = h.Map()
	var b bytes.Buffer
	if err := r.spiffe.Execute(&b, data); err != nil {
		return spiffeid.ID{}, core.Forbidden("a SPIFFE ID cannot be derived from this identity", err)
	}
	id, err := spiffeid.FromString(b.String())
	if err != nil {
		return spiffeid.ID{}, core.Forbidden("the SPIFFE ID derived from this identity is not valid", err)
	}
	if !id.MemberOf(td) {
		return spiffeid.ID{}, core.Forbidden("the SPIFFE ID derived from this identity is outside the trust domain", fmt.Errorf("id %s", id))
	}
	return id, nil
}

// allowsDNS reports whether name is on the role's allow-list.
func (r role) allowsDNS(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if !validHostname(name) {
		return false // wildcards, empty labels and odd bytes are never issued
	}
	for _, p := range r.DNSNames {
		p = strings.ToLower(p)
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			// One or more labels under suffix, never suffix itself.
			if strings.HasSuffix(name, "."+suffix) && len(name) > len(suffix)+1 && !strings.HasPrefix(name, ".") {
				return true
			}
			continue
		}
		if name == p {
			return true
		}
	}
	return false
}

// validHostname reports whether name is a plain DNS host name: labels of
// letters, digits and inner hyphens, 1–63 bytes each, 253 in all.
func validHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Revoke always succeeds: the certificate expires on its own within the
// role's TTL, and the revoked lease records that it should not be used.
func (is *Issuer) Revoke(context.Context, issuer.RevokeRequest) error { return nil }

var _ issuer.Issuer = (*Issuer)(nil)

// NeedsNoCleanup marks the issuer as signing only (issuer.NoCleanup).
func (i *Issuer) NeedsNoCleanup() {}

var _ issuer.NoCleanup = (*Issuer)(nil)
