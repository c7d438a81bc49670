package jwtidp

import (
	"errors"

	"github.com/stint-dev/stint/internal/core"
)

// gitlabProfile reads GitLab CI id_tokens
// (https://docs.gitlab.com/ci/secrets/id_token_authentication/). GitLab
// sends ref_protected as the string "true"/"false"; it becomes a bool so
// policy can test it directly.
func gitlabProfile(p *core.Principal, c claims) error {
	copyAttrs(p.Attributes, c,
		"namespace_id", "namespace_path", "project_id", "project_path", "ref", "ref_type",
		"pipeline_source", "environment", "user_login", "user_email", "user_id",
		"job_id", "pipeline_id")
	switch v := c["ref_protected"].(type) {
	case bool:
		p.Attributes["ref_protected"] = v
	case string:
		p.Attributes["ref_protected"] = v == "true"
	}
	if p.Attr("project_path") == "" {
		return errors.New("gitlab-ci: token has no project_path claim")
	}
	return nil
}
