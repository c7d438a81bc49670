package awsiam_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/identity/awsiam"
)

// stubSTS answers every forwarded request as STS would for a valid
// signature, so the fuzzer exercises everything stint checks itself.
type stubSTS struct{}

func (stubSTS) RoundTrip(*http.Request) (*http.Response, error) {
	body := `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:sts::111122223333:assumed-role/r/s</Arn>` +
		`<UserId>AROA:s</UserId><Account>111122223333</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), Header: http.Header{}}, nil
}

// FuzzVerify feeds arbitrary proofs to Verify: it must never panic, and
// whatever it accepts must have been a GetCallerIdentity to the endpoint.
func FuzzVerify(f *testing.F) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v, err := awsiam.New(awsiam.Config{
		Name: "aws", Endpoints: []string{awsiam.GlobalEndpoint}, ServerID: "sid",
		HTTPClient: &http.Client{Transport: stubSTS{}}, Now: func() time.Time { return at },
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("aws-iam:")
	f.Add("aws-iam:e30")
	f.Fuzz(func(t *testing.T, proof string) {
		p, err := v.Verify(context.Background(), proof)
		if err != nil {
			return
		}
		dec, derr := awsiam.Decode(proof)
		if derr != nil {
			t.Fatalf("accepted an undecodable proof")
		}
		if !strings.Contains(dec.Body+dec.URL, "GetCallerIdentity") || p.Subject == "" {
			t.Fatalf("accepted %+v as %+v", dec, p)
		}
	})
}

// BenchmarkVerifyWithoutSTS measures stint's own work on a proof: decode,
// the checks, building the forwarded request and parsing the answer (the
// STS round trip itself is stubbed out).
func BenchmarkVerifyWithoutSTS(b *testing.B) {
	f := newFixture(&testing.T{}, nil)
	proof := f.sdkProof(&testing.T{}, f.role, serverID, time.Now())
	v, err := awsiam.New(awsiam.Config{Name: "aws", Endpoints: []string{f.sts.Endpoint()}, ServerID: serverID, HTTPClient: &http.Client{Transport: stubSTS{}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), proof); err != nil {
			b.Fatal(err)
		}
	}
}
