package scantest

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// fb builds a file line by line, recording the planted lines.
type fb struct {
	lines []string
	exp   []Expect
}

func (b *fb) add(ls ...string) {
	for _, l := range ls {
		b.lines = append(b.lines, strings.Split(l, "\n")...)
	}
}

func (b *fb) plant(l, rule string) {
	b.exp = append(b.exp, Expect{Line: len(b.lines) + 1, Rule: rule})
	b.add(l)
}

func (b *fb) file(path string) File {
	return File{Path: path, Content: strings.Join(b.lines, "\n") + "\n", Expect: b.exp}
}

// Planted returns one file per credential format, each shaped like the
// place such a credential is really found.
func (g *Gen) Planted() []File {
	var out []File
	{
		var b fb
		b.add("package github", "", "import \"net/http\"", "")
		b.plant(fmt.Sprintf("const defaultToken = %q", g.GitHub()), "github-token")
		b.add("", "func client() *http.Client {", "\treturn http.DefaultClient", "}")
		out = append(out, b.file("services/sync/github.go"))
	}
	{
		var b fb
		b.add("import os", "from openai import OpenAI", "")
		b.plant(fmt.Sprintf("client = OpenAI(api_key=%q)", g.OpenAI()), "openai-api-key")
		b.add("MODEL = os.environ.get(\"MODEL\", \"gpt-4o\")")
		out = append(out, b.file("agents/summarise.py"))
	}
	{
		var b fb
		b.add("import Anthropic from '@anthropic-ai/sdk';", "")
		b.plant(fmt.Sprintf("const anthropic = new Anthropic({ apiKey: '%s' });", g.Anthropic()), "anthropic-api-key")
		b.add("export default anthropic;")
		out = append(out, b.file("web/src/llm.ts"))
	}
	{
		var b fb
		b.add("database:", "  pool: 20")
		b.plant(fmt.Sprintf("  url: \"postgres://orders_app:%s@db.prod.internal:5432/orders?sslmode=require\"", g.Password()), "database-url")
		b.add("  timeout: 5s")
		out = append(out, b.file("deploy/orders/config.yaml"))
	}
	{
		id, sec := g.AWS()
		var b fb
		b.add("[default]", "region = eu-west-1")
		b.plant("aws_access_key_id = "+id, "aws-access-key-id")
		b.plant("aws_secret_access_key = "+sec, "aws-secret-access-key")
		out = append(out, b.file("ops/aws/credentials"))
	}
	{
		var b fb
		b.add("{", `  "name": "maps-widget",`)
		b.plant(fmt.Sprintf(`  "mapsApiKey": "%s",`, g.Google()), "google-api-key")
		b.add(`  "zoom": 12`, "}")
		out = append(out, b.file("web/public/maps.json"))
	}
	{
		var b fb
		b.add("# local settings", "PORT=8080", "DEBUG=false")
		b.plant("STRIPE_SECRET_KEY="+g.Stripe(), "stripe-secret-key")
		b.plant("SMTP_PASSWORD="+g.EnvPassword(), "dotenv-secret")
		b.add("LOG_LEVEL=info")
		out = append(out, b.file("billing/.env"))
	}
	{
		var b fb
		b.add("apiVersion: v1", "kind: Secret", "metadata:", "  name: app-credentials", "  namespace: shop", "type: Opaque", "data:")
		b.plant("  db-password: "+base64.StdEncoding.EncodeToString([]byte(g.EnvPassword())), "kubernetes-secret-data")
		b.plant("  slack-token: "+base64.StdEncoding.EncodeToString([]byte(g.Slack())), "slack-token")
		b.add("  region: " + base64.StdEncoding.EncodeToString([]byte("eu-west-1")))
		b.add("---", "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: app", "data:", "  mode: production")
		out = append(out, b.file("k8s/shop/secret.yaml"))
	}
	{
		var b fb
		b.plant(g.PEMKey(), "private-key")
		out = append(out, b.file("certs/server.key"))
	}
	{
		var b fb
		b.plant(g.OpenSSHKey(), "private-key")
		out = append(out, b.file("ci/deploy_ed25519"))
	}
	{
		sa := g.ServiceAccount()
		var b fb
		for _, l := range strings.Split(sa, "\n") {
			if strings.Contains(l, `"private_key":`) {
				b.plant(l, "gcp-service-account")
			} else {
				b.add(l)
			}
		}
		out = append(out, b.file("infra/gcp/deployer-sa.json"))
	}
	{
		var b fb
		b.add("{", `  "Logging": { "LogLevel": { "Default": "Information" } },`, `  "ConnectionStrings": {`)
		b.plant(fmt.Sprintf(`    "Blob": "DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey=%s;EndpointSuffix=core.windows.net"`, g.Azure()), "azure-storage-key")
		b.add("  }", "}")
		out = append(out, b.file("dotnet/Api/appsettings.Production.json"))
	}
	{
		var b fb
		b.add("### call the orders API", "GET https://api.internal/orders/42")
		b.plant("Authorization: Bearer "+g.JWT(), "jwt")
		out = append(out, b.file("docs/requests/orders.http"))
	}
	{
		var b fb
		b.add("variables:", "  GIT_DEPTH: 10")
		b.plant("  GITLAB_TOKEN: "+g.GitLab(), "gitlab-token")
		b.add("build:", "  script: make")
		out = append(out, b.file(".gitlab-ci.yml"))
	}
	{
		var b fb
		b.add("from slack_sdk import WebClient", "")
		b.plant(fmt.Sprintf("slack = WebClient(token=%q)", g.Slack()), "slack-token")
		out = append(out, b.file("bots/notify.py"))
	}
	{
		var b fb
		b.add("oauth:", "  client_id: orders-service")
		b.plant(fmt.Sprintf("  client_secret: %q", g.str(32, alnum)), "generic-secret")
		b.add("  scopes: [orders.read]")
		out = append(out, b.file("config/oauth.yaml"))
	}
	{
		var b fb
		b.add("package store", "", "import \"database/sql\"", "")
		b.plant(fmt.Sprintf("const dsn = \"shop:%s@tcp(10.0.3.7:3306)/shop?parseTime=true\"", g.Password()), "database-url")
		out = append(out, b.file("store/mysql.go"))
	}
	{
		var b fb
		b.add("const mongoose = require('mongoose');")
		b.plant(fmt.Sprintf("mongoose.connect('mongodb+srv://api:%s@cluster0.x1y2z.mongodb.net/app');", g.EnvPassword()), "database-url")
		out = append(out, b.file("api/db.js"))
	}
	{
		var b fb
		b.add("registry=https://registry.npmjs.org/")
		b.plant("//registry.npmjs.org/:_authToken="+g.NPM(), "npm-token")
		out = append(out, b.file(".npmrc"))
	}
	{
		var b fb
		b.add("#!/bin/sh", "set -eu")
		b.plant(fmt.Sprintf("export GH_TOKEN=%q", g.GitHubFineGrained()), "github-fine-grained-token")
		b.add("gh release create \"$TAG\"")
		out = append(out, b.file("scripts/release.sh"))
	}
	{
		var b fb
		b.add("cache:", "  host: redis.internal")
		b.plant(fmt.Sprintf("  url: redis://default:%s@redis.internal:6379/0", g.EnvPassword()), "database-url")
		out = append(out, b.file("config/cache.yml"))
	}
	return out
}

// Decoys returns files full of look-alikes that must not be reported.
func (g *Gen) Decoys() []File {
	var out []File
	{
		var b fb
		b.add("# Setup", "", "Set your keys before running:", "",
			"    export OPENAI_API_KEY=sk-...",
			"    export ANTHROPIC_API_KEY=<your-key>",
			"    export GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
			"    export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",
			"    export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			"    export SLACK_TOKEN=xoxb-your-token-here",
			"    export DATABASE_URL=postgres://user:${DB_PASSWORD}@localhost:5432/app",
			"    export STRIPE_KEY=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
			"", "A private key looks like:", "", "    -----BEGIN PRIVATE KEY-----", "    MIIE...", "    -----END PRIVATE KEY-----",
			"", "password: changeme", "api_key: \"{{ .Values.apiKey }}\"", "secret: aaaaaaaaaaaaaaaa")
		out = append(out, b.file("README.md"))
	}
	{
		var b fb
		b.add("{", `  "name": "web",`, `  "lockfileVersion": 3,`, `  "packages": {`)
		for i := 0; i < 40; i++ {
			name := strings.ToLower(g.Ident())
			b.add(fmt.Sprintf(`    "node_modules/%s": {`, name),
				fmt.Sprintf(`      "version": "1.%d.%d",`, i, g.r.IntN(20)),
				fmt.Sprintf(`      "resolved": "https://registry.npmjs.org/%s/-/%s-1.%d.0.tgz",`, name, name, i),
				fmt.Sprintf(`      "integrity": "sha512-%s"`, g.Base64(64)),
				"    },")
		}
		b.add("  }", "}")
		out = append(out, b.file("web/package-lock.json"))
	}
	{
		var b fb
		for i := 0; i < 30; i++ {
			b.add(fmt.Sprintf("%s  dist/app-%d.tar.gz", g.Hex(64), i))
		}
		out = append(out, b.file("dist/SHA256SUMS"))
	}
	{
		var b fb
		b.add("[")
		for i := 0; i < 30; i++ {
			b.add(fmt.Sprintf(`  {"id": "%s", "request_id": "%s", "session": "%s", "commit": "%s"},`, g.UUID(), g.UUID(), g.Hex(32), g.Hex(40)))
		}
		b.add("]")
		out = append(out, b.file("fixtures/events.json"))
	}
	{
		var parts []string
		for i := 0; i < 200; i++ {
			v := g.str(2, "abcdefghijklmnopqrstuvwxyz")
			parts = append(parts, fmt.Sprintf("function %s(e,t){var n=e.token||t.token;return n?%s(n):null}", v, v))
			parts = append(parts, fmt.Sprintf("var %s=\"data:image/png;base64,%s\";", v, g.Base64(48)))
			parts = append(parts, fmt.Sprintf("%s.headers.Authorization=\"Bearer \"+%s.accessToken;", v, v))
		}
		out = append(out, File{Path: "web/dist/app.min.js", Content: strings.Join(parts, "") + "\n"})
	}
	{
		var b fb
		b.add("package config", "", "import \"os\"", "", "type DB struct {", "\tPassword string", "\tToken    string", "}", "",
			"func Load() DB {",
			"\tpassword := os.Getenv(\"DB_PASSWORD\")",
			"\ttoken := cfg.AccessToken",
			"\treturn DB{Password: password, Token: token}",
			"}",
			fmt.Sprintf("// badToken fails its checksum, as a typo in a fixture would: %s", g.GitHubBadChecksum()),
			"const tokenHeader = \"X-Session-Token\"",
			"var passwordPolicy = \"min-length-12\"",
		)
		out = append(out, b.file("internal/config/load.go"))
	}
	{
		var b fb
		b.add("github.com/google/uuid v1.6.0 h1:"+g.Base64(32), "github.com/google/uuid v1.6.0/go.mod h1:"+g.Base64(32))
		out = append(out, b.file("go.sum"))
	}
	{
		var b fb
		b.add("-----BEGIN CERTIFICATE-----", g.Base64(48), g.Base64(48), "-----END CERTIFICATE-----",
			"token: eyJhbGciOiJIUzI1NiJ9.truncated", "jwt_example: eyJhbGciOi...")
		out = append(out, b.file("docs/tls.md"))
	}
	{
		var b fb
		b.add("DB_HOST=localhost", "DB_PASSWORD=", "API_TOKEN=${API_TOKEN}", "SECRET_KEY=changeme", "TOKEN_TTL=3600")
		out = append(out, b.file("app/.env.example"))
	}
	return out
}

// Filler returns n lines of source-like text with no credentials.
func (g *Gen) Filler(n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		switch g.r.IntN(8) {
		case 0:
			fmt.Fprintf(&sb, "func (s *%sService) %s(ctx context.Context, id string) error {\n", title(g.Ident()), title(g.Ident()))
		case 1:
			fmt.Fprintf(&sb, "\tif err := s.%s.Load(ctx, %q); err != nil {\n\t\treturn fmt.Errorf(\"load %%s: %%w\", id, err)\n\t}\n", g.Ident(), g.Ident())
		case 2:
			fmt.Fprintf(&sb, "\t%s := %s + %d // adjust for the %s window\n", g.Ident(), g.Ident(), g.r.IntN(1000), g.Ident())
		case 3:
			fmt.Fprintf(&sb, "    %s: %s-%d\n", g.Ident(), g.Ident(), g.r.IntN(100))
		case 4:
			fmt.Fprintf(&sb, "// %s returns the %s for the %s, or an error when the token has expired.\n", g.Ident(), g.Ident(), g.Ident())
		case 5:
			fmt.Fprintf(&sb, "\tlog.Info(\"processed\", \"%s\", %s, \"elapsed\", time.Since(start))\n", g.Ident(), g.Ident())
		case 6:
			fmt.Fprintf(&sb, "  \"%s\": \"%s\",\n", g.Ident(), g.Hex(40))
		default:
			fmt.Fprintf(&sb, "\treturn %s.%s(%s, %d)\n", g.Ident(), title(g.Ident()), g.Ident(), g.r.IntN(64))
		}
	}
	return sb.String()
}

// title upper-cases the first ASCII letter (identifiers only).
func title(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
