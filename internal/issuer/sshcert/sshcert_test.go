package sshcert

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/core"
)

var roles = map[string]RoleConfig{
	"ops": {Principals: []string{"{{.service_account}}", "deploy"}, AllowedPrincipals: []string{"deploy*", "ops-*"},
		Extensions: []string{"permit-pty"}, CriticalOptions: map[string]string{"source-address": "10.0.0.0/8,127.0.0.1"}},
	"host":   {Principals: []string{"{{.service_account}}.hosts.example.com"}, CertType: "host"},
	"nsuser": {Principals: []string{"{{.missing}}"}},
}

func TestIssueSignsACertificateTheCAVerifies(t *testing.T) {
	for _, kind := range []string{"ed25519", "ecdsa-p256", "rsa-3072"} {
		t.Run(kind, func(t *testing.T) {
			is := newIssuer(t, kind, roles, nil)
			_, pub := clientKey(t)
			now := time.Now()
			res, err := is.Issue(context.Background(), request("lease-1", "ops", map[string]string{"public_key": pub}, now, now.Add(15*time.Minute)))
			if err != nil {
				t.Fatal(err)
			}
			c := parseCert(t, res.Credential["certificate"])
			ca, err := is.CA(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checker := ssh.CertChecker{SupportedCriticalOptions: knownOptions, IsUserAuthority: func(k ssh.PublicKey) bool {
				return string(k.Marshal()) == string(ca.PublicKey().Marshal())
			}}
			if err := checker.CheckCert("deploy", c); err != nil {
				t.Fatalf("CheckCert: %v", err)
			}
			if kind == "rsa-3072" && c.Signature.Format != ssh.KeyAlgoRSASHA512 {
				t.Errorf("rsa ca signed with %s, want rsa-sha2-512", c.Signature.Format)
			}
			if got, want := c.ValidPrincipals, []string{"deployer", "deploy"}; !slices.Equal(got, want) {
				t.Errorf("principals %v, want %v", got, want)
			}
			if c.Serial != Serial("lease-1") || c.CertType != ssh.UserCert {
				t.Errorf("serial %d type %d", c.Serial, c.CertType)
			}
			if int64(c.ValidAfter) != now.Add(-Backdate).Unix() || int64(c.ValidBefore) != now.Add(15*time.Minute).Unix() {
				t.Errorf("validity %d..%d", c.ValidAfter, c.ValidBefore)
			}
			for _, want := range []string{"lease=lease-1", "principal=prod:system:serviceaccount:agents:deployer"} {
				if !strings.Contains(c.KeyId, want) {
					t.Errorf("key id %q lacks %q", c.KeyId, want)
				}
			}
			if _, ok := c.Extensions["permit-pty"]; !ok || len(c.Extensions) != 1 {
				t.Errorf("extensions %v", c.Extensions)
			}
			if c.CriticalOptions["source-address"] != "10.0.0.0/8,127.0.0.1" {
				t.Errorf("critical options %v", c.CriticalOptions)
			}
			if _, ok := res.Credential["private_key"]; ok {
				t.Error("a private key was returned although the caller sent its public key")
			}
			if strings.Contains(string(res.Internal), "PRIVATE") {
				t.Error("internal data holds a private key")
			}
		})
	}
}

func TestIssueGeneratesAKeyPairWhenNoneIsSent(t *testing.T) {
	is := newIssuer(t, "", roles, nil)
	now := time.Now()
	res, err := is.Issue(context.Background(), request("lease-2", "ops", nil, now, now.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ssh.ParsePrivateKey([]byte(res.Credential["private_key"]))
	if err != nil {
		t.Fatalf("private_key: %v", err)
	}
	c := parseCert(t, res.Credential["certificate"])
	if string(c.Key.Marshal()) != string(priv.PublicKey().Marshal()) {
		t.Error("certificate is not for the generated key")
	}
	if strings.Contains(string(res.Internal), "PRIVATE") || strings.Contains(string(res.Internal), res.Credential["private_key"][40:80]) {
		t.Error("the generated private key is kept in the lease's internal data")
	}
}

func TestIssueHostCertificate(t *testing.T) {
	is := newIssuer(t, "", roles, nil)
	_, pub := clientKey(t)
	now := time.Now()
	res, err := is.Issue(context.Background(), request("lease-3", "host", map[string]string{"public_key": pub}, now, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, res.Credential["certificate"])
	if c.CertType != ssh.HostCert || c.ValidPrincipals[0] != "deployer.hosts.example.com" {
		t.Fatalf("type %d principals %v", c.CertType, c.ValidPrincipals)
	}
}

func rsaLine(t *testing.T, bits int) string {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(p))
}

func TestIssueRefusesBadInput(t *testing.T) {
	is := newIssuer(t, "", roles, nil)
	_, good := clientKey(t)
	other := newIssuer(t, "", roles, nil)
	now := time.Now()
	certRes, err := other.Issue(context.Background(), request("x", "ops", map[string]string{"public_key": good}, now, now.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		role   string
		params map[string]string
		kind   core.Kind
		reason string
	}{
		{"malformed public key", "ops", map[string]string{"public_key": "ssh-ed25519 not-base64!"}, core.KindInvalid, "not an OpenSSH public key"},
		{"truncated key blob", "ops", map[string]string{"public_key": good[:40]}, core.KindInvalid, "not an OpenSSH public key"},
		{"two keys", "ops", map[string]string{"public_key": good + "\n" + good}, core.KindInvalid, "exactly one key"},
		{"rsa below 2048 bits", "ops", map[string]string{"public_key": rsaLine(t, 1024)}, core.KindInvalid, "below the 2048-bit floor"},
		{"dsa key", "ops", map[string]string{"public_key": "ssh-dss AAAAB3NzaC1kc3MAAACBAPlHIP5sD+T8 x"}, core.KindInvalid, "dsa keys are not accepted"},
		{"certificate as key", "ops", map[string]string{"public_key": certRes.Credential["certificate"]}, core.KindInvalid, "is a certificate"},
		{"private key", "ops", map[string]string{"public_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----"}, core.KindInvalid, "holds a private key"},
		{"principal not granted", "ops", map[string]string{"public_key": good, "principals": "root"}, core.KindInvalid, "not one this role grants"},
		{"rendered principal outside allow-list", "host-bad", map[string]string{"public_key": good}, core.KindForbidden, "not allowed by the role"},
		{"attribute missing", "nsuser", map[string]string{"public_key": good}, core.KindForbidden, "cannot be derived"},
		{"unknown role", "nope", map[string]string{"public_key": good}, core.KindInvalid, "no role"},
	}
	is.roles["host-bad"], _ = newRole(RoleConfig{Principals: []string{"{{.namespace}}"}, AllowedPrincipals: []string{"deploy*"}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := is.Issue(context.Background(), request("bad", tc.role, tc.params, now, now.Add(time.Minute)))
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Kind != tc.kind || !strings.Contains(ce.Public, tc.reason) {
				t.Fatalf("err = %v, want kind %d with %q", err, tc.kind, tc.reason)
			}
			if res.Credential != nil {
				t.Fatal("a credential came back with the error")
			}
		})
	}
}

func TestIssueNarrowsToRequestedPrincipals(t *testing.T) {
	is := newIssuer(t, "", roles, nil)
	_, pub := clientKey(t)
	now := time.Now()
	res, err := is.Issue(context.Background(), request("l", "ops", map[string]string{"public_key": pub, "principals": "deploy"}, now, now.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if got := parseCert(t, res.Credential["certificate"]).ValidPrincipals; !slices.Equal(got, []string{"deploy"}) {
		t.Fatalf("principals %v", got)
	}
}

func TestNewRejectsBadRoles(t *testing.T) {
	cases := map[string]RoleConfig{
		"no principals":           {},
		"bad template":            {Principals: []string{"{{.x"}},
		"unknown cert type":       {Principals: []string{"a"}, CertType: "ca"},
		"unknown critical":        {Principals: []string{"a"}, CriticalOptions: map[string]string{"no-pty": ""}},
		"bad source-address":      {Principals: []string{"a"}, CriticalOptions: map[string]string{"source-address": "10.0.0.0/33"}},
		"host with force-command": {Principals: []string{"a"}, CertType: "host", CriticalOptions: map[string]string{"force-command": "true"}},
		"bad pattern":             {Principals: []string{"a"}, AllowedPrincipals: []string{"["}},
	}
	for name, rc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := New(Config{Name: "t", Keys: &memKeys{}, Roles: map[string]RoleConfig{"r": rc}}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := New(Config{Name: "t", KeyType: "rsa-1024", Keys: &memKeys{}}); err == nil {
		t.Fatal("rsa-1024 ca accepted")
	}
}

func TestKRLListsRevokedUnexpiredLeasesOfTheTarget(t *testing.T) {
	leases := &memLeases{}
	is := newIssuer(t, "", roles, leases)
	now := time.Now()
	leases.add(core.Lease{ID: "revoked", Target: "bastion", State: core.LeaseRevoked, ExpiresAt: now.Add(time.Hour)})
	leases.add(core.Lease{ID: "expired", Target: "bastion", State: core.LeaseRevoked, ExpiresAt: now.Add(-time.Second)})
	leases.add(core.Lease{ID: "active", Target: "bastion", State: core.LeaseActive, ExpiresAt: now.Add(time.Hour)})
	leases.add(core.Lease{ID: "elsewhere", Target: "other", State: core.LeaseRevoked, ExpiresAt: now.Add(time.Hour)})
	b, err := is.KRL(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseKRL(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.CAs) != 1 || !slices.Equal(k.CAs[0].Serials, []uint64{Serial("revoked")}) {
		t.Fatalf("krl %+v", k)
	}
}
