// Package client is the Go client for stint's HTTP API: token exchange,
// credentials, leases. Agents written in Go import it; the stint CLI uses it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultAddr is used when neither an address nor STINT_ADDR is given.
const DefaultAddr = "http://127.0.0.1:8420"

// RFC 8693 token type for JWTs.
const TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"

// maxResponse bounds what the client reads from the server.
const maxResponse = 4 << 20

// Client talks to one stint server.
type Client struct {
	addr string
	http *http.Client
}

// Addr resolves the server address: the flag, else STINT_ADDR, else the default.
func Addr(flag string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv("STINT_ADDR"); v != "" {
		return v
	}
	return DefaultAddr
}

// New returns a client for addr ("" resolves as Addr does). hc may be nil.
func New(addr string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{addr: strings.TrimRight(Addr(addr), "/"), http: hc}
}

// Error is an error response from the server.
type Error struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("stint: %s (%d %s)", e.Description, e.Status, e.Code)
}

// ExchangeRequest is an RFC 8693 token exchange.
type ExchangeRequest struct {
	SubjectToken string
	ActorToken   string
	Audience     string
	Scope        string
}

// ExchangeResponse is the RFC 8693 response.
type ExchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// Exchange trades a platform token for a stint token.
func (c *Client) Exchange(ctx context.Context, r ExchangeRequest) (ExchangeResponse, error) {
	f := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {r.SubjectToken},
		"subject_token_type": {TokenTypeJWT},
	}
	if r.ActorToken != "" {
		f.Set("actor_token", r.ActorToken)
		f.Set("actor_token_type", TokenTypeJWT)
	}
	if r.Audience != "" {
		f.Set("audience", r.Audience)
	}
	if r.Scope != "" {
		f.Set("scope", r.Scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.addr+"/oauth2/token", strings.NewReader(f.Encode()))
	if err != nil {
		return ExchangeResponse{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out ExchangeResponse
	return out, c.do(req, &out)
}

// CredentialRequest asks for a credential.
type CredentialRequest struct {
	Target     string            `json:"target"`
	Role       string            `json:"role"`
	TTL        string            `json:"ttl,omitempty"`
	OnBehalfOf string            `json:"on_behalf_of,omitempty"`
	PublicKey  string            `json:"public_key,omitempty"`
	CSR        string            `json:"csr,omitempty"`
	Scope      string            `json:"scope,omitempty"`
	Params     map[string]string `json:"params,omitempty"`
}

// Credential is an issued credential under a lease.
type Credential struct {
	LeaseID    string            `json:"lease_id"`
	ExpiresAt  time.Time         `json:"expires_at"`
	Renewable  bool              `json:"renewable"`
	Credential map[string]string `json:"credential"`
}

// Credentials asks for a credential with the caller's token.
func (c *Client) Credentials(ctx context.Context, token string, r CredentialRequest) (Credential, error) {
	var out Credential
	return out, c.postJSON(ctx, "/v1/credentials", token, r, &out)
}

// Lease is a lease as the server reports it.
type Lease struct {
	ID         string    `json:"lease_id"`
	Target     string    `json:"target"`
	TargetType string    `json:"target_type"`
	Role       string    `json:"role"`
	Provider   string    `json:"provider"`
	Subject    string    `json:"subject"`
	Human      string    `json:"human,omitempty"`
	Rule       string    `json:"rule"`
	IssuedAt   time.Time `json:"issued_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	MaxExpires time.Time `json:"max_expires_at"`
	State      string    `json:"state"`
	Renewable  bool      `json:"renewable"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error,omitempty"`
}

// Renew extends a lease; ttl "" asks for the role's default.
func (c *Client) Renew(ctx context.Context, token, leaseID, ttl string) (Lease, error) {
	var out Lease
	body := map[string]string{}
	if ttl != "" {
		body["ttl"] = ttl
	}
	return out, c.postJSON(ctx, "/v1/leases/"+url.PathEscape(leaseID)+"/renew", token, body, &out)
}

// Revoke revokes a lease now (idempotent). force is for admins: mark it
// revoked without reaching the target.
func (c *Client) Revoke(ctx context.Context, token, leaseID string, force bool) (Lease, error) {
	var out Lease
	return out, c.postJSON(ctx, "/v1/leases/"+url.PathEscape(leaseID)+"/revoke", token, map[string]bool{"force": force}, &out)
}

// Lease returns one lease.
func (c *Client) Lease(ctx context.Context, token, leaseID string) (Lease, error) {
	req, err := c.get(ctx, "/v1/leases/"+url.PathEscape(leaseID), token)
	if err != nil {
		return Lease{}, err
	}
	var out Lease
	return out, c.do(req, &out)
}

// LeaseFilter selects leases to list or revoke.
type LeaseFilter struct {
	Subject  string `json:"subject,omitempty"`
	Provider string `json:"provider,omitempty"`
	Human    string `json:"human,omitempty"`
	Target   string `json:"target,omitempty"`
	Role     string `json:"role,omitempty"`
	Rule     string `json:"rule,omitempty"`
	State    string `json:"-"`
	Limit    int    `json:"-"`
}

// Leases lists the caller's leases (an admin's: everyone's, filtered).
func (c *Client) Leases(ctx context.Context, token string, f LeaseFilter) ([]Lease, error) {
	q := url.Values{}
	for k, v := range map[string]string{"subject": f.Subject, "provider": f.Provider, "human": f.Human, "target": f.Target, "role": f.Role, "rule": f.Rule, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	req, err := c.get(ctx, "/v1/leases?"+q.Encode(), token)
	if err != nil {
		return nil, err
	}
	var out struct {
		Leases []Lease `json:"leases"`
	}
	return out.Leases, c.do(req, &out)
}

// RevokeMatching is the admin kill switch; it returns how many leases are being revoked.
func (c *Client) RevokeMatching(ctx context.Context, token string, f LeaseFilter) (int, error) {
	var out struct {
		Revoking int `json:"revoking"`
	}
	return out.Revoking, c.postJSON(ctx, "/v1/leases/revoke", token, f, &out)
}

// Evaluate asks the server (as an admin) whether a principal would get a grant.
func (c *Client) Evaluate(ctx context.Context, token string, body any) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.postJSON(ctx, "/v1/policy/evaluate", token, body, &out)
}

// InventoryFinding is one credential in an inventory report: where it
// is and its fingerprint, never the secret (`stint scan`'s JSON fields).
type InventoryFinding struct {
	RuleID      string `json:"rule_id"`
	File        string `json:"file"`
	Line        int    `json:"line"`
	Commit      string `json:"commit,omitempty"`
	Redacted    string `json:"redacted"`
	Fingerprint string `json:"fingerprint"`
	// PresentAtHead is false for a finding seen only in git history; nil
	// means a plain tree scan, so present.
	PresentAtHead *bool `json:"present_at_head,omitempty"`
}

// InventoryReport is the full snapshot of one source's findings: the
// server marks the source's findings missing from it as remediated.
type InventoryReport struct {
	Source   string             `json:"source"`
	Findings []InventoryFinding `json:"findings"`
}

// InventoryDiff counts what a report changed in the inventory.
type InventoryDiff struct {
	New        int `json:"new"`
	Present    int `json:"present"`
	Reopened   int `json:"reopened"`
	Remediated int `json:"remediated"`
}

// InventoryEntry is one finding as the inventory holds it.
type InventoryEntry struct {
	Source        string     `json:"source"`
	Fingerprint   string     `json:"fingerprint"`
	File          string     `json:"file"`
	RuleID        string     `json:"rule_id"`
	Line          int        `json:"line"`
	Commit        string     `json:"commit,omitempty"`
	Redacted      string     `json:"redacted"`
	State         string     `json:"state"` // open or remediated
	FirstSeen     time.Time  `json:"first_seen"`
	LastSeen      time.Time  `json:"last_seen"`
	RemediatedAt  *time.Time `json:"remediated_at,omitempty"`
	PresentAtHead bool       `json:"present_at_head"`
}

// InventoryFilter selects inventory entries; empty fields match anything.
type InventoryFilter struct {
	Source      string
	Rule        string
	Fingerprint string
	State       string // open or remediated
	Limit       int
}

// ReportInventory posts a scan's findings to the inventory (admin).
func (c *Client) ReportInventory(ctx context.Context, token string, r InventoryReport) (InventoryDiff, error) {
	if r.Findings == nil {
		r.Findings = []InventoryFinding{}
	}
	var out InventoryDiff
	return out, c.postJSON(ctx, "/v1/inventory", token, r, &out)
}

// Inventory lists the inventory's findings (admin).
func (c *Client) Inventory(ctx context.Context, token string, f InventoryFilter) ([]InventoryEntry, error) {
	q := url.Values{}
	for k, v := range map[string]string{"source": f.Source, "rule": f.Rule, "fingerprint": f.Fingerprint, "state": f.State} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	req, err := c.get(ctx, "/v1/inventory?"+q.Encode(), token)
	if err != nil {
		return nil, err
	}
	var out struct {
		Findings []InventoryEntry `json:"findings"`
	}
	return out.Findings, c.do(req, &out)
}

func (c *Client) get(ctx context.Context, path, token string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.addr+path, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req, nil
}

func (c *Client) postJSON(ctx context.Context, path, token string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.addr+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.do(req, out)
}

func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("stint: cannot reach %s: %w", c.addr, unwrapURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("stint: read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(body, e) != nil || e.Code == "" {
			e.Code, e.Description = "http_error", http.StatusText(resp.StatusCode)
		}
		return e
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("stint: malformed response: %w", err)
	}
	return nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
