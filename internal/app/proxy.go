package app

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/keys"
	"github.com/stint-dev/stint/internal/proxy"
)

// httpTarget builds the issuer of an http target: it only names the
// roles; the proxy serves the target.
func httpTarget(_ context.Context, t config.Target, _ deps) (issuer.Issuer, error) {
	roles := make([]string, 0, len(t.Roles))
	for name := range t.Roles {
		roles = append(roles, name)
	}
	return proxy.NewIssuer(t.Name, roles), nil
}

// buildProxy builds the gateway for the config's http targets.
func buildProxy(cfg *config.Config, a *App, sealer *keys.Sealer, o Options) (*proxy.Handler, error) {
	var targets []proxy.Target
	for i, t := range cfg.Targets {
		if t.Type != "http" {
			continue
		}
		h := t.HTTP
		u, err := url.Parse(h.URL)
		if err != nil {
			return nil, cfg.Errorf(fmt.Sprintf("targets[%d].url", i), "%v", err)
		}
		var src proxy.Source
		switch h.Credential {
		case "oauth2":
			secret, err := secretRef(h.OAuth2.ClientSecretFile, h.OAuth2.ClientSecretEnv)
			if err == nil {
				src, err = proxy.NewOAuth2(proxy.OAuth2Config{TokenURL: h.OAuth2.TokenURL, ClientID: h.OAuth2.ClientID,
					ClientSecret: secret, Scopes: h.OAuth2.Scopes, HTTPClient: o.HTTPClient, Now: o.Now})
			}
			if err != nil {
				return nil, cfg.Errorf(fmt.Sprintf("targets[%d].oauth2", i), "%v", err)
			}
		case "jwt":
			src, err = proxy.NewJWT(proxy.JWTConfig{Signer: a.Keys, IssuerURL: cfg.Server.IssuerURL, Audience: h.Audience, Now: o.Now})
			if err != nil {
				return nil, cfg.Errorf(fmt.Sprintf("targets[%d]", i), "%v", err)
			}
		default:
			src = proxy.NewStaticKey(a.Store, sealer, t.Name, 0, o.Now)
		}
		pt := proxy.Target{
			Name: t.Name, URL: u, AuthHeader: h.Auth.Header, AuthFormat: h.Auth.Format, Credential: src,
			PerPrincipal: proxy.Limit(h.Limits.PerPrincipal), PerUpstream: proxy.Limit(h.Limits.PerUpstream),
			BodyMaxBytes: h.BodyMaxBytes, PolicyHeaders: h.PolicyHeaders, StripHeaders: h.StripHeaders,
			AllowCookies: h.AllowCookies, StripResponseHeaders: h.StripResponseHeaders, Timeout: h.Timeout.D(),
		}
		for name, r := range t.Roles {
			pt.Routes = append(pt.Routes, proxy.Route{Role: name, Methods: r.Methods, Paths: r.Paths})
		}
		targets = append(targets, pt)
	}
	return proxy.New(proxy.Options{Broker: a.Broker, Targets: targets, Now: o.Now, Logger: o.Logger})
}

// SetUpstreamKey stores the static key of an http target, sealed under the
// store's KEK (for `stint target set-key`). The key is never returned.
func SetUpstreamKey(ctx context.Context, cfg *config.Config, name string, key []byte) error {
	var found *config.Target
	for i := range cfg.Targets {
		if cfg.Targets[i].Name == name {
			found = &cfg.Targets[i]
		}
	}
	switch {
	case found == nil:
		return fmt.Errorf("no target named %q in %s", name, cfg.File)
	case found.Type != "http":
		return fmt.Errorf("target %q is a %s target; keys are set for http targets", name, found.Type)
	case found.HTTP.Credential != "static":
		return fmt.Errorf("target %q uses credential: %s; set-key is for static keys", name, found.HTTP.Credential)
	}
	st, err := OpenStore(ctx, cfg.Server.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	sealer, err := keys.OpenSealer(ctx, st, cfg.Server.KEKFile)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return proxy.SetKey(ctx, st, sealer, name, key, time.Now())
}
