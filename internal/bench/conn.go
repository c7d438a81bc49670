package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// maxBody bounds how much of a response body is read (and checked).
const maxBody = 1 << 20

// Spec is one POST that every worker repeats on its own keep-alive
// HTTP/1.1 connection. It is serialized once, and each round trip is a
// write of those bytes and a parse with http.ReadResponse: the load
// generator shares the machine with the server, so it should spend as
// little CPU per request as it can (net/http's client costs several times
// more, see BenchmarkClient).
type Spec struct {
	URL         string // http:// or https://
	ContentType string
	Auth        string // bearer token; "" sends none
	Body        []byte
	// Expect must occur in a 200 response body for the request to count
	// as a success (e.g. `"lease_id"`); "" accepts any body.
	Expect string
	// Then, if set, builds a follow-up request to the same server from a
	// successful response body (which it must not retain); it is sent on
	// the same connection, and the pair succeeds only if it answers 200.
	Then func(body []byte) (*http.Request, error)
}

// IssueRevoke returns a Spec that asks for a credential and, when revoke
// is set, revokes its lease at once: one create + one drop cycle,
// comparable with running the target's own creation and revocation SQL.
func IssueRevoke(addr, token string, body []byte, revoke bool) Spec {
	s := Spec{URL: addr + "/v1/credentials", ContentType: "application/json", Auth: token, Body: body, Expect: `"lease_id"`}
	if revoke {
		s.Then = func(issued []byte) (*http.Request, error) { return revokeRequest(addr, token, issued) }
	}
	return s
}

// revokeRequest builds the revocation of the lease issued in body.
func revokeRequest(addr, token string, body []byte) (*http.Request, error) {
	var out struct {
		LeaseID string `json:"lease_id"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("issue: decode lease_id: %w", err)
	}
	if out.LeaseID == "" {
		return nil, errors.New("issue: empty lease_id")
	}
	return newPost(context.Background(), addr+"/v1/leases/"+url.PathEscape(out.LeaseID)+"/revoke", "application/json", token, []byte("{}"))
}

// contextDialer is a net.Dialer or a tls.Dialer.
type contextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// prepared is a Spec made ready to send; workers share it read-only.
type prepared struct {
	addr   string // host:port to dial
	dialer contextDialer
	wire   []byte        // the request as sent
	req    *http.Request // what http.ReadResponse needs (its method)
	expect []byte
	then   func([]byte) (*http.Request, error)
}

func (s Spec) workers(int) (func() worker, func(), error) {
	p, err := s.prepare()
	if err != nil {
		return nil, nil, err
	}
	return func() worker { return &connWorker{p: p} }, func() {}, nil
}

// prepare serializes the request with the standard library, once.
func (s Spec) prepare() (*prepared, error) {
	req, err := newPost(context.Background(), s.URL, s.ContentType, s.Auth, s.Body)
	if err != nil {
		return nil, err
	}
	addr, d, err := dialerFor(req.URL)
	if err != nil {
		return nil, err
	}
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		return nil, fmt.Errorf("bench: serialize request: %w", err)
	}
	return &prepared{addr: addr, dialer: d, wire: wire.Bytes(), req: req, expect: []byte(s.Expect), then: s.Then}, nil
}

func dialerFor(u *url.URL) (string, contextDialer, error) {
	nd := &net.Dialer{Timeout: 30 * time.Second} // Go sets TCP_NODELAY by default
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
		return net.JoinHostPort(u.Hostname(), port), nd, nil
	case "https":
		if port == "" {
			port = "443"
		}
		// A nil Config verifies against the system roots for the URL's host.
		return net.JoinHostPort(u.Hostname(), port), &tls.Dialer{NetDialer: nd}, nil
	}
	return "", nil, fmt.Errorf("bench: unsupported scheme %q in %s", u.Scheme, u.Redacted())
}

// connWorker sends a prepared request over its own connection, redialing
// after any error or a response that closes the connection. It serves a
// single context: the connection is bound to the one it was dialed with.
type connWorker struct {
	p    *prepared
	conn net.Conn
	stop func() bool // unregisters the closing of conn when the context ends
	br   *bufio.Reader
	body bytes.Buffer     // the last response body, reused
	lim  io.LimitedReader // bounds body reads, reused
	next bytes.Buffer     // a serialized follow-up request, reused
}

func (w *connWorker) do(ctx context.Context) error {
	body, err := w.roundTrip(ctx, w.p.wire, w.p.req)
	if err != nil {
		return err
	}
	if !bytes.Contains(body, w.p.expect) {
		// Not the body: a 200 may carry a credential, and this error is
		// printed.
		return fmt.Errorf("status 200 without %s (%d bytes)", w.p.expect, len(body))
	}
	if w.p.then == nil {
		return nil
	}
	return w.followUp(ctx, body)
}

// followUp sends the request that then builds from body; this path
// serializes per call, so it is heavier than the prepared one.
func (w *connWorker) followUp(ctx context.Context, body []byte) error {
	req, err := w.p.then(body)
	if err != nil {
		return err
	}
	w.next.Reset()
	if err := req.Write(&w.next); err != nil {
		return fmt.Errorf("serialize %s %s: %w", req.Method, req.URL.Path, err)
	}
	if _, err := w.roundTrip(ctx, w.next.Bytes(), req); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// roundTrip writes wire and reads the response to req, which must be 200.
// The body it returns is valid until the next round trip.
func (w *connWorker) roundTrip(ctx context.Context, wire []byte, req *http.Request) ([]byte, error) {
	if w.conn == nil {
		if err := w.dial(ctx); err != nil {
			return nil, err
		}
	}
	if _, err := w.conn.Write(wire); err != nil {
		w.close()
		return nil, fmt.Errorf("write request: %w", err)
	}
	resp, err := http.ReadResponse(w.br, req)
	if err != nil {
		w.close()
		return nil, fmt.Errorf("read response: %w", err)
	}
	body, keep, err := w.readBody(resp)
	if !keep || err != nil {
		w.close()
	}
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	return body, nil
}

// readBody reads up to maxBody bytes of resp's body into the reused
// buffer. keep reports whether the connection can carry another request.
func (w *connWorker) readBody(resp *http.Response) (body []byte, keep bool, err error) {
	w.body.Reset()
	w.lim = io.LimitedReader{R: resp.Body, N: maxBody + 1}
	if _, err := w.body.ReadFrom(&w.lim); err != nil {
		return nil, false, err
	}
	if w.lim.N == 0 {
		// Longer than maxBody: drop the connection rather than drain it
		// (closing the body would read it to the end).
		return w.body.Bytes()[:maxBody], false, nil
	}
	return w.body.Bytes(), !resp.Close, resp.Body.Close()
}

// dial connects and ties the connection to ctx: its end, by cancellation
// or deadline, closes the connection so that a blocked read returns. (Not
// SetDeadline(ctx's deadline): that can expire just before ctx reports
// done, and the worker would count the timeout as a failed request.)
func (w *connWorker) dial(ctx context.Context) error {
	c, err := w.p.dialer.DialContext(ctx, "tcp", w.p.addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", w.p.addr, err)
	}
	w.conn = c
	w.stop = context.AfterFunc(ctx, func() { c.Close() })
	if w.br == nil {
		w.br = bufio.NewReader(c)
	} else {
		w.br.Reset(c)
	}
	return nil
}

// close drops the connection, if any; the next round trip redials.
func (w *connWorker) close() {
	if w.conn == nil {
		return
	}
	w.stop()
	w.conn.Close()
	w.conn = nil
}
