package x509ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/stint-dev/stint/internal/core"
)

// MinRSABits is the smallest RSA key stint certifies.
const MinRSABits = 2048

// maxCSRBytes bounds what is parsed; a CSR with an RSA-8192 key is ~2 KiB.
const maxCSRBytes = 16 << 10

// ParseCSR reads a PKCS#10 request (PEM, or base64 DER), checks its
// self-signature and its key type and size. Errors are *core.Error
// (invalid request) with a reason safe to show.
func ParseCSR(text string) (*x509.CertificateRequest, error) {
	if len(text) > maxCSRBytes {
		return nil, core.Invalid("csr is too long")
	}
	if strings.Contains(text, "PRIVATE KEY") {
		return nil, core.Invalid("csr holds a private key; send only the certificate request")
	}
	var der []byte
	if block, _ := pem.Decode([]byte(text)); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, core.Invalid("csr: PEM block is %q, want CERTIFICATE REQUEST", block.Type)
		}
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(strings.TrimSpace(text)); err != nil {
			return nil, core.Invalid("csr is neither PEM nor base64 DER")
		}
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, core.Invalid("csr is not a valid PKCS#10 certificate request")
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, core.Invalid("csr signature does not verify")
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkKey keeps to keys worth certifying: RSA ≥ 2048 bits, ECDSA on the
// NIST curves, Ed25519.
func checkKey(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSABits {
			return core.Invalid("csr: rsa key of %d bits is below the %d-bit floor", bits, MinRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return core.Invalid("csr: ecdsa curve is not accepted")
		}
	case ed25519.PublicKey:
	default:
		return core.Invalid("csr: key type %T is not accepted", pub)
	}
	return nil
}

// checkCSRNames refuses SANs the role does not grant: the only URI may be
// the role's SPIFFE ID, and no IP or email SANs. DNS names are checked
// against the allow-list by the caller.
func checkCSRNames(csr *x509.CertificateRequest, id spiffeid.ID) error {
	if len(csr.IPAddresses) > 0 || len(csr.EmailAddresses) > 0 {
		return core.Invalid("csr asks for IP or email SANs, which no role grants")
	}
	for _, u := range csr.URIs {
		if id.IsZero() || u.String() != id.String() {
			return core.Invalid("csr asks for URI SAN %q; this role grants only its SPIFFE ID", truncate(u.String(), 200))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func pkixName(cn string) pkix.Name {
	return pkix.Name{Organization: []string{"stint"}, CommonName: cn}
}

func pemCert(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func encodeBundle(certs []*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pemCert("CERTIFICATE", c.Raw)...)
	}
	return b
}

// loadAuthority reads an intermediate (or root) CA from PEM files.
func loadAuthority(certFile, keyFile, bundleFile string) (*authority, error) {
	certs, err := readCerts(certFile)
	if err != nil {
		return nil, err
	}
	ca := &authority{cert: certs[0], chain: certs[1:]}
	if !ca.cert.IsCA || ca.cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s: the first certificate is not a CA allowed to sign certificates", certFile)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read key_file: %w", err)
	}
	block, _ := pem.Decode(kb)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", keyFile)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a private key stint reads (want PRIVATE KEY)", keyFile, block.Type)
	}
	if err != nil {
		// The parse error never quotes key bytes, but keep it generic anyway.
		return nil, fmt.Errorf("%s: unreadable private key", keyFile)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T cannot sign", keyFile, key)
	}
	ca.key = signer
	if !publicKeyEqual(ca.cert.PublicKey, ca.key.Public()) {
		return nil, fmt.Errorf("%s does not hold the key of %s", keyFile, certFile)
	}
	switch {
	case bundleFile != "":
		if ca.bundle, err = readCerts(bundleFile); err != nil {
			return nil, err
		}
	case ca.cert.CheckSignatureFrom(ca.cert) == nil:
		ca.bundle = []*x509.Certificate{ca.cert}
	default:
		return nil, fmt.Errorf("bundle_file is required: %s is an intermediate, and relying parties need its root", certFile)
	}
	if !slices.ContainsFunc(ca.bundle, ca.cert.Equal) {
		// Peers trust only the bundle: they need the intermediate itself.
		ca.chain = certs
	}
	return ca, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return out, nil
}
