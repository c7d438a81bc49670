package jwtidp

import (
	"fmt"
	"strings"

	"github.com/stint-dev/stint/internal/core"
)

// kubernetesProfile reads projected service-account tokens (the
// "kubernetes.io" claim) and legacy ones (flat claims and sub
// "system:serviceaccount:NS:SA"). When both forms are present they must
// agree: a token naming two service accounts is not trusted.
func kubernetesProfile(p *core.Principal, c claims) error {
	a := p.Attributes
	if k := c.obj("kubernetes.io"); k != nil {
		a["namespace"] = k.str("namespace")
		a["service_account"] = k.str("serviceaccount.name")
		a["service_account_uid"] = k.str("serviceaccount.uid")
		for _, o := range []string{"pod", "node"} {
			if name := k.str(o + ".name"); name != "" {
				a[o] = name
				a[o+"_uid"] = k.str(o + ".uid")
			}
		}
	} else {
		a["namespace"] = c.str("kubernetes.io/serviceaccount/namespace")
		a["service_account"] = c.str("kubernetes.io/serviceaccount/service-account.name")
		if uid := c.str("kubernetes.io/serviceaccount/service-account.uid"); uid != "" {
			a["service_account_uid"] = uid
		}
	}
	if rest, ok := strings.CutPrefix(p.Subject, "system:serviceaccount:"); ok {
		ns, sa, ok := strings.Cut(rest, ":")
		if !ok || ns == "" || sa == "" || strings.Contains(sa, ":") {
			return fmt.Errorf("kubernetes: malformed service-account subject")
		}
		if a["namespace"] == "" && a["service_account"] == "" {
			a["namespace"], a["service_account"] = ns, sa
		} else if a["namespace"] != ns || a["service_account"] != sa {
			return fmt.Errorf("kubernetes: subject and kubernetes.io claims name different service accounts")
		}
	}
	if a["namespace"] == "" || a["service_account"] == "" {
		return fmt.Errorf("kubernetes: token names no namespace and service account")
	}
	if a["service_account_uid"] == "" {
		delete(a, "service_account_uid")
	}
	return nil
}
