package agent

import (
	"context"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// SPIFFE fetches a JWT-SVID from the SPIFFE Workload API (a SPIRE agent's
// socket) for Audience. The server's spiffe provider verifies it against
// the trust domain's JWT bundle.
type SPIFFE struct {
	// Addr is the Workload API address, e.g. unix:///run/spire/agent.sock
	// (empty: $SPIFFE_ENDPOINT_SOCKET, as go-spiffe reads it).
	Addr     string
	Audience string
}

// Name reports SourceSPIFFE.
func (s *SPIFFE) Name() string { return SourceSPIFFE }

// Token fetches a JWT-SVID. go-spiffe checks the SVID's shape (SPIFFE ID
// subject, audience, expiry) but not its signature; stint does that.
func (s *SPIFFE) Token(ctx context.Context) (string, error) {
	var opts []workloadapi.ClientOption
	if s.Addr != "" {
		opts = append(opts, workloadapi.WithAddr(s.Addr))
	}
	svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: s.Audience}, opts...)
	if err != nil {
		return "", fmt.Errorf("identity: spiffe: fetch JWT-SVID: %w", err)
	}
	return checkToken("spiffe workload api", svid.Marshal())
}

var _ Source = (*SPIFFE)(nil)
