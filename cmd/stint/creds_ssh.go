package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/stint-dev/stint/client"
)

// sshOut is `stint creds --format ssh --out DIR`: the key pair is made
// here and only its public half is sent, so the private key never leaves
// the machine that uses it. The files are what `ssh -i DIR/id_ed25519`
// expects (it finds id_ed25519-cert.pub beside the key).
type sshOut struct {
	dir  string
	priv ed25519.PrivateKey
}

func (o *sshOut) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.dir, "out", "", "directory --format ssh writes id_ed25519 and id_ed25519-cert.pub to")
}

// prepare makes the key pair for --format ssh and puts the public key in
// the request; other formats are left alone.
func (o *sshOut) prepare(format string, req *client.CredentialRequest) error {
	if format != "ssh" {
		if o.dir != "" {
			return errors.New("--out is only used with --format ssh")
		}
		return nil
	}
	if o.dir == "" {
		return errors.New("--format ssh needs --out DIR")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate ssh key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Errorf("generate ssh key: %w", err)
	}
	o.priv = priv
	req.PublicKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	return nil
}

// write stores the key and the certificate (both 0600) and says where.
// When the server generated the pair (a credential with private_key),
// that key is written instead.
func (o *sshOut) write(w io.Writer, c client.Credential) error {
	certLine := c.Credential["certificate"]
	if certLine == "" {
		return errors.New("the credential holds no ssh certificate (is the target of type ssh?)")
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(certLine))
	if err != nil {
		return fmt.Errorf("ssh certificate: %w", err)
	}
	cert, ok := pk.(*ssh.Certificate)
	if !ok {
		return errors.New("the credential's certificate is not an ssh certificate")
	}
	var keyPEM []byte
	var keyPub ssh.PublicKey
	switch {
	case c.Credential["private_key"] != "":
		keyPEM = []byte(c.Credential["private_key"])
		s, err := ssh.ParsePrivateKey(keyPEM)
		if err != nil {
			return errors.New("the credential's private_key is not an OpenSSH private key")
		}
		keyPub = s.PublicKey()
	case o.priv != nil:
		block, err := ssh.MarshalPrivateKey(o.priv, "stint "+c.LeaseID)
		if err != nil {
			return fmt.Errorf("encode ssh key: %w", err)
		}
		keyPEM = pem.EncodeToMemory(block)
		if keyPub, err = ssh.NewPublicKey(o.priv.Public()); err != nil {
			return fmt.Errorf("encode ssh key: %w", err)
		}
	default:
		return errors.New("no private key for the certificate")
	}
	if !bytes.Equal(cert.Key.Marshal(), keyPub.Marshal()) {
		return errors.New("the certificate is not for this key")
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	keyPath := filepath.Join(o.dir, "id_ed25519")
	if err := writeFile0600(keyPath, keyPEM); err != nil {
		return err
	}
	if err := writeFile0600(keyPath+"-cert.pub", []byte(strings.TrimSpace(certLine)+"\n")); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s and %s-cert.pub (principals %s, lease %s, expires %s)\nssh -i %s %s@HOST\n",
		keyPath, keyPath, strings.Join(cert.ValidPrincipals, ","), c.LeaseID, c.ExpiresAt.UTC().Format(time.RFC3339),
		keyPath, firstOr(cert.ValidPrincipals, "USER"))
	return nil
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// writeFile0600 replaces path atomically with a file only its owner can
// read, so a reader never sees half a key.
func writeFile0600(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".stint-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
