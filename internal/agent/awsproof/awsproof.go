// Package awsproof is the client side of the aws-iam identity provider:
// it signs an sts:GetCallerIdentity request with the workload's ambient
// AWS credentials (aws-sdk-go-v2's default chain: environment, shared
// files, web identity, ECS/EKS container credentials, EC2 instance
// metadata) and SigV4, without sending it, and encodes the signed request
// as the proof stint forwards to STS. The secret key never leaves the
// process; the proof is good for one stint (its server id) for 15 minutes.
package awsproof

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/stint-dev/stint/internal/identity/awsiam"
)

// body is the form body of the signed call.
const body = "Action=GetCallerIdentity&Version=2011-06-15"

// Options configure a Source.
type Options struct {
	// ServerID is the aws-iam provider's server_id (required).
	ServerID string
	// Region selects the regional STS endpoint (sts.REGION.amazonaws.com);
	// "" uses the global endpoint, signed for us-east-1.
	Region string
	// Endpoint overrides the STS URL (must be one the provider allows).
	Endpoint string
	// Credentials are the AWS credentials to sign with; nil loads the SDK's
	// default chain once, on first use.
	Credentials aws.CredentialsProvider
	// Now is the signing clock; default time.Now.
	Now func() time.Time
}

// Source produces aws-iam proofs; it is safe for concurrent use.
type Source struct {
	o        Options
	endpoint string
	region   string

	once     sync.Once
	creds    aws.CredentialsProvider
	credsErr error
}

// New checks o and builds a Source.
func New(o Options) (*Source, error) {
	if o.ServerID == "" {
		return nil, fmt.Errorf("awsproof: server id is required (the aws-iam provider's server_id)")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Source{o: o, region: o.Region, endpoint: o.Endpoint}
	if s.region == "" {
		s.region = "us-east-1"
	}
	if s.endpoint == "" {
		s.endpoint = awsiam.GlobalEndpoint
		if o.Region != "" {
			s.endpoint = fmt.Sprintf("https://sts.%s.amazonaws.com/", o.Region)
		}
	}
	return s, nil
}

// Token returns a fresh proof in its bearer form ("aws-iam:…").
func (s *Source) Token(ctx context.Context) (string, error) {
	p, err := s.Proof(ctx)
	if err != nil {
		return "", err
	}
	return p.Encode()
}

// Proof signs a GetCallerIdentity request and returns it unsent.
func (s *Source) Proof(ctx context.Context) (awsiam.Proof, error) {
	s.once.Do(func() {
		s.creds = s.o.Credentials
		if s.creds != nil {
			return
		}
		cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(s.region))
		if err != nil {
			s.credsErr = fmt.Errorf("awsproof: load AWS config: %w", err)
			return
		}
		if s.creds = cfg.Credentials; s.creds == nil {
			s.credsErr = fmt.Errorf("awsproof: no AWS credentials found by the default chain")
		}
	})
	if s.credsErr != nil {
		return awsiam.Proof{}, s.credsErr
	}
	// The SDK's providers cache and refresh credentials themselves.
	c, err := s.creds.Retrieve(ctx)
	if err != nil {
		return awsiam.Proof{}, fmt.Errorf("awsproof: retrieve AWS credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(body))
	if err != nil {
		return awsiam.Proof{}, fmt.Errorf("awsproof: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	req.Header.Set(awsiam.ServerIDHeader, s.o.ServerID)
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(ctx, c, req, hex.EncodeToString(sum[:]), "sts", s.region, s.o.Now().UTC()); err != nil {
		return awsiam.Proof{}, fmt.Errorf("awsproof: sign: %w", err)
	}
	return awsiam.Proof{Method: req.Method, URL: s.endpoint, Headers: req.Header, Body: body}, nil
}

// Name is the identity source kind, "aws", so a Source can serve as the
// agent's identity source for `--identity aws`.
func (s *Source) Name() string { return "aws" }
