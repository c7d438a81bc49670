package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/stint-dev/stint/internal/core"
)

// Peer is the process on the other end of a Unix socket connection.
type Peer struct {
	UID, GID, PID int64
}

type peerKey struct{}

// PeerProvider names Unix peer principals in policy and audit
// (identity.provider == "unix-socket", identity.uid == 1000).
const PeerProvider = "unix-socket"

// PeerContext is an http.Server ConnContext for a Unix listener: it puts
// the connection's peer credentials in the request context, where the
// handler takes them as the principal when no token is presented. A
// connection whose credentials cannot be read carries none, and its
// requests must then authenticate with a token.
func PeerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	p, err := peerCred(uc)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, p)
}

var userNames sync.Map // uid → name

// principal renders the peer as a principal policy can bind on.
func (p Peer) principal() core.Principal {
	attrs := map[string]any{"uid": p.UID, "gid": p.GID, "pid": p.PID}
	uid := strconv.FormatInt(p.UID, 10)
	if v, ok := userNames.Load(uid); ok {
		attrs["user"] = v
	} else if u, err := user.LookupId(uid); err == nil {
		userNames.Store(uid, u.Username)
		attrs["user"] = u.Username
	}
	return core.Principal{Provider: PeerProvider, Kind: "unix", Subject: "uid:" + uid, Attributes: attrs}
}

// ListenUnix listens on a Unix socket at path with the given file mode
// (e.g. 0o660 for a group of agents), replacing a stale socket file.
func ListenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("proxy: socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("proxy: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("proxy: remove stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("proxy: socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen: %w", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("proxy: chmod socket: %w", err)
	}
	return ln, nil
}
