package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/broker"
	"github.com/stint-dev/stint/internal/core"
)

// sshResult is a typical SSH certificate response.
func sshResult() broker.CredentialResult {
	cert := "ssh-ed25519-cert-v01@openssh.com " + strings.Repeat("AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIK+/", 12) + "Zz0="
	return broker.CredentialResult{
		LeaseID:   "lse_6f1c2a9e4b7d4e0f9a3c5b8d2e1f0a7c",
		ExpiresAt: time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC),
		Renewable: false,
		Credential: core.Credential{
			"certificate": cert,
			"serial":      "14819234981237491823",
			"key_id":      "stint:agents/support-bot:lse_6f1c2a9e4b7d4e0f9a3c5b8d2e1f0a7c",
			"principals":  "ops,deploy",
			"cert_type":   "user",
		},
	}
}

// discardWriter is a ResponseWriter that keeps nothing but its header map.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func BenchmarkCredentialJSON(b *testing.B) {
	res := sshResult()
	w := &discardWriter{h: http.Header{}}
	b.Run("writeJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			writeJSON(w, http.StatusOK, res)
		}
	})
	b.Run("writeCredentialResult", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			writeCredentialResult(w, http.StatusOK, &res)
		}
	})
}

func BenchmarkAppendCredentialResult(b *testing.B) {
	res := sshResult()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = appendCredentialResult(buf[:0], &res)
	}
}
