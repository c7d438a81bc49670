package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// testJWT signs claims with a throwaway key, as a platform would.
func testJWT(t testing.TB, claims map[string]any) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func platformToken(t testing.TB, sub string) string {
	return testJWT(t, map[string]any{"iss": "https://platform.test", "sub": sub, "aud": []string{"stint"}, "exp": time.Now().Add(time.Hour).Unix(), "repository": "acme/app"})
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// The server speaks the Actions runtime's documented format: a GET on the
// request URL (which already carries api-version) plus &audience=, a
// bearer request token, and {"value": "<jwt>"}.
func TestGitHubActionsSource_LocalServerSpeakingGitHubFormat(t *testing.T) {
	want := platformToken(t, "repo:acme/app:ref:refs/heads/main")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "bearer req-token" || r.URL.Query().Get("api-version") != "2.0" || r.URL.Query().Get("audience") != "stint" || r.URL.Path != "/_apis/token" {
			http.Error(w, `{"message":"bad request"}`, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"count": 1, "value": want})
	}))
	defer srv.Close()
	cases := []struct {
		name, reqToken, wantErr string
	}{
		{"token returned", "req-token", ""},
		{"wrong request token refused", "other", "answered 400"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, err := Detect(IdentityOptions{Getenv: env(map[string]string{
				"ACTIONS_ID_TOKEN_REQUEST_URL": srv.URL + "/_apis/token?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": c.reqToken,
			}), KubeTokenFile: filepath.Join(t.TempDir(), "none")})
			if err != nil {
				t.Fatal(err)
			}
			if src.Name() != SourceGitHub {
				t.Fatalf("detected %s", src.Name())
			}
			got, err := src.Token(context.Background())
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), c.reqToken) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got != want {
				t.Fatalf("token %q, err %v", got, err)
			}
		})
	}
}

// The server speaks the GCE metadata format: Metadata-Flavor: Google
// required, the identity path with audience and format=full, the bare JWT
// as body. GCE_METADATA_HOST points detection at it.
func TestGCPMetadataSource_LocalServerSpeakingMetadataFormat(t *testing.T) {
	want := platformToken(t, "1234567890")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "Missing Metadata-Flavor:Google header", http.StatusForbidden)
			return
		}
		if r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/identity" || q.Get("audience") != "https://stint.example" || q.Get("format") != "full" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
		w.Write([]byte(want))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	src, err := Detect(IdentityOptions{Audience: "https://stint.example", KubeTokenFile: filepath.Join(t.TempDir(), "none"), Getenv: env(map[string]string{"GCE_METADATA_HOST": host})})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != SourceGCP {
		t.Fatalf("detected %s", src.Name())
	}
	got, err := src.Token(context.Background())
	if err != nil || got != want {
		t.Fatalf("token %q, err %v", got, err)
	}
	// Without the header the server refuses; the error says so.
	_, err = get(context.Background(), nil, SourceGCP, srv.URL+"/computeMetadata/v1/instance/service-accounts/default/identity", nil)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("err = %v", err)
	}
}

// The server speaks Azure IMDS: Metadata: true required, api-version
// 2018-02-01 and resource in the query, {"access_token": …} back.
func TestAzureIMDSSource_LocalServerSpeakingIMDSFormat(t *testing.T) {
	want := platformToken(t, "object-id")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Header.Get("Metadata") != "true" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_request","error_description":"Required metadata header not specified"}`))
			return
		}
		if q.Get("api-version") != "2018-02-01" || q.Get("resource") != "api://stint" || q.Get("client_id") != "cid" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"invalid_resource"}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"access_token": want, "expires_in": "3599", "expires_on": "1700000000", "resource": "api://stint", "token_type": "Bearer"})
	}))
	defer srv.Close()
	src, err := Detect(IdentityOptions{Audience: "api://stint", AzureClientID: "cid", KubeTokenFile: filepath.Join(t.TempDir(), "none"),
		Getenv: env(map[string]string{"STINT_AZURE_IMDS_ENDPOINT": srv.URL + "/metadata/identity/oauth2/token"})})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != SourceAzure {
		t.Fatalf("detected %s", src.Name())
	}
	got, err := src.Token(context.Background())
	if err != nil || got != want {
		t.Fatalf("token %q, err %v", got, err)
	}
	bad := &AzureIMDS{Endpoint: srv.URL, Resource: "api://other", ClientID: "cid"}
	if _, err := bad.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_resource") {
		t.Fatalf("err = %v", err)
	}
}

// fakeWorkloadAPI serves FetchJWTSVID as a SPIRE agent would.
type fakeWorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	svid string
}

func (f *fakeWorkloadAPI) FetchJWTSVID(ctx context.Context, r *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("workload.spiffe.io")) == 0 {
		return nil, os.ErrPermission
	}
	return &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{{SpiffeId: "spiffe://example.org/agent", Svid: f.svid}}}, nil
}

// A local gRPC server on a Unix socket implements the SPIFFE Workload
// API; go-spiffe's client fetches the JWT-SVID from it.
func TestSPIFFESource_LocalWorkloadAPIServer(t *testing.T) {
	svid := testJWT(t, map[string]any{"sub": "spiffe://example.org/agent", "aud": []string{"stint"}, "exp": time.Now().Add(5 * time.Minute).Unix()})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(gs, &fakeWorkloadAPI{svid: svid})
	go gs.Serve(ln)
	defer gs.Stop()

	src, err := Detect(IdentityOptions{KubeTokenFile: filepath.Join(t.TempDir(), "none"), Getenv: env(map[string]string{"SPIFFE_ENDPOINT_SOCKET": "unix://" + sock})})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != SourceSPIFFE {
		t.Fatalf("detected %s", src.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := src.Token(ctx)
	if err != nil || got != svid {
		t.Fatalf("svid %q, err %v", got, err)
	}
}

func TestDetect_OrderAndHints(t *testing.T) {
	dir := t.TempDir()
	kube := filepath.Join(dir, "kube-token")
	os.WriteFile(kube, []byte("k8s-token\n"), 0o600)
	file := filepath.Join(dir, "file-token")
	os.WriteFile(file, []byte("file-token"), 0o600)
	gh := map[string]string{"ACTIONS_ID_TOKEN_REQUEST_URL": "https://x", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "t"}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	cases := []struct {
		name     string
		identity string
		kubePath string
		env      map[string]string
		want     string
		wantErr  string
	}{
		{"explicit file beats everything", "", kube, merge(gh, map[string]string{"STINT_IDENTITY_TOKEN_FILE": file, "STINT_TOKEN": "x"}), SourceFile, ""},
		{"STINT_TOKEN before kubernetes", "", kube, map[string]string{"STINT_TOKEN": "x"}, SourceEnv, ""},
		{"kubernetes projected token present", "", kube, gh, SourceKubernetes, ""},
		{"github when no kube token", "", filepath.Join(dir, "none"), gh, SourceGitHub, ""},
		{"gitlab id token variable", "", filepath.Join(dir, "none"), map[string]string{"STINT_ID_TOKEN": "g"}, SourceGitLab, ""},
		{"no metadata probing without a hint", "", filepath.Join(dir, "none"), map[string]string{}, "", "none found"},
		{"forced gcp without a hint uses the default host", SourceGCP, filepath.Join(dir, "none"), map[string]string{}, SourceGCP, ""},
		{"STINT_IDENTITY names the source", "", kube, map[string]string{"STINT_IDENTITY": SourceGitLab, "STINT_ID_TOKEN": "g"}, SourceGitLab, ""},
		{"forced source that does not apply", SourceGitHub, kube, map[string]string{}, "", "ACTIONS_ID_TOKEN_REQUEST_URL"},
		{"unknown source", "aws-magic", kube, map[string]string{}, "", "unknown source"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, err := Detect(IdentityOptions{Identity: c.identity, KubeTokenFile: c.kubePath, Getenv: env(c.env)})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if src.Name() != c.want {
				t.Fatalf("got %s, want %s", src.Name(), c.want)
			}
		})
	}
	// The kubernetes source re-reads the file: rotation is seen.
	src := &FileSource{Path: kube, Kind: SourceKubernetes}
	os.WriteFile(kube, []byte("rotated"), 0o600)
	if tok, _ := src.Token(context.Background()); tok != "rotated" {
		t.Fatalf("token %q after rotation", tok)
	}
}

func TestReadTokenFile_RejectsEmptyAndHuge(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		data    string
		wantErr string
	}{
		"empty":     {"  \n", "empty"},
		"too large": {strings.Repeat("a", maxToken+1), "larger than"},
		"trimmed":   {"tok\n", ""},
	}
	for name, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(p, []byte(c.data), 0o600)
		tok, err := ReadTokenFile(p)
		if c.wantErr == "" {
			if err != nil || tok != "tok" {
				t.Errorf("%s: %q %v", name, tok, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

// countingSource counts how often the platform is asked.
type countingSource struct {
	n   int
	tok string
}

func (c *countingSource) Name() string                          { return "count" }
func (c *countingSource) Token(context.Context) (string, error) { c.n++; return c.tok, nil }

func TestCached_ReusesUntilShortlyBeforeExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	inner := &countingSource{tok: testJWT(t, map[string]any{"sub": "x", "exp": now.Add(3 * time.Minute).Unix()})}
	c := &Cached{Source: inner, Now: func() time.Time { return now }}
	for i := 0; i < 3; i++ {
		c.Token(context.Background())
	}
	if inner.n != 1 {
		t.Fatalf("asked %d times, want 1", inner.n)
	}
	now = now.Add(2*time.Minute + time.Second) // within a minute of exp
	c.Token(context.Background())
	if inner.n != 2 {
		t.Fatalf("asked %d times after near-expiry, want 2", inner.n)
	}
}

func TestPeekClaims_ReadsAttributesWithoutTrusting(t *testing.T) {
	tok := platformToken(t, "repo:acme/app")
	c, err := PeekClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "repo:acme/app" || c.Issuer != "https://platform.test" || c.Other["repository"] != "acme/app" || c.Expiry.IsZero() {
		t.Fatalf("%+v", c)
	}
	for _, bad := range []string{"", "opaque-token", "a.b.c", `eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.`} {
		if _, err := PeekClaims(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
