package awssts

import (
	"encoding/json"
	"fmt"
	"time"
)

// Credential field names an aws-sts credential carries; the CLI's
// aws-process and env formats read exactly these.
const (
	FieldAccessKeyID     = "access_key_id"
	FieldSecretAccessKey = "secret_access_key"
	FieldSessionToken    = "session_token"
	FieldExpiration      = "expiration" // RFC 3339
)

// processOutput is the JSON an AWS credential_process prints.
type processOutput struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	SessionToken    string `json:"SessionToken"`
	Expiration      string `json:"Expiration"`
}

// CredentialProcessJSON renders an aws-sts credential as the output of an
// AWS credential_process (Version 1), so ~/.aws/config can name
// `stint creds … --format aws-process` as its credential process.
func CredentialProcessJSON(c map[string]string) ([]byte, error) {
	if c[FieldAccessKeyID] == "" || c[FieldSecretAccessKey] == "" {
		return nil, fmt.Errorf("aws-sts: not an AWS credential (no access_key_id/secret_access_key)")
	}
	exp, err := time.Parse(time.RFC3339, c[FieldExpiration])
	if err != nil {
		return nil, fmt.Errorf("aws-sts: credential expiration %q is not RFC 3339", c[FieldExpiration])
	}
	return json.Marshal(processOutput{
		Version: 1, AccessKeyID: c[FieldAccessKeyID], SecretAccessKey: c[FieldSecretAccessKey],
		SessionToken: c[FieldSessionToken], Expiration: exp.UTC().Format(time.RFC3339),
	})
}

// EnvVars maps an aws-sts credential to the variables AWS SDKs and the
// AWS CLI read.
var EnvVars = map[string]string{
	FieldAccessKeyID:     "AWS_ACCESS_KEY_ID",
	FieldSecretAccessKey: "AWS_SECRET_ACCESS_KEY",
	FieldSessionToken:    "AWS_SESSION_TOKEN",
	FieldExpiration:      "AWS_CREDENTIAL_EXPIRATION",
	"region":             "AWS_REGION",
}
