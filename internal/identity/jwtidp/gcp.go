package jwtidp

import "github.com/stint-dev/stint/internal/core"

// gcpProfile reads Google-signed identity tokens of service accounts and,
// with format=full, the google.compute_engine claim of the VM that asked.
func gcpProfile(p *core.Principal, c claims) error {
	copyAttrs(p.Attributes, c, "email", "email_verified", "azp")
	if ce := c.obj("google.compute_engine"); ce != nil {
		copyAttrs(p.Attributes, ce, "project_id", "project_number", "zone", "instance_id", "instance_name")
	}
	return nil
}
