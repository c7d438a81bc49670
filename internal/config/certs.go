package config

import (
	"net"
	"path"
	"reflect"
	"slices"
	"strings"
)

// CA holds the fields of ssh and x509 targets: the certificate authority
// that signs. It is inlined in Target, so its keys sit beside name and
// type (see docs/ssh-x509.md).
type CA struct {
	// KeyType is the kind of the CA key stint generates and keeps sealed:
	// ssh: ed25519 (default), ecdsa-p256, rsa-3072, rsa-4096 (signing with
	// rsa-sha2-512); x509: ecdsa-p256 (default), ed25519, rsa-3072, rsa-4096.
	KeyType string `yaml:"key_type"`
	// CertFile and KeyFile (x509) load an intermediate CA from PEM files
	// instead of generating one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// BundleFile (x509) holds the trust anchors published at
	// /v1/x509/bundle; required when cert_file is an intermediate.
	BundleFile string `yaml:"bundle_file"`
	// TrustDomain (x509) is the SPIFFE trust domain of every SPIFFE ID
	// (default: the one the roles' spiffe_id templates name).
	TrustDomain string `yaml:"trust_domain"`
}

// CertRole holds the role fields of ssh and x509 targets, inlined in Role.
type CertRole struct {
	// ssh: Principals are templates over the principal's attributes, each
	// giving one certificate principal.
	Principals []string `yaml:"principals"`
	// ssh: AllowedPrincipals are glob patterns every rendered principal
	// must match (empty: any).
	AllowedPrincipals []string `yaml:"allowed_principals"`
	// ssh: Extensions granted, e.g. permit-pty (default none).
	Extensions []string `yaml:"extensions"`
	// ssh: CriticalOptions, source-address and/or force-command.
	CriticalOptions map[string]string `yaml:"critical_options"`
	// ssh: CertType is user (default) or host.
	CertType string `yaml:"cert_type"`
	// x509: SPIFFEID is a template giving the URI SAN.
	SPIFFEID string `yaml:"spiffe_id"`
	// x509: DNSNames is the allow-list of DNS SANs (exact or *.suffix).
	DNSNames []string `yaml:"dns_names"`
	// x509: Usages are client and/or server (default both).
	Usages []string `yaml:"usages"`
}

var (
	sshCAKinds  = []string{"ed25519", "ecdsa-p256", "rsa-3072", "rsa-4096"}
	x509CAKinds = []string{"ecdsa-p256", "ed25519", "rsa-3072", "rsa-4096"}
)

// validateCerts checks the CA and CertRole fields: set only on the
// target types that use them, and well formed there. The issuers check
// templates and the CA files again when they are built.
func (c *Config) validateCerts(p string, t Target, add func(string, string, ...any)) {
	notFor := func(v any, prefix string, keep func(tag string) bool) {
		rv := reflect.ValueOf(v)
		for i := 0; i < rv.NumField(); i++ {
			tag, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("yaml"), ",")
			if !rv.Field(i).IsZero() && !keep(tag) {
				add(prefix+"."+tag, "not used by a %s target", t.Type)
			}
		}
	}
	sshRole := []string{"principals", "allowed_principals", "extensions", "critical_options", "cert_type"}
	x509Role := []string{"spiffe_id", "dns_names", "usages"}
	switch t.Type {
	case "ssh":
		notFor(t.CA, p, func(tag string) bool { return tag == "key_type" })
		if t.KeyType != "" && !slices.Contains(sshCAKinds, t.KeyType) {
			add(p+".key_type", "want one of %s, got %q", strings.Join(sshCAKinds, ", "), t.KeyType)
		}
		for _, name := range sortedKeys(t.Roles) {
			r, rp := t.Roles[name], p+".roles."+name
			notFor(r.CertRole, rp, func(tag string) bool { return slices.Contains(sshRole, tag) })
			if len(r.Principals) == 0 {
				add(rp+".principals", "at least one principal is required for an ssh role")
			}
			for j, pat := range r.AllowedPrincipals {
				if _, err := path.Match(pat, ""); err != nil {
					add(rp+".allowed_principals", "pattern %d (%q): %v", j, pat, err)
				}
			}
			if r.CertType != "" && r.CertType != "user" && r.CertType != "host" {
				add(rp+".cert_type", "want user or host, got %q", r.CertType)
			}
			for k, v := range r.CriticalOptions {
				switch k {
				case "force-command":
				case "source-address":
					for _, a := range strings.Split(v, ",") {
						a = strings.TrimSpace(a)
						if _, _, err := net.ParseCIDR(a); err != nil && net.ParseIP(a) == nil {
							add(rp+".critical_options.source-address", "want addresses or CIDR blocks, got %q", a)
						}
					}
				default:
					add(rp+".critical_options", "unknown option %q (want source-address or force-command)", k)
				}
			}
			if r.CertType == "host" && len(r.CriticalOptions) > 0 {
				add(rp+".critical_options", "apply to user certificates only")
			}
		}
	case "x509":
		if t.KeyType != "" && !slices.Contains(x509CAKinds, t.KeyType) {
			add(p+".key_type", "want one of %s, got %q", strings.Join(x509CAKinds, ", "), t.KeyType)
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			add(p, "cert_file and key_file go together")
		}
		if t.CertFile != "" && t.KeyType != "" {
			add(p+".key_type", "not used with cert_file (the key comes from key_file)")
		}
		if t.BundleFile != "" && t.CertFile == "" {
			add(p+".bundle_file", "only used with cert_file")
		}
		checkFile(t.CertFile, p+".cert_file", add)
		checkFile(t.KeyFile, p+".key_file", add)
		checkFile(t.BundleFile, p+".bundle_file", add)
		for _, name := range sortedKeys(t.Roles) {
			r, rp := t.Roles[name], p+".roles."+name
			notFor(r.CertRole, rp, func(tag string) bool { return slices.Contains(x509Role, tag) })
			if r.SPIFFEID == "" && len(r.DNSNames) == 0 {
				add(rp, "an x509 role needs spiffe_id or dns_names")
			}
			if r.SPIFFEID != "" && !strings.HasPrefix(r.SPIFFEID, "spiffe://") {
				add(rp+".spiffe_id", "want spiffe://trust-domain/path, got %q", r.SPIFFEID)
			}
			for _, u := range r.Usages {
				if u != "client" && u != "server" {
					add(rp+".usages", "want client or server, got %q", u)
				}
			}
		}
	default:
		notFor(t.CA, p, func(string) bool { return false })
		for _, name := range sortedKeys(t.Roles) {
			notFor(t.Roles[name].CertRole, p+".roles."+name, func(string) bool { return false })
		}
	}
}
