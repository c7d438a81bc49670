package scan

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"hash/crc32"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/ssh"
)

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Base62CRC32 returns the 6-character checksum GitHub and npm append to
// their tokens: CRC32 (IEEE) of the random part, in base62, left-padded
// with '0'. Exported so the corpus generator builds tokens that validate.
func Base62CRC32(random []byte) string {
	n := crc32.ChecksumIEEE(random)
	var out [6]byte
	for i := 5; i >= 0; i-- {
		out[i] = base62Alphabet[n%62]
		n /= 62
	}
	return string(out[:])
}

// validChecksumToken checks prefix_<30 random><6 checksum> tokens
// (GitHub classic since 2021, npm).
func validChecksumToken(tok []byte) bool {
	i := bytes.IndexByte(tok, '_')
	if i < 0 || len(tok)-i-1 != 36 {
		return false
	}
	body := tok[i+1:]
	return Base62CRC32(body[:30]) == string(body[30:])
}

// parsePrivateKeyPEM reports whether block is a private key that parses,
// and whether it does so fully (true) or only structurally because it is
// encrypted (false). crypto/x509 and x/crypto/ssh do the parsing.
func parsePrivateKeyPEM(block []byte) (ok, full bool) {
	if _, err := ssh.ParseRawPrivateKey(block); err == nil {
		return true, true
	} else {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return true, false
		}
	}
	p, _ := pem.Decode(block)
	if p == nil {
		return false, false
	}
	// PKCS#8 "ENCRYPTED PRIVATE KEY" and legacy Proc-Type encrypted PEM
	// cannot be parsed without the passphrase; accept them when the DER is
	// at least a well-formed ASN.1 sequence.
	if p.Type == "ENCRYPTED PRIVATE KEY" || p.Headers["Proc-Type"] != "" {
		var raw asn1.RawValue
		if p.Headers["Proc-Type"] != "" {
			return len(p.Bytes) >= 64, false
		}
		if _, err := asn1.Unmarshal(p.Bytes, &raw); err == nil && raw.Tag == asn1.TagSequence {
			return true, false
		}
	}
	return false, false
}

// allJWSAlgs lists every signature algorithm go-jose knows, so a token is
// accepted as "a JWT" whatever it is signed with (we only check its form).
var allJWSAlgs = []jose.SignatureAlgorithm{
	jose.EdDSA, jose.HS256, jose.HS384, jose.HS512, jose.RS256, jose.RS384, jose.RS512,
	jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512,
}

// validJWT reports whether tok is a compact JWS whose header and payload
// decode (go-jose does the parsing) and whose payload is a JSON object.
func validJWT(tok []byte) bool {
	sig, err := jose.ParseSignedCompact(string(tok), allJWSAlgs)
	if err != nil || len(sig.Signatures) != 1 {
		return false
	}
	var claims map[string]json.RawMessage
	return json.Unmarshal(sig.UnsafePayloadWithoutVerification(), &claims) == nil
}

// validAzureKey reports whether v is base64 of exactly 64 bytes, the shape
// of an Azure storage account key.
func validAzureKey(v []byte) bool {
	b, err := base64.StdEncoding.DecodeString(string(v))
	return err == nil && len(b) == 64
}

// serviceAccount is the part of a GCP service-account key file we check.
type serviceAccount struct {
	Type         string `json:"type"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	ClientEmail  string `json:"client_email"`
}

// looksRandom checks the character mix of a machine-generated secret: it
// has upper case, lower case and digits and high enough entropy.
func looksRandom(v []byte, minEntropy float64) bool {
	var up, lo, dg bool
	for _, c := range v {
		switch {
		case c >= 'A' && c <= 'Z':
			up = true
		case c >= 'a' && c <= 'z':
			lo = true
		case c >= '0' && c <= '9':
			dg = true
		}
	}
	return up && lo && dg && entropy(v) >= minEntropy
}
