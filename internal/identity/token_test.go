package identity

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckCompact(t *testing.T) {
	cases := []struct {
		name, token, reason string
	}{
		{"three segments", "eyJh.eyJz.c2ln", ""},
		{"too large before anything else", strings.Repeat("{", MaxTokenSize+1), ReasonTooLarge},
		{"exactly the limit is accepted", strings.Repeat("a", MaxTokenSize-4) + ".b.c", ""},
		{"one byte over the limit", strings.Repeat("a", MaxTokenSize-3) + ".b.c", ReasonTooLarge},
		{"padding", "eyJh.eyJz.c2ln==", ReasonMalformed},
		{"standard base64 alphabet", "ey+h.eyJz.c2ln", ReasonMalformed},
		{"empty signature", "eyJh.eyJz.", ReasonMalformed},
		{"JWE", "a.b.c.d.e", ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Reason(CheckCompact(tc.token)); got != tc.reason {
				t.Fatalf("reason = %q, want %q", got, tc.reason)
			}
		})
	}
}

func TestTokenErrorTextAndUnwrap(t *testing.T) {
	cause := errors.New("cause")
	err := fmt.Errorf("wrapped: %w", &TokenError{Reason: ReasonExpired, Provider: "p", Detail: "d", Err: cause})
	if Reason(err) != ReasonExpired || !errors.Is(err, cause) {
		t.Fatalf("Reason/Is through wrapping failed: %v", err)
	}
	if want := `wrapped: identity: provider "p": token rejected: expired: d: cause`; err.Error() != want {
		t.Fatalf("text = %q, want %q", err.Error(), want)
	}
	if Reason(errors.New("other")) != "" {
		t.Fatal("Reason of a foreign error is not empty")
	}
}
