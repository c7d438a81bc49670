package jwtidp

import (
	"errors"

	"github.com/stint-dev/stint/internal/core"
)

// githubProfile reads GitHub Actions OIDC tokens
// (https://docs.github.com/actions/reference/openid-connect-reference).
func githubProfile(p *core.Principal, c claims) error {
	copyAttrs(p.Attributes, c,
		"repository", "repository_owner", "repository_id", "repository_owner_id",
		"repository_visibility", "ref", "ref_type", "sha", "workflow", "workflow_ref",
		"job_workflow_ref", "environment", "actor", "actor_id", "run_id",
		"run_attempt", "event_name", "runner_environment")
	if p.Attr("repository") == "" {
		return errors.New("github-actions: token has no repository claim")
	}
	return nil
}
