package x509ca

import (
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Handlers serves GET /v1/x509/bundle?target=T: the CA bundle as PEM, or
// with Accept: application/json as a SPIFFE trust bundle (a JWKS whose keys
// have use "x509-svid" and the certificate in x5c). It is public.
type Handlers struct {
	Targets map[string]*Issuer
	Logger  *slog.Logger
}

// refreshHint tells SPIFFE bundle consumers how often to poll, in seconds.
const refreshHint = 300

// Bundle serves the bundle.
func (h Handlers) Bundle() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("target")
		if name == "" {
			writeError(w, http.StatusBadRequest, "invalid_request", "target is required")
			return
		}
		is, ok := h.Targets[name]
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "no x509 target of that name")
			return
		}
		certs, err := is.Bundle(r.Context())
		if err != nil {
			if h.Logger != nil {
				h.Logger.Error("x509ca: serve bundle", "target", name, "err", err)
			}
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "ca bundle is unavailable")
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		if !wantsJSON(r) {
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(encodeBundle(certs))
			return
		}
		doc := struct {
			Keys        []jose.JSONWebKey `json:"keys"`
			RefreshHint int               `json:"spiffe_refresh_hint"`
		}{RefreshHint: refreshHint}
		for _, c := range certs {
			doc.Keys = append(doc.Keys, jose.JSONWebKey{Key: c.PublicKey, Certificates: []*x509.Certificate{c}, Use: "x509-svid"})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
}

// wantsJSON reports whether the Accept header names application/json.
func wantsJSON(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "application/json" {
			return true
		}
	}
	return false
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
