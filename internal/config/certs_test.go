package config

import (
	"strings"
	"testing"
)

func TestValidateCertTargets(t *testing.T) {
	const sshOK = "targets:\n  - name: bastion\n    type: ssh\n    key_type: rsa-4096\n    roles:\n      ops:\n        principals: ['{{.service_account}}']\n        allowed_principals: ['deploy*']\n        extensions: [permit-pty]\n        critical_options: {source-address: '10.0.0.0/8', force-command: uptime}\n"
	const x509OK = "targets:\n  - name: mesh\n    type: x509\n    roles:\n      svid:\n        spiffe_id: 'spiffe://example.org/ns/{{.namespace}}'\n        dns_names: ['*.svc']\n        usages: [client]\n"
	cases := []struct {
		name, yaml, want string // want "" means valid
	}{
		{"ssh target", sshOK, ""},
		{"x509 target", x509OK, ""},
		{"ssh role without principals", "targets:\n  - name: b\n    type: ssh\n    roles: {r: {extensions: [permit-pty]}}\n", "principals: at least one"},
		{"ssh bad ca kind", strings.Replace(sshOK, "rsa-4096", "rsa-1024", 1), "key_type: want one of"},
		{"ssh unknown critical option", strings.Replace(sshOK, "force-command", "no-pty", 1), `unknown option "no-pty"`},
		{"ssh bad source-address", strings.Replace(sshOK, "10.0.0.0/8", "10.0.0.0/33", 1), "source-address: want addresses"},
		{"ssh host cert with options", strings.Replace(sshOK, "extensions:", "cert_type: host\n        extensions:", 1), "user certificates only"},
		{"ssh bad cert type", strings.Replace(sshOK, "extensions:", "cert_type: ca\n        extensions:", 1), "want user or host"},
		{"spiffe_id on ssh", strings.Replace(sshOK, "extensions:", "spiffe_id: spiffe://x/y\n        extensions:", 1), "spiffe_id: not used by a ssh target"},
		{"cert_file on ssh", strings.Replace(sshOK, "key_type: rsa-4096", "cert_file: /x", 1), "cert_file: not used by a ssh target"},
		{"principals on x509", strings.Replace(x509OK, "usages:", "principals: [a]\n        usages:", 1), "principals: not used by a x509 target"},
		{"x509 role without names", "targets:\n  - name: m\n    type: x509\n    roles: {r: {usages: [client]}}\n", "needs spiffe_id or dns_names"},
		{"x509 bad usage", strings.Replace(x509OK, "[client]", "[email]", 1), "want client or server"},
		{"x509 cert_file without key_file", strings.Replace(x509OK, "type: x509", "type: x509\n    cert_file: /nonexistent.pem", 1), "cert_file and key_file go together"},
		{"x509 not spiffe", strings.Replace(x509OK, "spiffe://", "https://", 1), "want spiffe://"},
		{"key_type on jwt", "targets:\n  - name: a\n    type: jwt\n    key_type: ed25519\n    roles: {r: {audience: x}}\n", "key_type: not used by a jwt target"},
		{"principals on jwt", "targets:\n  - name: a\n    type: jwt\n    roles: {r: {audience: x, principals: [a]}}\n", "principals: not used by a jwt target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(tc.yaml))
			if err == nil {
				cfg.SetDefaults()
				err = cfg.Validate()
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "c.yaml:") {
				t.Errorf("error lacks file:line: %v", err)
			}
		})
	}
}
