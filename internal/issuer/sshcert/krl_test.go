package sshcert

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/testenv"
)

// parseKRL reads back what Marshal writes (serial lists only), so tests
// can check the structure byte for byte.
func parseKRL(b []byte) (KRL, error) {
	var k KRL
	u64 := func() (uint64, error) {
		if len(b) < 8 {
			return 0, errors.New("short")
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, nil
	}
	str := func() ([]byte, error) {
		if len(b) < 4 || uint32(len(b)-4) < binary.BigEndian.Uint32(b) {
			return nil, errors.New("short string")
		}
		n := binary.BigEndian.Uint32(b)
		s := b[4 : 4+n]
		b = b[4+n:]
		return s, nil
	}
	if m, err := u64(); err != nil || m != krlMagic {
		return k, fmt.Errorf("magic %x", m)
	}
	if len(b) < 4 || binary.BigEndian.Uint32(b) != krlFormatVersion {
		return k, errors.New("format version")
	}
	b = b[4:]
	k.Version, _ = u64()
	gen, _ := u64()
	k.Generated = time.Unix(int64(gen), 0)
	if _, err := u64(); err != nil {
		return k, err
	}
	if _, err := str(); err != nil {
		return k, err
	}
	c, err := str()
	if err != nil {
		return k, err
	}
	k.Comment = string(c)
	for len(b) > 0 {
		typ := b[0]
		b = b[1:]
		sec, err := str()
		if err != nil || typ != krlSectionCertificates {
			return k, fmt.Errorf("section %d: %v", typ, err)
		}
		rest := b
		b = sec
		keyBlob, err := str()
		if err != nil {
			return k, err
		}
		key, err := ssh.ParsePublicKey(keyBlob)
		if err != nil {
			return k, err
		}
		if _, err := str(); err != nil {
			return k, err
		}
		ca := KRLCA{Key: key}
		for len(b) > 0 {
			ct := b[0]
			b = b[1:]
			list, err := str()
			if err != nil || ct != krlCertSerialList || len(list)%8 != 0 {
				return k, fmt.Errorf("cert section %d", ct)
			}
			for i := 0; i < len(list); i += 8 {
				ca.Serials = append(ca.Serials, binary.BigEndian.Uint64(list[i:]))
			}
		}
		k.CAs = append(k.CAs, ca)
		b = rest
	}
	return k, nil
}

func TestKRLMarshalSortsAndDropsDuplicatesAndZero(t *testing.T) {
	_, line := clientKey(t)
	pk, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(line))
	now := time.Unix(1700000000, 0)
	in := KRL{Version: 7, Generated: now, Comment: "c", CAs: []KRLCA{{Key: pk, Serials: []uint64{9, 3, 9, 0, 1 << 63}}, {Key: pk}}}
	k, err := parseKRL(in.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != 7 || !k.Generated.Equal(now) || k.Comment != "c" || len(k.CAs) != 1 {
		t.Fatalf("header %+v", k)
	}
	if got := k.CAs[0].Serials; len(got) != 3 || got[0] != 3 || got[1] != 9 || got[2] != 1<<63 {
		t.Fatalf("serials %v", got)
	}
}

// TestKRLReadByOpenSSH has the real ssh-keygen -Q check certificates
// against a KRL stint wrote: the revoked one is reported, the other not.
func TestKRLReadByOpenSSH(t *testing.T) {
	sshd := testenv.Require(t, "STINT_TEST_SSHD")
	keygen := filepath.Join(filepath.Dir(sshd), "..", "bin", "ssh-keygen")
	if _, err := os.Stat(keygen); err != nil {
		if keygen, err = exec.LookPath("ssh-keygen"); err != nil {
			t.Fatalf("ssh-keygen not found next to %s nor on PATH", sshd)
		}
	}
	leases := &memLeases{}
	is := newIssuer(t, "", roles, leases)
	dir := t.TempDir()
	now := time.Now()
	var certs []string
	for _, id := range []string{"lease-revoked", "lease-good"} {
		_, pub := clientKey(t)
		res, err := is.Issue(t.Context(), request(id, "ops", map[string]string{"public_key": pub}, now, now.Add(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, id+"-cert.pub")
		if err := os.WriteFile(p, []byte(res.Credential["certificate"]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		certs = append(certs, p)
	}
	leases.add(core.Lease{ID: "lease-revoked", Target: "bastion", State: core.LeaseRevoked, ExpiresAt: now.Add(time.Hour)})
	// Another CA's certificate with the same serial must not be revoked.
	other := newIssuer(t, "", roles, nil)
	_, pub := clientKey(t)
	res, err := other.Issue(t.Context(), request("lease-revoked", "ops", map[string]string{"public_key": pub}, now, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	otherPath := filepath.Join(dir, "other-cert.pub")
	if err := os.WriteFile(otherPath, []byte(res.Credential["certificate"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	krl, err := is.KRL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	krlPath := filepath.Join(dir, "krl")
	if err := os.WriteFile(krlPath, krl, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cert    string
		revoked bool
	}{{certs[0], true}, {certs[1], false}, {otherPath, false}} {
		out, err := exec.Command(keygen, "-Q", "-f", krlPath, tc.cert).CombinedOutput()
		text := string(out)
		if strings.Contains(text, "invalid") || strings.Contains(text, "error") {
			t.Fatalf("ssh-keygen could not read the krl: %s", text)
		}
		if got := strings.Contains(text, "REVOKED"); got != tc.revoked || (err != nil) != tc.revoked {
			t.Errorf("%s: revoked=%v (err %v), want %v; output %q", filepath.Base(tc.cert), got, err, tc.revoked, text)
		}
	}
}
