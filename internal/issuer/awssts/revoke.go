package awssts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// DenyPolicyName is the inline role policy PutDenyPolicy writes; writing
// it again replaces it, moving the cut-off forward.
const DenyPolicyName = "stint-revoke-older-sessions"

// IAMEndpoint is IAM's global endpoint (signed for us-east-1).
const IAMEndpoint = "https://iam.amazonaws.com/"

// DenyPolicy is the inline policy that revokes every session of a role
// issued before cutoff: AWS evaluates aws:TokenIssueTime on each request,
// so older sessions (stint's or anyone's) are denied everything from the
// moment the policy is attached, while sessions issued later are
// unaffected. It is the policy the IAM console's "Revoke active sessions"
// attaches.
func DenyPolicy(cutoff time.Time) string {
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Sid":      "StintRevokeOlderSessions",
			"Effect":   "Deny",
			"Action":   "*",
			"Resource": "*",
			"Condition": map[string]any{
				"DateLessThan": map[string]string{"aws:TokenIssueTime": cutoff.UTC().Format(time.RFC3339)},
			},
		}},
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return string(b)
}

// RoleName is the name of an IAM role ARN (the part after the last '/').
func RoleName(roleARN string) (string, error) {
	if !roleARNPattern.MatchString(roleARN) {
		return "", fmt.Errorf("aws-sts: %q is not an IAM role ARN", roleARN)
	}
	return roleARN[strings.LastIndex(roleARN, "/")+1:], nil
}

// DenyOptions configure PutDenyPolicy.
type DenyOptions struct {
	// Endpoint is the IAM URL (default IAMEndpoint).
	Endpoint string
	// Credentials need iam:PutRolePolicy on the role.
	Credentials aws.CredentialsProvider
	HTTPClient  *http.Client
	Now         func() time.Time
}

// PutDenyPolicy attaches DenyPolicy(cutoff) to the role with
// iam:PutRolePolicy, a SigV4-signed Query call.
func PutDenyPolicy(ctx context.Context, roleARN string, cutoff time.Time, o DenyOptions) error {
	name, err := RoleName(roleARN)
	if err != nil {
		return err
	}
	if o.Endpoint == "" {
		o.Endpoint = IAMEndpoint
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Credentials == nil {
		return fmt.Errorf("aws-sts: put deny policy: no AWS credentials")
	}
	c, err := o.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("aws-sts: put deny policy: credentials: %w", err)
	}
	body := url.Values{
		"Action": {"PutRolePolicy"}, "Version": {"2010-05-08"},
		"RoleName": {name}, "PolicyName": {DenyPolicyName}, "PolicyDocument": {DenyPolicy(cutoff)},
	}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.Endpoint, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("aws-sts: put deny policy: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(ctx, c, req, hex.EncodeToString(sum[:]), "iam", "us-east-1", o.Now().UTC()); err != nil {
		return fmt.Errorf("aws-sts: put deny policy: sign: %w", err)
	}
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("aws-sts: put deny policy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code string `xml:"Error>Code"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = xml.Unmarshal(b, &e)
		return fmt.Errorf("aws-sts: put deny policy on %s: IAM answered %d %s", name, resp.StatusCode, e.Code)
	}
	return nil
}
