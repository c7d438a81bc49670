package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/issuer/awssts"
)

// awsRevokeFlags are the opt-in of `stint revoke` for aws-sts targets: STS
// sessions cannot be recalled, but an inline deny on aws:TokenIssueTime
// cuts off every session of the role issued before now.
type awsRevokeFlags struct {
	mode, roleARN, iamEndpoint string
}

func (f *awsRevokeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.mode, "aws-deny-older-sessions", "", "aws-sts: also print or apply (needs iam:PutRolePolicy) the aws:TokenIssueTime deny on --aws-role-arn: print|apply")
	cmd.Flags().StringVar(&f.roleARN, "aws-role-arn", "", "aws-sts: the IAM role whose earlier sessions to deny")
	cmd.Flags().StringVar(&f.iamEndpoint, "aws-iam-endpoint", "", "IAM endpoint (default "+awssts.IAMEndpoint+")")
}

// run prints or applies the deny policy with the cut-off now; it does
// nothing when the flag is not given.
func (f *awsRevokeFlags) run(ctx context.Context, w io.Writer, now time.Time) error {
	switch f.mode {
	case "":
		return nil
	case "print", "apply":
	default:
		return fmt.Errorf("--aws-deny-older-sessions must be print or apply")
	}
	name, err := awssts.RoleName(f.roleARN)
	if err != nil {
		return fmt.Errorf("--aws-role-arn: %w", err)
	}
	doc := awssts.DenyPolicy(now)
	if f.mode == "print" {
		fmt.Fprintf(w, "# attach with: aws iam put-role-policy --role-name %s --policy-name %s --policy-document file://deny.json\n%s\n", name, awssts.DenyPolicyName, doc)
		return nil
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("load AWS config: %w", err)
	}
	if err := awssts.PutDenyPolicy(ctx, f.roleARN, now, awssts.DenyOptions{Endpoint: f.iamEndpoint, Credentials: cfg.Credentials}); err != nil {
		return err
	}
	fmt.Fprintf(w, "denied every session of %s issued before %s (inline policy %s)\n", name, now.UTC().Format(time.RFC3339), awssts.DenyPolicyName)
	return nil
}
