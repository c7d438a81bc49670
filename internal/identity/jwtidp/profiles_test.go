package jwtidp

import (
	"context"
	"reflect"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/stint-dev/stint/internal/core"
	"github.com/stint-dev/stint/internal/identity"
)

func TestProfiles(t *testing.T) {
	k := keys(t)
	k8sOnly := map[string]any{"kubernetes.io": nil}
	merge := func(ms ...map[string]any) map[string]any {
		out := map[string]any{}
		for _, m := range ms {
			for a, b := range m {
				out[a] = b
			}
		}
		return out
	}
	cases := []struct {
		name    string
		typ     string
		mod     func(*Config)
		claims  map[string]any
		want    map[string]any // attributes, without the static cluster
		subject string
	}{
		{
			name: "kubernetes projected token", typ: "kubernetes",
			want: map[string]any{"namespace": "agents", "service_account": "support-bot", "service_account_uid": "sa-uid",
				"pod": "bot-7d9", "pod_uid": "pod-uid", "node": "node-1", "node_uid": "node-uid"},
		},
		{
			name: "kubernetes legacy token from sub", typ: "kubernetes", claims: k8sOnly,
			want: map[string]any{"namespace": "agents", "service_account": "support-bot"},
		},
		{
			name: "kubernetes legacy flat claims", typ: "kubernetes",
			claims: merge(k8sOnly, map[string]any{
				"kubernetes.io/serviceaccount/namespace":            "agents",
				"kubernetes.io/serviceaccount/service-account.name": "support-bot",
				"kubernetes.io/serviceaccount/service-account.uid":  "u1"}),
			want: map[string]any{"namespace": "agents", "service_account": "support-bot", "service_account_uid": "u1"},
		},
		{
			name: "oidc with groups, email and claim attributes", typ: "oidc",
			mod: func(c *Config) {
				c.ClaimAttributes = map[string]string{"department": "org.dept", "level": "org.level", "missing": "no.such"}
			},
			claims: merge(k8sOnly, map[string]any{"sub": "u-123", "email": "ann@example.com", "email_verified": true,
				"name": "Ann", "groups": []string{"support", "oncall"},
				"org": map[string]any{"dept": "support", "level": 3}}),
			subject: "u-123",
			want: map[string]any{"email": "ann@example.com", "email_verified": true, "name": "Ann",
				"groups": []string{"support", "oncall"}, "department": "support", "level": "3"},
		},
		{
			name: "oidc with subject from email and single group string", typ: "oidc",
			mod:     func(c *Config) { c.SubjectClaim = "email" },
			claims:  merge(k8sOnly, map[string]any{"email": "bob@example.com", "groups": "admins"}),
			subject: "bob@example.com",
			want:    map[string]any{"email": "bob@example.com", "groups": []string{"admins"}},
		},
		{
			name: "github actions", typ: "github-actions",
			claims: merge(k8sOnly, map[string]any{"sub": "repo:acme/app:ref:refs/heads/main",
				"repository": "acme/app", "repository_owner": "acme", "repository_id": "42", "ref": "refs/heads/main",
				"ref_type": "branch", "sha": "abc", "workflow": "ci", "workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main",
				"job_workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main", "environment": "prod",
				"actor": "ann", "actor_id": "7", "run_id": "99", "run_attempt": "1", "event_name": "push",
				"runner_environment": "github-hosted", "unlisted": "x"}),
			subject: "repo:acme/app:ref:refs/heads/main",
			want: map[string]any{"repository": "acme/app", "repository_owner": "acme", "repository_id": "42",
				"ref": "refs/heads/main", "ref_type": "branch", "sha": "abc", "workflow": "ci",
				"workflow_ref":     "acme/app/.github/workflows/ci.yml@refs/heads/main",
				"job_workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main", "environment": "prod",
				"actor": "ann", "actor_id": "7", "run_id": "99", "run_attempt": "1", "event_name": "push",
				"runner_environment": "github-hosted"},
		},
		{
			name: "gitlab ci", typ: "gitlab-ci",
			claims: merge(k8sOnly, map[string]any{"sub": "project_path:grp/app:ref_type:branch:ref:main",
				"namespace_path": "grp", "project_path": "grp/app", "project_id": "12", "ref": "main", "ref_type": "branch",
				"ref_protected": "true", "pipeline_source": "push", "environment": "prod", "user_login": "ann",
				"user_email": "ann@example.com", "job_id": "5", "pipeline_id": "6"}),
			subject: "project_path:grp/app:ref_type:branch:ref:main",
			want: map[string]any{"namespace_path": "grp", "project_path": "grp/app", "project_id": "12", "ref": "main",
				"ref_type": "branch", "ref_protected": true, "pipeline_source": "push", "environment": "prod",
				"user_login": "ann", "user_email": "ann@example.com", "job_id": "5", "pipeline_id": "6"},
		},
		{
			name: "gcp with compute engine", typ: "gcp",
			claims: merge(k8sOnly, map[string]any{"sub": "1122334455", "email": "sa@proj.iam.gserviceaccount.com",
				"email_verified": true, "azp": "1122334455",
				"google": map[string]any{"compute_engine": map[string]any{"project_id": "proj", "project_number": 123456789012,
					"zone": "europe-west1-b", "instance_id": "998877", "instance_name": "vm-1"}}}),
			subject: "1122334455",
			want: map[string]any{"email": "sa@proj.iam.gserviceaccount.com", "email_verified": true, "azp": "1122334455",
				"project_id": "proj", "project_number": "123456789012", "zone": "europe-west1-b", "instance_id": "998877",
				"instance_name": "vm-1"},
		},
		{
			name: "azure managed identity", typ: "azure",
			claims: merge(k8sOnly, map[string]any{"sub": "oid-1", "tid": "tenant", "oid": "oid-1", "azp": "app-1",
				"idtyp": "app", "xms_az_rid": "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
				"xms_mirid": "/subscriptions/s1/resourcegroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/orders-id"}),
			subject: "oid-1",
			want: map[string]any{"tid": "tenant", "oid": "oid-1", "appid": "app-1", "idtyp": "app",
				"xms_az_rid":   "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
				"xms_mirid":    "/subscriptions/s1/resourcegroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/orders-id",
				"subscription": "s1", "resource_group": "rg1", "identity_name": "orders-id"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.typ, tc.mod)
			p, err := v.Verify(context.Background(), sign(t, jose.ES256, k.ec256, "ec256", claimsAt(tc.claims), nil))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"cluster": "prod-eu-1"}
			for a, b := range tc.want {
				want[a] = b
			}
			if !reflect.DeepEqual(p.Attributes, want) {
				t.Errorf("attributes\n got %#v\nwant %#v", p.Attributes, want)
			}
			sub := tc.subject
			if sub == "" {
				sub = "system:serviceaccount:agents:support-bot"
			}
			if p.Subject != sub || p.Kind != tc.typ || p.Provider != "prod-cluster" {
				t.Errorf("principal = %+v", p)
			}
		})
	}
}

func TestProfilesRejectInconsistentClaims(t *testing.T) {
	k := keys(t)
	cases := []struct {
		name   string
		typ    string
		claims map[string]any
	}{
		{"kubernetes sub and claim disagree", "kubernetes", map[string]any{"sub": "system:serviceaccount:kube-system:admin"}},
		{"kubernetes without service account", "kubernetes", map[string]any{"sub": "someone", "kubernetes.io": nil}},
		{"kubernetes malformed sub", "kubernetes", map[string]any{"sub": "system:serviceaccount:agents", "kubernetes.io": nil}},
		{"github without repository", "github-actions", map[string]any{"sub": "repo:x"}},
		{"gitlab without project_path", "gitlab-ci", map[string]any{"sub": "x"}},
		{"stint without provider", "stint", map[string]any{"stint_kind": "kubernetes"}},
		{"stint attrs not an object", "stint", map[string]any{"stint_kind": "k", "stint_provider": "p", "stint_attrs": "x"}},
		{"stint act without sub", "stint", map[string]any{"stint_kind": "k", "stint_provider": "p", "act": map[string]any{"stint_kind": "k"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, tc.typ, nil)
			_, err := v.Verify(context.Background(), sign(t, jose.ES256, k.ec256, "ec256", claimsAt(tc.claims), nil))
			if identity.Reason(err) != identity.ReasonInvalidClaims {
				t.Fatalf("err = %v, want reason %s", err, identity.ReasonInvalidClaims)
			}
		})
	}
}

func TestStaticAttributesWinOverClaims(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, "oidc", func(c *Config) { c.ClaimAttributes = map[string]string{"cluster": "cluster"} })
	p, err := v.Verify(context.Background(), sign(t, jose.ES256, k.ec256, "ec256", claimsAt(map[string]any{"cluster": "forged"}), nil))
	if err != nil {
		t.Fatal(err)
	}
	if p.Attr("cluster") != "prod-eu-1" {
		t.Fatalf("cluster = %q, want the configured prod-eu-1", p.Attr("cluster"))
	}
}

func TestStintProfileRestoresPrincipalAndActorChain(t *testing.T) {
	k := keys(t)
	v := newVerifier(t, "stint", func(c *Config) { c.Attributes = nil })
	claims := claimsAt(map[string]any{
		"kubernetes.io":  nil,
		"sub":            "ann@example.com",
		"stint_provider": "corp-sso",
		"stint_kind":     "oidc",
		"stint_attrs":    map[string]any{"groups": []string{"support"}, "email_verified": true, "level": 3, "meta": map[string]any{"tags": []string{"a"}}},
		"act": map[string]any{
			"sub": "system:serviceaccount:agents:support-bot", "iss": "https://k8s.example", "stint_provider": "prod-cluster",
			"stint_kind": "kubernetes", "stint_attrs": map[string]any{"namespace": "agents"},
			"act": map[string]any{"sub": "gateway", "stint_provider": "mesh", "stint_kind": "spiffe"},
		},
	})
	p, err := v.Verify(context.Background(), sign(t, jose.EdDSA, k.ed, "ed", claims, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := core.Principal{
		Provider: "corp-sso", Kind: "oidc", Subject: "ann@example.com", Issuer: testIssuer,
		ExpiresAt: p.ExpiresAt, TokenID: "token-1",
		Attributes: map[string]any{"groups": []string{"support"}, "email_verified": true, "level": float64(3),
			"meta": map[string]any{"tags": []string{"a"}}},
		Actor: &core.Principal{
			Provider: "prod-cluster", Kind: "kubernetes", Subject: "system:serviceaccount:agents:support-bot",
			Issuer: "https://k8s.example", Attributes: map[string]any{"namespace": "agents"},
			Actor: &core.Principal{Provider: "mesh", Kind: "spiffe", Subject: "gateway", Attributes: map[string]any{}},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("principal\n got %#v\nwant %#v", p, want)
	}

	deep := map[string]any{"sub": "x", "stint_provider": "p", "stint_kind": "k"}
	for i := 0; i < maxActDepth+1; i++ {
		deep = map[string]any{"sub": "x", "stint_provider": "p", "stint_kind": "k", "act": deep}
	}
	claims["act"] = deep
	if _, err := v.Verify(context.Background(), sign(t, jose.EdDSA, k.ed, "ed", claims, nil)); identity.Reason(err) != identity.ReasonInvalidClaims {
		t.Fatalf("deep act chain: err = %v", err)
	}
}
