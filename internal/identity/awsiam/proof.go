package awsiam

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Prefix marks an aws-iam proof in a bearer header, so the identity router
// can tell it from a JWT (which never contains ':').
const Prefix = "aws-iam:"

// ServerIDHeader is the header whose signed value binds a proof to one
// stint deployment, so a proof made for one cannot be replayed to another.
const ServerIDHeader = "X-Stint-Server-Id"

// MaxProofSize bounds an encoded proof; a real one is about 2 KiB.
const MaxProofSize = 16 << 10

// Proof is a SigV4-signed sts:GetCallerIdentity request that the caller
// has not sent: stint sends it to STS, which answers with the caller's ARN
// only when the signature is good. On the wire it is Prefix followed by the
// unpadded base64url encoding of its JSON.
type Proof struct {
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Headers http.Header `json:"headers"`
	Body    string      `json:"body,omitempty"`
}

// Encode returns the bearer form of p.
func (p Proof) Encode() (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("awsiam: encode proof: %w", err)
	}
	s := Prefix + base64.RawURLEncoding.EncodeToString(b)
	if len(s) > MaxProofSize {
		return "", fmt.Errorf("awsiam: proof is %d bytes, limit %d", len(s), MaxProofSize)
	}
	return s, nil
}

// Decode parses the bearer form strictly: the size bound first, then
// base64url, then JSON with no unknown fields.
func Decode(s string) (Proof, error) {
	if len(s) > MaxProofSize {
		return Proof{}, fmt.Errorf("awsiam: proof is %d bytes, limit %d", len(s), MaxProofSize)
	}
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return Proof{}, fmt.Errorf("awsiam: proof does not start with %q", Prefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return Proof{}, fmt.Errorf("awsiam: proof is not unpadded base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p Proof
	if err := dec.Decode(&p); err != nil {
		return Proof{}, fmt.Errorf("awsiam: proof is not the expected JSON object")
	}
	if dec.More() {
		return Proof{}, fmt.Errorf("awsiam: trailing data after the proof object")
	}
	return p, nil
}
