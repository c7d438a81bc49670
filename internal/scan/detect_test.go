package scan

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// ghToken builds a GitHub-format token with a correct checksum.
func ghToken(prefix, random30 string) string {
	return prefix + random30 + Base62CRC32([]byte(random30))
}

func testPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

func testOpenSSH(t *testing.T) string {
	t.Helper()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	b, err := ssh.MarshalPrivateKey(k, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(b))
}

func TestScanFindsEachFormatAndRejectsLookAlikes(t *testing.T) {
	gh := ghToken("ghp_", "Zq3Tx9LmA7bKcR2vWn5YpE8sDf4Hj6")
	ghBad := gh[:len(gh)-1] + "Q"
	if gh[len(gh)-1] == 'Q' {
		ghBad = gh[:len(gh)-1] + "R"
	}
	pemKey := testPEM(t)
	sshKey := testOpenSSH(t)
	azure := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k9Zq#", 12) + "Lm7x"))
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	sa, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "p", "private_key_id": "abc", "private_key": pemKey, "client_email": "x@p.iam.gserviceaccount.com"})
	cases := []struct {
		name, path, text string
		want             []string // rule ids, in order
	}{
		{"github classic with valid checksum", "a.go", `tok := "` + gh + `"`, []string{"github-token"}},
		{"github classic with wrong checksum", "a.go", `tok := "` + ghBad + `"`, nil},
		{"github fine-grained", "a.go", `t = "github_pat_11AQ7DEFG0aZ3kQ9xW7rLm_` + strings.Repeat("Pq8Rt5Vw2Yz4Bn6Cm1Dk3", 3)[:59] + `"`, []string{"github-fine-grained-token"}},
		{"gitlab", "ci.yml", `GL: glpat-Zx8Kq2Lm9Nv4Bw7Rt3Yp`, []string{"gitlab-token"}},
		{"slack bot", "a.py", `SLACK = "xoxb-2345678901-3456789012-Kx9Lm2Qw7Er4Ty8Ui1Op3As5D"`, []string{"slack-token"}},
		{"stripe live", "a.rb", `Stripe.api_key = 'sk_live_51Hx9Kq2Lm7Nw3Rt8Yp4Zv6Bc'`, []string{"stripe-secret-key"}},
		{"openai legacy marker", "a.py", `k = "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"`, []string{"openai-api-key"}},
		{"anthropic", "a.ts", `const k = "sk-ant-api03-` + strings.Repeat("Zx9_Kq2-Lm7", 9)[:93] + `AA"`, []string{"anthropic-api-key"}},
		{"aws pair", "cfg.ini", "aws_access_key_id = AKIAQ3ZK7XW2LM4PN6RT\naws_secret_access_key = Wq7Zr2Kx9Lm4Nv8Bt3Yp6Hd1Fs5Gj0Ua+Ce/Ri2T\n", []string{"aws-access-key-id", "aws-secret-access-key"}},
		{"aws documentation example", "a.md", "AKIAIOSFODNN7EXAMPLE", nil},
		{"google api key", "a.js", `key: "AIzaSyB3kQ9xW7rLm2Pq8Rt5Vw2Yz4Bn6Cm1Dk3"`, []string{"google-api-key"}},
		{"azure connection string", "a.cs", `"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=` + azure + `;EndpointSuffix=core.windows.net"`, []string{"azure-storage-key"}},
		{"pem pkcs8 key", "key.pem", pemKey, []string{"private-key"}},
		{"openssh key", "id_ed25519", sshKey, []string{"private-key"}},
		{"pem garbage does not parse", "k.pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n", nil},
		{"jwt", "a.http", "Authorization: Bearer " + jwt, []string{"jwt"}},
		{"gcp service account", "sa.json", string(sa), []string{"gcp-service-account"}},
		{"postgres url with punctuation password", "a.yaml", `dsn: "postgres://app:p@ss/w#rd:9!@db.internal:5432/orders"`, []string{"database-url"}},
		{"mongodb srv", "a.env.example.txt", `MONGO=mongodb+srv://svc:Qz8xLm2Kw9@cluster0.mongodb.net/db`, []string{"database-url"}},
		{"mysql go dsn", "main.go", `dsn := "app:Kq9#zL2@xW@tcp(10.0.0.5:3306)/shop"`, []string{"database-url"}},
		{"url with variable password", "a.yaml", `dsn: postgres://app:${DB_PASSWORD}@db/orders`, nil},
		{"generic quoted", "settings.py", `API_KEY = "q8Zr2Kx9Lm4Nv8Bt3Yp6"`, []string{"generic-secret"}},
		{"generic placeholder", "settings.py", `API_KEY = "<your-api-key>"`, nil},
		{"generic code reference", "a.go", `password: cfg.DatabasePassword,`, nil},
		{"generic env lookup", "a.go", `token := os.Getenv("GITHUB_TOKEN")`, nil},
		{"openai placeholder", "README.md", `export OPENAI_API_KEY=sk-...`, nil},
		{"changeme", "a.yaml", `password: changeme`, nil},
		{"all same char", "a.yaml", `secret: "aaaaaaaaaaaaaaaa"`, nil},
		{"sha256 hash", "a.txt", `sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08`, nil},
		{"uuid", "a.json", `"id": "3f2b8c1e-9a4d-4e7b-8c2f-1a5d6e7f8a9b"`, nil},
		{"ignored line", "a.go", `tok := "` + gh + `" // stint:ignore`, nil},
		{"dotenv", ".env", "DB_PASSWORD=Zq9!xLm2#Kw\nDEBUG=true\nAPI_TOKEN=\n", []string{"dotenv-secret"}},
		{"dotenv placeholder", ".env", "DB_PASSWORD=changeme\n", nil},
	}
	d := NewDetector(nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := d.Scan(tc.path, []byte(tc.text))
			var ids []string
			for _, f := range got {
				ids = append(ids, f.RuleID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("rules = %v, want %v", ids, tc.want)
			}
		})
	}
}
