package scan

import (
	"bytes"
	"regexp"
	"sort"
)

// rule is one detector. A rule declares the keywords that must occur near a
// credential of its kind; it runs only where the prefilter found one. Simple
// rules give a regular expression (submatch 1 is the secret) and a check;
// structural rules give find, which parses around each hit itself.
type rule struct {
	id          string
	desc        string
	source      string // provider documentation for the format
	keywords    []string
	priority    int // on overlapping candidates the higher priority wins
	remediation Remediation

	re        *regexp.Regexp
	back, fwd int // window around a keyword hit, bounded by the line unless multiline
	multiline bool
	check     func(secret []byte) (ok, high bool)

	find func(s *fileScan, r *rule, hits []int)
}

// Remediations, by stint target type.
var (
	remHTTP = Remediation{TargetType: "http", Pattern: "stint proxy",
		Summary: "add an http target for the API with the key stored server-side; the workload calls /proxy/{target}/… and never holds the key"}
	remPostgres = Remediation{TargetType: "postgres", Pattern: "stint exec",
		Summary: "add a postgres target and run the app with `stint exec --cred TARGET/ROLE` so it gets a temporary user per run"}
	remMySQL = Remediation{TargetType: "mysql", Pattern: "stint exec",
		Summary: "add a mysql target and run the app with `stint exec --cred TARGET/ROLE` so it gets a temporary user per run"}
	remAWS = Remediation{TargetType: "aws-sts", Pattern: "stint creds --format aws-process",
		Summary: "add an aws-sts target with the IAM role; use `credential_process = stint creds TARGET/ROLE --format aws-process` and delete the access key"}
	remSSH = Remediation{TargetType: "ssh", Pattern: "stint creds (ssh certificate)",
		Summary: "add an ssh target; workloads get short-lived SSH certificates from the stint CA instead of a long-lived key"}
	remX509 = Remediation{TargetType: "x509", Pattern: "stint agent (x509 sink)",
		Summary: "add an x509 target; the stint agent writes a short-lived certificate and key and renews it"}
	remJWT = Remediation{TargetType: "jwt", Pattern: "stint token",
		Summary: "mint a short-lived token per workload with `stint token` / a jwt target instead of a stored bearer token"}
	remGeneric = Remediation{TargetType: "http", Pattern: "stint proxy or stint exec",
		Summary: "if this is an API key, move it behind an http target and stint proxy; otherwise inject it at run time with stint exec"}
	remNone = Remediation{TargetType: "", Pattern: "stint exec",
		Summary: "no stint target type for this system yet: rotate it and inject it at run time instead of committing it"}
)

// tokenEnd matches the end of a token: a byte that cannot continue it.
const tokenEnd = `(?:[^A-Za-z0-9_\-]|\z)`

// builtinRules returns the rules in a fresh slice (rules hold compiled
// regexps only, so they are safe to share between goroutines).
func builtinRules() []*rule {
	prefix := func(id, desc, source string, kws []string, re string, rem Remediation, check func([]byte) (bool, bool)) *rule {
		return &rule{id: id, desc: desc, source: source, keywords: kws, priority: 3,
			re: regexp.MustCompile(re), back: 0, fwd: 300, check: check, remediation: rem}
	}
	highIf := func(min float64) func([]byte) (bool, bool) {
		return func(v []byte) (bool, bool) { return entropy(v) >= min, true }
	}
	rules := []*rule{
		prefix("github-token", "GitHub token (classic format, CRC32 verified)",
			"https://github.blog/engineering/platform-security/behind-githubs-new-authentication-token-formats/",
			[]string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"},
			`\b(gh[pousr]_[A-Za-z0-9]{36})`+tokenEnd, remGeneric,
			func(v []byte) (bool, bool) { return validChecksumToken(v), true }),
		prefix("github-fine-grained-token", "GitHub fine-grained personal access token",
			"https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/managing-your-personal-access-tokens",
			[]string{"github_pat_"},
			`\b(github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})`+tokenEnd, remGeneric, highIf(4.0)),
		prefix("npm-token", "npm access token (CRC32 verified)",
			"https://github.blog/changelog/2021-09-23-npm-has-a-new-access-token-format/",
			[]string{"npm_"},
			`\b(npm_[A-Za-z0-9]{36})`+tokenEnd, remGeneric,
			func(v []byte) (bool, bool) { return validChecksumToken(v), true }),
		prefix("gitlab-token", "GitLab personal, deploy, runner or trigger token",
			"https://docs.gitlab.com/security/tokens/#token-prefixes",
			[]string{"glpat-", "gldt-", "glrt-", "glptt-"},
			`\b((?:glpat|gldt|glrt|glptt)-[0-9A-Za-z_\-]{20,80}(?:\.[0-9a-z]{2}\.[0-9a-z]{9})?)`+`(?:[^A-Za-z0-9_\-.]|\z)`, remGeneric, highIf(3.5)),
		prefix("slack-token", "Slack token",
			"https://docs.slack.dev/authentication/tokens/",
			[]string{"xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"},
			`\b(xox[baprs]-[0-9]{8,14}-[0-9A-Za-z\-]{16,160})`+tokenEnd, remHTTP, highIf(3.0)),
		prefix("slack-webhook", "Slack incoming webhook URL",
			"https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks/",
			[]string{"hooks.slack.com/"},
			`(hooks\.slack\.com/services/T[A-Z0-9]{6,12}/B[A-Z0-9]{6,12}/[A-Za-z0-9]{20,32})`+tokenEnd, remHTTP, highIf(3.0)),
		prefix("stripe-secret-key", "Stripe live secret or restricted key",
			"https://docs.stripe.com/keys",
			[]string{"sk_live_", "rk_live_"},
			`\b((?:sk|rk)_live_[0-9A-Za-z]{24,247})`+tokenEnd, remHTTP, highIf(3.5)),
		{id: "openai-api-key", desc: "OpenAI API key",
			source:   "https://platform.openai.com/docs/api-reference/authentication",
			keywords: []string{"sk-proj-", "sk-svcacct-", "sk-admin-", "t3blbkfj"}, priority: 3,
			re:   regexp.MustCompile(`\b(sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,250}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}))` + tokenEnd),
			back: 260, fwd: 260, remediation: remHTTP,
			check: func(v []byte) (bool, bool) {
				if bytes.Contains(v, []byte("T3BlbkFJ")) {
					return true, true
				}
				return looksRandom(v, 4.0), false
			}},
		prefix("anthropic-api-key", "Anthropic API key",
			"https://docs.anthropic.com/en/api/overview#authentication",
			[]string{"sk-ant-"},
			`\b(sk-ant-(?:api03|admin01)-[A-Za-z0-9_\-]{93}AA)`+tokenEnd, remHTTP, highIf(3.5)),
		prefix("google-api-key", "Google API key",
			"https://cloud.google.com/docs/authentication/api-keys",
			[]string{"aiza"},
			`\b(AIza[0-9A-Za-z_\-]{35})`+tokenEnd, remHTTP, highIf(3.5)),
		{id: "azure-storage-key", desc: "Azure storage account key (connection string AccountKey)",
			source:   "https://learn.microsoft.com/en-us/azure/storage/common/storage-configure-connection-string",
			keywords: []string{"accountkey"}, priority: 3, back: 0, fwd: 200, remediation: remNone,
			re:    regexp.MustCompile(`(?i)AccountKey\s*=\s*([A-Za-z0-9+/]{86}==)`),
			check: func(v []byte) (bool, bool) { return validAzureKey(v), true }},
		{id: "jwt", desc: "JSON Web Token (decodes, has alg)",
			source:   "https://datatracker.ietf.org/doc/html/rfc7519",
			keywords: []string{"eyj"}, priority: 2, back: 0, fwd: 4096, remediation: remJWT,
			re:    regexp.MustCompile(`\b(eyJ[A-Za-z0-9_\-]{8,}\.ey[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,})` + tokenEnd),
			check: func(v []byte) (bool, bool) { return validJWT(v), false }},
		{id: "aws-access-key-id", desc: "AWS access key id (with its secret key when nearby)",
			source:   "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids",
			keywords: []string{"akia", "asia", "abia", "acca"}, priority: 3, remediation: remAWS,
			find: findAWS},
		{id: "private-key", desc: "private key (PEM or OpenSSH, parses)",
			source:   "https://datatracker.ietf.org/doc/html/rfc7468",
			keywords: []string{"-----begin"}, priority: 4, remediation: remX509,
			find: findPEM},
		{id: "gcp-service-account", desc: "GCP service-account key file",
			source:   "https://cloud.google.com/iam/docs/keys-create-delete",
			keywords: []string{"service_account"}, priority: 5, remediation: remNone,
			find: findGCP},
		{id: "database-url", desc: "database URL or DSN with a password",
			source:   "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS",
			keywords: dsnKeywords, priority: 3, remediation: remPostgres,
			find: findDSN},
		{id: "generic-secret", desc: "secret assigned to a key/password/token variable (entropy checked)",
			source:   "stint heuristic: assignment to a secret-named key, value not a placeholder, entropy threshold",
			keywords: genericKeywords, priority: 1, back: 120, fwd: 300, remediation: remGeneric,
			find: findGeneric},
	}
	return rules
}

// window returns the byte range around a keyword hit at p that a regex may
// need: at most back bytes before and fwd after, cut at line ends unless the
// rule spans lines.
func (s *fileScan) window(r *rule, p int) (int, int) {
	lo := p - r.back
	if lo < 0 {
		lo = 0
	}
	hi := p + r.fwd
	if hi > len(s.data) {
		hi = len(s.data)
	}
	if !r.multiline {
		for i := p - 1; i >= lo; i-- {
			if s.data[i] == '\n' {
				lo = i + 1
				break
			}
		}
		for i := p; i < hi; i++ {
			if s.data[i] == '\n' {
				hi = i
				break
			}
		}
	}
	return lo, hi
}

// eachWindow calls fn for every merged window around the hits.
func (s *fileScan) eachWindow(r *rule, hits []int, fn func(lo, hi int)) {
	sort.Ints(hits)
	curLo, curHi := -1, -1
	for _, p := range hits {
		lo, hi := s.window(r, p)
		if curHi >= 0 && lo <= curHi {
			if hi > curHi {
				curHi = hi
			}
			continue
		}
		if curHi >= 0 {
			fn(curLo, curHi)
		}
		curLo, curHi = lo, hi
	}
	if curHi >= 0 {
		fn(curLo, curHi)
	}
}

// findRegex is the default find: the rule's regex in each window, then its
// check and the placeholder filter.
func findRegex(s *fileScan, r *rule, hits []int) {
	s.eachWindow(r, hits, func(lo, hi int) {
		for _, m := range r.re.FindAllSubmatchIndex(s.data[lo:hi], -1) {
			a, b := lo+m[2], lo+m[3]
			v := s.data[a:b]
			if isPlaceholder(v) {
				continue
			}
			ok, high := r.check(v)
			if ok {
				s.emit(candidate{rule: r, start: a, end: b, secret: v, high: high})
			}
		}
	})
}
