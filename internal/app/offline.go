package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/identity"
	"github.com/stint-dev/stint/internal/keys"
	"github.com/stint-dev/stint/internal/policy"
	"github.com/stint-dev/stint/internal/store"
)

// Policy compiles the config's rules (for `stint policy test`).
func Policy(cfg *config.Config) (*policy.Engine, error) { return compilePolicy(cfg) }

// Identities builds the configured identity providers without a store,
// so `stint policy test` can verify a real token offline.
func Identities(ctx context.Context, cfg *config.Config) (*identity.Router, error) {
	d := deps{HTTPClient: &http.Client{Timeout: 10 * time.Second}, Now: time.Now}
	var vs []identity.IssuerVerifier
	var errs []error
	for i, p := range cfg.IdentityProviders {
		b, ok := identityTypes[p.Type]
		if !ok {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("identity_providers[%d].type", i), "unknown type %q", p.Type))
			continue
		}
		v, err := b(ctx, p, d)
		if err != nil {
			errs = append(errs, cfg.Errorf(fmt.Sprintf("identity_providers[%d]", i), "%v", err))
			continue
		}
		vs = append(vs, v)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return identity.NewRouter(vs...)
}

// Keys opens the store and the key manager of a config for offline admin
// commands (`stint keys`, `stint audit verify`). Close the returned store.
func Keys(ctx context.Context, cfg *config.Config) (*keys.Manager, store.Store, error) {
	st, err := OpenStore(ctx, cfg.Server.Store)
	if err != nil {
		return nil, nil, err
	}
	sealer, err := keys.OpenSealer(ctx, st, cfg.Server.KEKFile)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	km, err := keys.NewManager(ctx, st, sealer, keys.Options{Algorithm: cfg.Server.SigningAlgorithm, TokenMaxTTL: maxTokenTTL(cfg), Reload: -1})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return km, st, nil
}

// AuditPublicKey returns the public key that verifies audit checkpoints.
func AuditPublicKey(ctx context.Context, km *keys.Manager) (ed25519.PublicKey, error) {
	s, err := km.Signer(ctx, "audit-checkpoint", "ed25519")
	if err != nil {
		return nil, err
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("audit: checkpoint key is not Ed25519")
	}
	return pub, nil
}
