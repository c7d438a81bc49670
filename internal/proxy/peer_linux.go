//go:build linux

package proxy

import (
	"fmt"
	"net"
	"syscall"
)

// peerCred reads the uid, gid and pid of the process at the other end of
// a Unix socket (SO_PEERCRED): the kernel vouches for them, so a local
// proxy can use them as the caller's identity.
func peerCred(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("proxy: peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("proxy: peer credentials: %w", err)
	}
	if credErr != nil {
		return Peer{}, fmt.Errorf("proxy: peer credentials: %w", credErr)
	}
	return Peer{UID: int64(cred.Uid), GID: int64(cred.Gid), PID: int64(cred.Pid)}, nil
}
