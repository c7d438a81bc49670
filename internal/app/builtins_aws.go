package app

import (
	"context"

	"github.com/stint-dev/stint/internal/config"
	"github.com/stint-dev/stint/internal/identity"
	"github.com/stint-dev/stint/internal/identity/awsiam"
	"github.com/stint-dev/stint/internal/issuer"
	"github.com/stint-dev/stint/internal/issuer/awssts"
)

// awsIAMProvider builds an aws-iam identity provider. The router sends it
// the "aws-iam:" proofs (it is an identity.ProofVerifier), never JWTs.
func awsIAMProvider(_ context.Context, p config.IdentityProvider, d deps) (identity.IssuerVerifier, error) {
	endpoints := p.STSEndpoints
	if len(endpoints) == 0 {
		endpoints = awsiam.DefaultEndpoints(p.Regions)
	}
	serverID := p.ServerID
	if serverID == "" {
		serverID = d.IssuerURL
	}
	return awsiam.New(awsiam.Config{
		Name: p.Name, Endpoints: endpoints, ServerID: serverID, Accounts: p.Accounts, RoleARNs: p.RoleARNs,
		MaxAge: p.MaxAge.D(), Attributes: p.Attributes, HTTPClient: d.HTTPClient, Now: d.Now,
	})
}

// awsSTSTarget builds an aws-sts target; web_identity roles sign with
// stint's own keys, assume_role roles use the SDK's default credential chain.
func awsSTSTarget(ctx context.Context, t config.Target, d deps) (issuer.Issuer, error) {
	roles := map[string]awssts.RoleConfig{}
	for name, r := range t.Roles {
		roles[name] = awssts.RoleConfig{
			Kind: r.Kind, RoleARN: r.RoleARN, Policy: r.Policy, PolicyARNs: r.PolicyARNs, SessionTags: r.SessionTags,
			TransitiveTagKeys: r.TransitiveTagKeys, SessionName: r.SessionName, ExternalID: r.ExternalID,
			MaxSessionDuration: r.MaxSessionDuration.D(), Audience: r.Audience, DefaultTTL: r.DefaultTTL.D(),
		}
	}
	return awssts.New(ctx, awssts.Config{
		Name: t.Name, Region: t.Region, Endpoint: t.STSEndpoint, Roles: roles, IssuerURL: d.IssuerURL,
		Signer: d.Signer, HTTPClient: d.HTTPClient, Now: d.Now,
	})
}
