//go:build !linux

package proxy

import (
	"errors"
	"net"
)

// peerCred is only implemented on Linux (SO_PEERCRED).
func peerCred(*net.UnixConn) (Peer, error) {
	return Peer{}, errors.New("proxy: unix peer credentials are only supported on linux")
}
