package jwtidp

import (
	"strings"

	"github.com/stint-dev/stint/internal/core"
)

// azureProfile reads Microsoft Entra tokens of managed identities. appid
// (v1 tokens) and azp (v2) name the same thing and both land in appid.
// xms_mirid, the resource id of the managed identity, is split into
// subscription, resource_group and identity_name so policy need not parse it.
func azureProfile(p *core.Principal, c claims) error {
	copyAttrs(p.Attributes, c, "tid", "oid", "appid", "xms_mirid", "xms_az_rid", "idtyp")
	if p.Attr("appid") == "" {
		if azp := c.str("azp"); azp != "" {
			p.Attributes["appid"] = azp
		}
	}
	if mirid := c.str("xms_mirid"); mirid != "" {
		parts := strings.Split(strings.Trim(mirid, "/"), "/")
		for i := 0; i+1 < len(parts); i += 2 {
			switch strings.ToLower(parts[i]) {
			case "subscriptions":
				p.Attributes["subscription"] = parts[i+1]
			case "resourcegroups":
				p.Attributes["resource_group"] = parts[i+1]
			}
		}
		if len(parts) >= 2 {
			p.Attributes["identity_name"] = parts[len(parts)-1]
		}
	}
	return nil
}
