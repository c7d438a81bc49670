package audit

import (
	"net/http"
	"strings"
	"testing"
)

// A transport error must not carry the collector's query string, where
// API keys are often passed.
func TestHTTPSinkErrorHidesQueryKey(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/intake?dd-api-key=SECRETKEY123", nil)
	_, err := http.DefaultClient.Do(req)
	if err == nil {
		t.Fatal("want a connection error")
	}
	if got := redactURLError(err).Error(); strings.Contains(got, "SECRETKEY123") || !strings.Contains(got, "127.0.0.1:1/intake") {
		t.Fatalf("redacted error: %q", got)
	}
}
