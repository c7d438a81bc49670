// Package sshcert is the issuer for targets of type ssh: it signs OpenSSH
// user or host certificates with a per-target CA key held by stint. SSH
// certificates cannot be recalled from the client, so revocation is
// recorded in the lease and published as an OpenSSH key revocation list
// (KRL) that sshd reads through RevokedKeys.
package sshcert

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/store"
)

// Backdate is how far before issuance a certificate becomes valid, so a
// server whose clock lags a little still accepts it.
const Backdate = 60 * time.Second

// DefaultTTL is a role's lifetime when it sets none.
const DefaultTTL = 15 * time.Minute

// KeySource hands out the CA private key for a purpose, generating it on
// first use (keys.Manager does).
type KeySource interface {
	Signer(ctx context.Context, purpose, kind string) (crypto.Signer, error)
}

// LeaseLister lists leases; the KRL is built from the revoked leases of the
// target (store.Store does).
type LeaseLister interface {
	ListLeases(ctx context.Context, f store.LeaseFilter) ([]core.Lease, error)
}

// RoleConfig is one ssh role.
type RoleConfig struct {
	// Principals are text/template strings over the principal's attributes
	// (top level, and under .identity and .human); each renders to one
	// certificate principal.
	Principals []string
	// AllowedPrincipals are path.Match patterns every rendered principal
	// must match; empty allows whatever the templates render.
	AllowedPrincipals []string
	// Extensions are granted as-is (permit-pty, permit-port-forwarding, …).
	Extensions []string
	// CriticalOptions holds source-address and/or force-command.
	CriticalOptions map[string]string
	// CertType is "user" (default) or "host".
	CertType   string
	DefaultTTL time.Duration
}

// Config configures one ssh target.
type Config struct {
	Name string
	// KeyType is the CA key kind: ed25519 (default), ecdsa-p256, rsa-3072
	// or rsa-4096. RSA CAs sign with rsa-sha2-512.
	KeyType string
	Roles   map[string]RoleConfig
	Keys    KeySource
	// Leases feeds the KRL; nil serves an empty one.
	Leases LeaseLister
	Now    func() time.Time
}

// Issuer signs certificates for one ssh target.
type Issuer struct {
	cfg   Config
	roles map[string]role

	mu sync.Mutex
	ca ssh.Signer // cached after the first successful load

	// The KRL is public and unauthenticated: build it at most every
	// krlMaxAge, so a flood of requests costs one lease listing.
	krlMu   sync.Mutex
	krl     []byte
	krlWhen time.Time
}

// krlMaxAge bounds how stale a served KRL may be.
const krlMaxAge = 5 * time.Second

type role struct {
	RoleConfig
	principals []*template.Template
	certType   uint32
}

// Critical options stint lets a role set; others would be ignored by sshd
// or mean something stint does not check.
var knownOptions = []string{"source-address", "force-command"}

// CAKinds are the CA key kinds an ssh target accepts.
var CAKinds = []string{"ed25519", "ecdsa-p256", "rsa-3072", "rsa-4096"}

// New checks the roles and parses their templates. The CA key is loaded on
// first use.
func New(cfg Config) (*Issuer, error) {
	if cfg.Keys == nil {
		return nil, fmt.Errorf("sshcert %s: no key source", cfg.Name)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeyType == "" {
		cfg.KeyType = "ed25519"
	}
	if !slices.Contains(CAKinds, cfg.KeyType) {
		return nil, fmt.Errorf("sshcert %s: key_type %q: want one of %s", cfg.Name, cfg.KeyType, strings.Join(CAKinds, ", "))
	}
	is := &Issuer{cfg: cfg, roles: map[string]role{}}
	for name, rc := range cfg.Roles {
		r, err := newRole(rc)
		if err != nil {
			return nil, fmt.Errorf("sshcert %s: role %s: %w", cfg.Name, name, err)
		}
		is.roles[name] = r
	}
	return is, nil
}

func newRole(rc RoleConfig) (role, error) {
	r := role{RoleConfig: rc, certType: ssh.UserCert}
	switch rc.CertType {
	case "", "user":
	case "host":
		r.certType = ssh.HostCert
		if len(rc.CriticalOptions) > 0 {
			return role{}, fmt.Errorf("critical options apply to user certificates only")
		}
	default:
		return role{}, fmt.Errorf("cert_type %q: want user or host", rc.CertType)
	}
	if len(rc.Principals) == 0 {
		return role{}, fmt.Errorf("at least one principal is required")
	}
	for _, p := range rc.Principals {
		t, err := template.New("principal").Option("missingkey=error").Parse(p)
		if err != nil {
			return role{}, fmt.Errorf("principal %q: %w", p, err)
		}
		r.principals = append(r.principals, t)
	}
	for _, p := range rc.AllowedPrincipals {
		if _, err := path.Match(p, ""); err != nil {
			return role{}, fmt.Errorf("allowed principal pattern %q: %w", p, err)
		}
	}
	for k, v := range rc.CriticalOptions {
		if !slices.Contains(knownOptions, k) {
			return role{}, fmt.Errorf("critical option %q: want one of %s", k, strings.Join(knownOptions, ", "))
		}
		if k == "source-address" {
			if err := checkSourceAddress(v); err != nil {
				return role{}, err
			}
		}
	}
	for _, e := range rc.Extensions {
		if e == "" || strings.ContainsAny(e, " ,\n") {
			return role{}, fmt.Errorf("extension %q: want a name such as permit-pty", e)
		}
	}
	return r, nil
}

// checkSourceAddress accepts what sshd accepts: a comma-separated list of
// addresses and CIDR blocks.
func checkSourceAddress(v string) error {
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if net.ParseIP(a) != nil {
			continue
		}
		if _, _, err := net.ParseCIDR(a); err != nil {
			return fmt.Errorf("source-address %q: want addresses or CIDR blocks", a)
		}
	}
	return nil
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

// DefaultTTL is the role's lifetime (15m when unset).
func (is *Issuer) DefaultTTL(roleName string) time.Duration {
	if r, ok := is.roles[roleName]; ok && r.DefaultTTL > 0 {
		return r.DefaultTTL
	}
	return DefaultTTL
}

// CA returns the CA signer, loading (or creating) the key on first use.
func (is *Issuer) CA(ctx context.Context) (ssh.Signer, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.ca != nil {
		return is.ca, nil
	}
	k, err := is.cfg.Keys.Signer(ctx, "ssh-ca:"+is.cfg.Name, is.cfg.KeyType)
	if err != nil {
		return nil, fmt.Errorf("sshcert %s: ca key: %w", is.cfg.Name, err)
	}
	s, err := ssh.NewSignerFromSigner(k)
	if err != nil {
		return nil, fmt.Errorf("sshcert %s: ca key: %w", is.cfg.Name, err)
	}
	if strings.HasPrefix(is.cfg.KeyType, "rsa-") {
		// Never ssh-rsa (SHA-1), which OpenSSH no longer accepts.
		as, ok := s.(ssh.AlgorithmSigner)
		if !ok {
			return nil, fmt.Errorf("sshcert %s: rsa ca key cannot choose its signature algorithm", is.cfg.Name)
		}
		if s, err = ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512}); err != nil {
			return nil, fmt.Errorf("sshcert %s: ca key: %w", is.cfg.Name, err)
		}
	}
	is.ca = s
	return s, nil
}

// CALine is the CA public key in authorized-keys form: the line an admin
// puts in TrustedUserCAKeys (or after @cert-authority in known_hosts).
func (is *Issuer) CALine(ctx context.Context) (string, error) {
	s, err := is.CA(ctx)
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
	return line + " stint-ssh-ca:" + is.cfg.Name, nil
}

// Serial is the certificate serial of a lease: 64 bits of a hash of the
// lease id, so the KRL can be built from lease ids alone and no two leases
// share one in practice. Zero is skipped: OpenSSH treats it as "no serial".
func Serial(leaseID string) uint64 {
	h := sha256.Sum256([]byte("stint-ssh-serial\x00" + leaseID))
	s := binary.BigEndian.Uint64(h[:8])
	if s == 0 {
		s = 1
	}
	return s
}

// internalData is what the lease keeps: public facts only.
type internalData struct {
	Serial      uint64   `json:"serial"`
	KeyID       string   `json:"key_id"`
	Fingerprint string   `json:"fingerprint"`
	Principals  []string `json:"principals"`
}

// Issue signs a certificate for the caller's public key (params
// public_key), or for a fresh Ed25519 key pair whose private half is
// returned once in the credential and kept nowhere.
func (is *Issuer) Issue(ctx context.Context, req issuer.Request) (issuer.Result, error) {
	r, ok := is.roles[req.Role]
	if !ok {
		return issuer.Result{}, core.Invalid("target %s has no role %q", is.cfg.Name, req.Role)
	}
	cred := core.Credential{}
	var pub ssh.PublicKey
	if text := strings.TrimSpace(req.Params["public_key"]); text != "" {
		var err error
		if pub, err = ParsePublicKey(text); err != nil {
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
	principals, err := r.render(req.Principal, req.Human, req.Params["principals"])
	if err != nil {
		return issuer.Result{}, err
	}
	ca, err := is.CA(ctx)
	if err != nil {
		return issuer.Result{}, err
	}
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          Serial(req.LeaseID),
		CertType:        r.certType,
		KeyId:           keyID(req),
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

func unixSeconds(t time.Time) uint64 {
	if t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix())
}

// keyID names the principal, the human and the lease, which sshd logs on
// every login made with the certificate.
func keyID(req issuer.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stint lease=%s principal=%s:%s", req.LeaseID, req.Principal.Provider, req.Principal.Subject)
	if req.Human != nil {
		fmt.Fprintf(&b, " human=%s", req.Human.Subject)
	}
	return b.String()
}

// render expands the principal templates, checks each against the
// allow-list, and narrows to the caller's request when it names some.
func (r role) render(p core.Principal, h *core.Principal, requested string) ([]string, error) {
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
		if !validPrincipal(name) {
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

// validPrincipal keeps rendered names to what is safe in a user or host
// name: sshd matches principals literally, but commas, spaces and control
// characters would be ambiguous in authorized_principals and logs.
func validPrincipal(s string) bool {
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

// Revoke always succeeds: a certificate cannot be recalled, and the lease,
// now revoked, is what puts its serial in the KRL.
func (is *Issuer) Revoke(context.Context, issuer.RevokeRequest) error {
	// The lease is marked revoked after this returns; drop the cached KRL
	// so the next request lists it (other replicas within krlMaxAge).
	is.krlMu.Lock()
	is.krl = nil
	is.krlMu.Unlock()
	return nil
}

// KRL builds the key revocation list of every revoked, unexpired
// certificate of this target.
func (is *Issuer) KRL(ctx context.Context) ([]byte, error) {
	is.krlMu.Lock()
	defer is.krlMu.Unlock()
	if is.krl != nil && is.cfg.Now().Sub(is.krlWhen) < krlMaxAge {
		return is.krl, nil
	}
	b, err := is.buildKRL(ctx)
	if err != nil {
		return nil, err
	}
	is.krl, is.krlWhen = b, is.cfg.Now()
	return b, nil
}

func (is *Issuer) buildKRL(ctx context.Context) ([]byte, error) {
	ca, err := is.CA(ctx)
	if err != nil {
		return nil, err
	}
	now := is.cfg.Now()
	var serials []uint64
	if is.cfg.Leases != nil {
		ls, err := is.cfg.Leases.ListLeases(ctx, store.LeaseFilter{Target: is.cfg.Name, ExpiresAfter: now,
			States: []core.LeaseState{core.LeaseRevoking, core.LeaseRevoked, core.LeaseFailed}})
		if err != nil {
			return nil, fmt.Errorf("sshcert %s: list revoked leases: %w", is.cfg.Name, err)
		}
		for _, l := range ls {
			if l.ExpiresAt.After(now) {
				serials = append(serials, Serial(l.ID))
			}
		}
	}
	return KRL{Version: uint64(now.Unix()), Generated: now, Comment: "stint " + is.cfg.Name,
		CAs: []KRLCA{{Key: ca.PublicKey(), Serials: serials}}}.Marshal(), nil
}

var _ issuer.Issuer = (*Issuer)(nil)

// NeedsNoCleanup marks the issuer as signing only (issuer.NoCleanup).
func (i *Issuer) NeedsNoCleanup() {}

var _ issuer.NoCleanup = (*Issuer)(nil)
