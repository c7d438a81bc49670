package app

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/issuer/sshcert"
	"github.com/stint-dev/stint/internal/issuer/x509ca"
)

// sshTarget builds an ssh certificate issuer; its CA key comes from the
// keys manager and its KRL from the revoked leases in the store.
func sshTarget(_ context.Context, t config.Target, d deps) (issuer.Issuer, error) {
	roles := map[string]sshcert.RoleConfig{}
	for name, r := range t.Roles {
		roles[name] = sshcert.RoleConfig{Principals: r.Principals, AllowedPrincipals: r.AllowedPrincipals,
			Extensions: r.Extensions, CriticalOptions: r.CriticalOptions, CertType: r.CertType, DefaultTTL: r.DefaultTTL.D()}
	}
	cfg := sshcert.Config{Name: t.Name, KeyType: t.KeyType, Roles: roles, Now: d.Now}
	if d.Keys != nil {
		cfg.Keys = d.Keys
	}
	if d.Store != nil {
		cfg.Leases = d.Store
	}
	return sshcert.New(cfg)
}

// x509Target builds an X.509 / SPIFFE certificate issuer.
func x509Target(_ context.Context, t config.Target, d deps) (issuer.Issuer, error) {
	roles := map[string]x509ca.RoleConfig{}
	for name, r := range t.Roles {
		roles[name] = x509ca.RoleConfig{SPIFFEID: r.SPIFFEID, DNSNames: r.DNSNames, Usages: r.Usages, DefaultTTL: r.DefaultTTL.D()}
	}
	cfg := x509ca.Config{Name: t.Name, KeyType: t.KeyType, CertFile: t.CertFile, KeyFile: t.KeyFile,
		BundleFile: t.BundleFile, TrustDomain: t.TrustDomain, Roles: roles, Now: d.Now}
	if d.Keys != nil {
		cfg.Keys = d.Keys
	}
	if d.Store != nil {
		cfg.Meta = d.Store
	}
	return x509ca.New(cfg)
}

// withCertRoutes adds the public CA material routes of ssh and x509
// targets to routes (which may be nil).
func withCertRoutes(routes map[string]http.Handler, issuers map[string]issuer.Issuer, logger *slog.Logger) map[string]http.Handler {
	out := map[string]http.Handler{}
	for k, v := range routes {
		out[k] = v
	}
	ssh := sshcert.Handlers{Targets: map[string]*sshcert.Issuer{}, Logger: logger}
	x509 := x509ca.Handlers{Targets: map[string]*x509ca.Issuer{}, Logger: logger}
	for name, is := range issuers {
		switch is := is.(type) {
		case *sshcert.Issuer:
			ssh.Targets[name] = is
		case *x509ca.Issuer:
			x509.Targets[name] = is
		}
	}
	out["GET /v1/ssh/ca"] = ssh.CA()
	out["GET /v1/ssh/krl"] = ssh.KRL()
	out["GET /v1/x509/bundle"] = x509.Bundle()
	return out
}
