package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/stint-dev/stint/client"
)

// stateVersion is bumped when the state file's shape changes.
const stateVersion = 1

// State is what the agent records so a restart neither leaks nor
// duplicates leases. It holds credentials (needed to adopt them), so it
// is written 0600 like the sinks.
type State struct {
	Version int          `json:"version"`
	Leases  []StateLease `json:"leases"`
}

// StateLease is one held lease.
type StateLease struct {
	Name       string            `json:"name"`
	Target     string            `json:"target"`
	Role       string            `json:"role"`
	LeaseID    string            `json:"lease_id"`
	ExpiresAt  time.Time         `json:"expires_at"`
	Renewable  bool              `json:"renewable"`
	Credential map[string]string `json:"credential"`
}

func (s StateLease) held() Held {
	return Held{Name: s.Name, Target: s.Target, Role: s.Role, Lease: client.Credential{
		LeaseID: s.LeaseID, ExpiresAt: s.ExpiresAt, Renewable: s.Renewable, Credential: s.Credential,
	}}
}

func stateLease(h Held) StateLease {
	return StateLease{Name: h.Name, Target: h.Target, Role: h.Role, LeaseID: h.Lease.LeaseID,
		ExpiresAt: h.Lease.ExpiresAt, Renewable: h.Lease.Renewable, Credential: h.Lease.Credential}
}

// ReadState reads the state file; a missing file is an empty state.
func ReadState(path string) (State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{Version: stateVersion}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("agent: state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("agent: state %s: %w", path, err)
	}
	if s.Version != stateVersion {
		return State{}, fmt.Errorf("agent: state %s: version %d, want %d", path, s.Version, stateVersion)
	}
	return s, nil
}

// WriteState replaces the state file atomically (0600).
func WriteState(path string, s State) error {
	s.Version = stateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: state: %w", err)
	}
	return WriteFileAtomic(path, b, 0o600, -1, -1)
}
