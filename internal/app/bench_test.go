package app_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// BenchmarkExchangeHTTP measures session-token exchanges through the whole
// server (HTTP, RS256 verify, ES256 sign, durable audit) on loopback.
func BenchmarkExchangeHTTP(b *testing.B) {
	e := newEnvTB(b)
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {e.workload("agents", "support-bot")},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
	}.Encode()
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	c := &http.Client{Transport: tr}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Post(e.url+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(form))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
