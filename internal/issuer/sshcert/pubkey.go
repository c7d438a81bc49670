package sshcert

import (
	"bytes"
	"crypto/rsa"
	"encoding/pem"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/core"
)

// MinRSABits is the smallest RSA key stint certifies.
const MinRSABits = 2048

// maxPublicKeyBytes bounds the text parsed; an RSA-16384 key is ~2.8 KiB.
const maxPublicKeyBytes = 8 << 10

// ParsePublicKey reads one public key in authorized-keys form and refuses
// what should not be certified: certificates, DSA, RSA under 2048 bits.
// Errors are *core.Error (invalid request) with a reason safe to show.
func ParsePublicKey(text string) (ssh.PublicKey, error) {
	if len(text) > maxPublicKeyBytes {
		return nil, core.Invalid("public_key is too long")
	}
	if strings.Contains(text, "PRIVATE KEY") {
		// Never echo or keep it; just refuse.
		return nil, core.Invalid("public_key holds a private key; send only the public key")
	}
	if f := firstField(text); f == "ssh-dss" || f == "ssh-dss-cert-v01@openssh.com" {
		// x/crypto no longer parses DSA; say why rather than "malformed".
		return nil, core.Invalid("public_key: dsa keys are not accepted (use ed25519)")
	}
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		return nil, core.Invalid("public_key is not an OpenSSH public key (want e.g. \"ssh-ed25519 AAAA…\")")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, core.Invalid("public_key must hold exactly one key")
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, core.Invalid("public_key is a certificate; send the plain public key")
	}
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
	case ssh.KeyAlgoRSA:
		cp, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return nil, core.Invalid("public_key: unreadable rsa key")
		}
		rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return nil, core.Invalid("public_key: unreadable rsa key")
		}
		if bits := rk.N.BitLen(); bits < MinRSABits {
			return nil, core.Invalid("public_key: rsa key of %d bits is below the %d-bit floor", bits, MinRSABits)
		}
	default:
		return nil, core.Invalid("public_key: key type %s is not accepted", pub.Type())
	}
	return pub, nil
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// firstField is strings.Fields(s)[0], or "" when s has no field, without
// splitting the rest.
func firstField(s string) string {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		s = s[:i]
	}
	return s
}
