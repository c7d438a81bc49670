// Package scantest generates fake credentials that are valid in form
// (checksums, parseable keys, decodable tokens) and files that plant them
// among realistic text and look-alikes. Nothing it makes is a real secret.
// The corpus generator and the benchmark use it.
package scantest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/scan"
)

// Expect is one credential a file holds: the 1-based line and the rule.
type Expect struct {
	Line int    `json:"line"`
	Rule string `json:"rule"`
}

// File is a generated file and the credentials planted in it.
type File struct {
	Path    string   `json:"path"`
	Content string   `json:"-"`
	Expect  []Expect `json:"expect"`
}

// Gen makes credentials and files from a seeded source.
type Gen struct {
	r      *rand.Rand
	rsaKey *rsa.PrivateKey // RSA generation is slow: one per Gen
}

// New returns a generator; the same seed gives the same tokens.
func New(seed uint64) *Gen {
	return &Gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

const (
	alnum   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	urlSafe = alnum + "-_"
	b64     = alnum + "+/"
	b32     = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	upDigit = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	punct   = "!#%&*+-/:;=?@^_~,.()"
)

func (g *Gen) str(n int, set string) string {
	for {
		b := make([]byte, n)
		for i := range b {
			b[i] = set[g.r.IntN(len(set))]
		}
		s := string(b)
		if n < 12 || !hasMix(set) || hasMix(s) {
			return s
		}
	}
}

func hasMix(s string) bool {
	return strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") && strings.ContainsAny(s, "0123456789")
}

// GitHub returns a classic token (ghp_, gho_, …) with a valid CRC32.
func (g *Gen) GitHub() string {
	p := []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}[g.r.IntN(5)]
	r := g.str(30, alnum)
	return p + r + scan.Base62CRC32([]byte(r))
}

// GitHubBadChecksum returns a token whose checksum does not match.
func (g *Gen) GitHubBadChecksum() string {
	t := g.GitHub()
	last := t[len(t)-1]
	c := byte('A')
	if last == 'A' {
		c = 'B'
	}
	return t[:len(t)-1] + string(c)
}

// NPM returns an npm token with a valid CRC32.
func (g *Gen) NPM() string {
	r := g.str(30, alnum)
	return "npm_" + r + scan.Base62CRC32([]byte(r))
}

// GitHubFineGrained returns a github_pat_ token.
func (g *Gen) GitHubFineGrained() string {
	return "github_pat_11" + g.str(20, upDigit) + "_" + g.str(59, alnum)
}

// GitLab returns a glpat- token.
func (g *Gen) GitLab() string { return "glpat-" + g.str(20, alnum+"_-") }

// Slack returns a bot or user token.
func (g *Gen) Slack() string {
	if g.r.IntN(2) == 0 {
		return fmt.Sprintf("xoxb-%d-%d-%s", 1000000000+g.r.IntN(999999999), 1000000000+g.r.IntN(999999999), g.str(24, alnum))
	}
	return fmt.Sprintf("xoxp-%d-%d-%d-%s", 1000000000+g.r.IntN(999999999), 1000000000+g.r.IntN(999999999), 1000000000+g.r.IntN(999999999), g.str(32, "0123456789abcdef"))
}

// Stripe returns a live secret or restricted key.
func (g *Gen) Stripe() string {
	return []string{"sk_live_", "rk_live_"}[g.r.IntN(2)] + "51" + g.str(97, alnum)
}

// OpenAI returns a project key or a legacy key, both with the T3BlbkFJ marker.
func (g *Gen) OpenAI() string {
	if g.r.IntN(2) == 0 {
		return "sk-" + g.str(20, alnum) + "T3BlbkFJ" + g.str(20, alnum)
	}
	return "sk-proj-" + g.str(74, urlSafe) + "T3BlbkFJ" + g.str(74, urlSafe)
}

// Anthropic returns an sk-ant-api03- key.
func (g *Gen) Anthropic() string { return "sk-ant-api03-" + g.str(93, urlSafe) + "AA" }

// AWS returns an access key id and its secret key.
func (g *Gen) AWS() (id, secret string) {
	return []string{"AKIA", "ASIA"}[g.r.IntN(2)] + g.str(16, b32), g.str(40, b64)
}

// Google returns an AIza API key.
func (g *Gen) Google() string { return "AIza" + g.str(35, urlSafe) }

// Azure returns a storage account key (base64 of 64 bytes).
func (g *Gen) Azure() string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// JWT returns an HS256-shaped token whose header and claims decode.
func (g *Gen) JWT() string {
	enc := base64.RawURLEncoding.EncodeToString
	h := enc([]byte(`{"alg":"HS256","typ":"JWT"}`))
	c := enc([]byte(fmt.Sprintf(`{"sub":"svc-%s","iat":%d,"scope":"orders:write"}`, g.str(8, alnum), 1700000000+g.r.IntN(9999999))))
	return h + "." + c + "." + g.str(43, urlSafe)
}

// Password returns a password with punctuation (including '@', ':', '/').
func (g *Gen) Password() string {
	return g.str(6, alnum) + string(punct[g.r.IntN(len(punct))]) + g.str(4, alnum) + "@" + string(punct[g.r.IntN(len(punct))]) + g.str(4, alnum)
}

// EnvPassword returns a password safe to write unquoted in a .env file.
func (g *Gen) EnvPassword() string { return g.str(10, alnum) + "!" + g.str(6, alnum) }

// PEMKey returns a private key in PEM: PKCS#8 EC, PKCS#1 RSA or SEC1 EC.
func (g *Gen) PEMKey() string {
	switch g.r.IntN(3) {
	case 0:
		if g.rsaKey == nil {
			g.rsaKey, _ = rsa.GenerateKey(cryptoReader{}, 2048)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(g.rsaKey)}))
	case 1:
		k, _ := ecdsa.GenerateKey(elliptic.P256(), cryptoReader{})
		der, _ := x509.MarshalECPrivateKey(k)
		return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	default:
		k, _ := ecdsa.GenerateKey(elliptic.P384(), cryptoReader{})
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
}

// OpenSSHKey returns an unencrypted OpenSSH ed25519 key.
func (g *Gen) OpenSSHKey() string {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(g.r.UintN(256))
	}
	b, _ := ssh.MarshalPrivateKey(ed25519.NewKeyFromSeed(seed), "ci@build")
	return string(pem.EncodeToMemory(b))
}

// ServiceAccount returns a GCP service-account key file.
func (g *Gen) ServiceAccount() string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), cryptoReader{})
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	proj := "acme-" + strings.ToLower(g.str(6, alnum))
	m := map[string]string{
		"type": "service_account", "project_id": proj, "private_key_id": strings.ToLower(g.str(40, "0123456789abcdef")),
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "deployer@" + proj + ".iam.gserviceaccount.com", "client_id": fmt.Sprint(100000000000 + g.r.IntN(99999999)),
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return string(b)
}

// UUID returns a random v4-shaped UUID.
func (g *Gen) UUID() string {
	h := g.str(32, "0123456789abcdef")
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:]
}

// Hex returns n random hex digits (hashes, commit ids).
func (g *Gen) Hex(n int) string { return g.str(n, "0123456789abcdef") }

// Base64 returns random standard base64 of n bytes.
func (g *Gen) Base64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Ident returns an identifier-like word.
func (g *Gen) Ident() string {
	words := []string{"order", "user", "cache", "client", "handler", "request", "config", "item", "total", "price", "session", "buffer", "result", "index", "value", "count", "name", "status", "account", "record"}
	w := words[g.r.IntN(len(words))]
	if g.r.IntN(2) == 0 {
		w += strings.ToUpper(words[g.r.IntN(len(words))][:1]) + words[g.r.IntN(len(words))][1:]
	}
	return w
}

// cryptoReader feeds key generation from crypto/rand (keys need not be
// reproducible, only valid).
type cryptoReader struct{}

func (cryptoReader) Read(p []byte) (int, error) { return cryptoRandRead(p) }
