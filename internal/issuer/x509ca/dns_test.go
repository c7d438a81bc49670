package x509ca

import "testing"

func TestAllowsDNS(t *testing.T) {
	r := role{}
	r.DNSNames = []string{"*.svc.example.org", "api.example.org"}
	cases := map[string]bool{
		"api.example.org":       true,
		"API.example.org.":      true,
		"a.svc.example.org":     true,
		"a.b.svc.example.org":   true,
		"svc.example.org":       false,
		"*.svc.example.org":     false, // no wildcard certificates
		"a..svc.example.org":    false,
		"a\x00.svc.example.org": false,
		"a/b.svc.example.org":   false,
		"-a.svc.example.org":    false,
		"evil.example.org":      false,
	}
	for name, want := range cases {
		if got := r.allowsDNS(name); got != want {
			t.Errorf("allowsDNS(%q) = %v, want %v", name, got, want)
		}
	}
}
