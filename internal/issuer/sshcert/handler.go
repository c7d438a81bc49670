package sshcert

import (
	"encoding/json"
	"log/slog"
	"net/http"
)

// Handlers serves the public CA material of ssh targets, by target name:
// GET /v1/ssh/ca?target=T (the TrustedUserCAKeys line) and
// GET /v1/ssh/krl?target=T (the binary KRL for RevokedKeys). Both are
// public: relying parties fetch them without a stint identity.
type Handlers struct {
	Targets map[string]*Issuer
	Logger  *slog.Logger
}

// CA serves the CA public key line as text/plain.
func (h Handlers) CA() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is, ok := h.target(w, r)
		if !ok {
			return
		}
		line, err := is.CALine(r.Context())
		if err != nil {
			h.fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write([]byte(line + "\n"))
	})
}

// KRL serves the revocation list. It is rebuilt on every request so a
// revocation shows at once; relying parties poll it.
func (h Handlers) KRL() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is, ok := h.target(w, r)
		if !ok {
			return
		}
		b, err := is.KRL(r.Context())
		if err != nil {
			h.fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
}

func (h Handlers) target(w http.ResponseWriter, r *http.Request) (*Issuer, bool) {
	name := r.URL.Query().Get("target")
	if name == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "target is required")
		return nil, false
	}
	is, ok := h.Targets[name]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no ssh target of that name")
		return nil, false
	}
	return is, true
}

func (h Handlers) fail(w http.ResponseWriter, err error) {
	if h.Logger != nil {
		h.Logger.Error("sshcert: serve ca material", "err", err)
	}
	writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "ca material is unavailable")
}

// writeError writes the API's error shape.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
