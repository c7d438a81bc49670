package core

import (
	"fmt"
	"strings"
)

// Grant names one role on one target: "orders-db/readonly".
type Grant struct {
	Target string `json:"target"`
	Role   string `json:"role"`
}

func (g Grant) String() string { return g.Target + "/" + g.Role }

// ParseGrant parses "target/role".
func ParseGrant(s string) (Grant, error) {
	t, r, ok := strings.Cut(s, "/")
	if !ok || t == "" || r == "" || strings.Contains(r, "/") {
		return Grant{}, fmt.Errorf("grant %q: want target/role", s)
	}
	return Grant{Target: t, Role: r}, nil
}

// AdminGrant is the grant that authorizes admin operations.
var AdminGrant = Grant{Target: "stint", Role: "admin"}
