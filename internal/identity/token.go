package identity

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	josejson "github.com/go-jose/go-jose/v4/json"
)

// MaxTokenSize bounds a presented JWT. It is checked before any decoding so
// that oversized input costs nothing; real platform tokens are 1–3 KiB.
const MaxTokenSize = 16 << 10

// Reasons a token is rejected, for logs, audit and metrics. They are
// stable strings; callers branch on them with errors.As.
const (
	ReasonTooLarge        = "too_large"
	ReasonMalformed       = "malformed"
	ReasonUnsupportedAlg  = "unsupported_alg"  // none, HMAC, or not in the allowed list
	ReasonForbiddenHeader = "forbidden_header" // crit, jku, x5u, x5c, jwk, b64, zip
	ReasonMissingKID      = "missing_kid"
	ReasonUnknownKID      = "unknown_kid"
	ReasonKeyUnavailable  = "key_unavailable" // the key source failed
	ReasonAlgKeyMismatch  = "alg_key_mismatch"
	ReasonBadSignature    = "bad_signature"
	ReasonWrongIssuer     = "wrong_issuer"
	ReasonUnknownIssuer   = "unknown_issuer" // no verifier for the issuer (Router)
	ReasonWrongAudience   = "wrong_audience"
	ReasonMissingExp      = "missing_exp"
	ReasonExpired         = "expired"
	ReasonNotYetValid     = "not_yet_valid"
	ReasonIssuedInFuture  = "issued_in_future"
	ReasonInvalidClaims   = "invalid_claims" // claims the profile needs are missing or malformed
)

// TokenError is why a token was rejected. Its text never contains the
// token: Detail is written by stint, and Err is only ever a sentinel or an
// error whose text stint controls.
type TokenError struct {
	// Reason is one of the Reason constants.
	Reason string
	// Provider is the identity provider that rejected it, if known.
	Provider string
	// Detail is a short explanation safe to log.
	Detail string
	// Err is the cause, for errors.Is; may be nil.
	Err error
}

func (e *TokenError) Error() string {
	var b strings.Builder
	b.WriteString("identity: ")
	if e.Provider != "" {
		fmt.Fprintf(&b, "provider %q: ", e.Provider)
	}
	b.WriteString("token rejected: ")
	b.WriteString(e.Reason)
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *TokenError) Unwrap() error { return e.Err }

// Reason returns the rejection reason of err, or "" if err is not a
// *TokenError.
func Reason(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	return ""
}

func reject(reason, detail string) *TokenError {
	return &TokenError{Reason: reason, Detail: detail}
}

// CheckCompact checks the outer shape of a compact JWS before any decoding:
// the size bound, exactly three non-empty base64url segments (so JWE, with
// five, and the JSON serialization are refused), and no other characters.
func CheckCompact(token string) error {
	if len(token) > MaxTokenSize {
		return reject(ReasonTooLarge, fmt.Sprintf("%d bytes, limit %d", len(token), MaxTokenSize))
	}
	if token == "" {
		return reject(ReasonMalformed, "empty token")
	}
	dots := 0
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == '.':
			dots++
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return reject(ReasonMalformed, "not a compact JWS: character outside base64url")
		}
	}
	if dots != 2 {
		return reject(ReasonMalformed, fmt.Sprintf("not a compact JWS: %d segments", dots+1))
	}
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ := strings.Cut(rest, ".")
	if h == "" || p == "" || s == "" {
		return reject(ReasonMalformed, "not a compact JWS: empty segment")
	}
	return nil
}

// Header is the part of a JWS protected header stint inspects before
// handing the token to go-jose. Presence of a forbidden member is what
// matters, so those are raw messages: even "jku": null is refused.
type Header struct {
	Alg  string              `json:"alg"`
	Kid  string              `json:"kid"`
	Crit josejson.RawMessage `json:"crit"`
	Jku  josejson.RawMessage `json:"jku"`
	X5u  josejson.RawMessage `json:"x5u"`
	X5c  josejson.RawMessage `json:"x5c"`
	Jwk  josejson.RawMessage `json:"jwk"`
	B64  josejson.RawMessage `json:"b64"`
	Zip  josejson.RawMessage `json:"zip"`
	Enc  josejson.RawMessage `json:"enc"`
}

// PeekHeader decodes the protected header of a token that passed
// CheckCompact, unverified, and refuses headers that would let a token
// choose its own key (jku, x5u, x5c, jwk), change how it is processed
// (crit, b64, zip) or mark it as encrypted. It uses go-jose's JSON decoder,
// which matches member names case-sensitively and refuses duplicates, so
// what is checked here is what go-jose later acts on.
func PeekHeader(token string) (Header, error) {
	seg, _, _ := strings.Cut(token, ".")
	var h Header
	if err := decodeSegment(seg, &h); err != nil {
		return Header{}, reject(ReasonMalformed, "header: "+err.Error())
	}
	forbidden := [...]struct {
		name string
		v    josejson.RawMessage
	}{{"crit", h.Crit}, {"jku", h.Jku}, {"x5u", h.X5u}, {"x5c", h.X5c},
		{"jwk", h.Jwk}, {"b64", h.B64}, {"zip", h.Zip}, {"enc", h.Enc}}
	for _, f := range forbidden {
		if f.v != nil {
			return Header{}, reject(ReasonForbiddenHeader, "header "+f.name+" is not accepted")
		}
	}
	return h, nil
}

// PeekIssuer returns the unverified iss of a token that passed
// CheckCompact, to choose the verifier that will check it properly.
func PeekIssuer(token string) (string, error) {
	_, rest, _ := strings.Cut(token, ".")
	seg, _, _ := strings.Cut(rest, ".")
	var c struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(seg, &c); err != nil {
		return "", reject(ReasonMalformed, "payload: "+err.Error())
	}
	if c.Iss == "" {
		return "", reject(ReasonWrongIssuer, "token has no iss")
	}
	return c.Iss, nil
}

// decodeSegment base64url-decodes and JSON-decodes one segment. Its errors
// are generic on purpose: decoder messages can quote input, and the token
// must never reach a log.
func decodeSegment(seg string, v any) error {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return errors.New("invalid base64url")
	}
	if len(raw) == 0 || raw[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := josejson.Unmarshal(raw, v); err != nil {
		return errors.New("invalid JSON")
	}
	return nil
}
