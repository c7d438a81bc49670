package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Request makes one request through c; it returns an error for a failed
// one. It is the general but heavier path (net/http's client and
// transport); Spec is the lean one for repeating a single request.
type Request func(ctx context.Context, c *http.Client) error

// workers shares one client and transport among all workers.
func (r Request) workers(n int) (func() worker, func(), error) {
	tr := &http.Transport{MaxIdleConns: n * 2, MaxIdleConnsPerHost: n * 2, IdleConnTimeout: time.Minute}
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return func() worker { return clientWorker{c: c, req: r} }, tr.CloseIdleConnections, nil
}

type clientWorker struct {
	c   *http.Client
	req Request
}

func (w clientWorker) do(ctx context.Context) error { return w.req(ctx, w.c) }

func (clientWorker) close() {}

// Post returns a Request that POSTs body and expects 200.
func Post(url, contentType, auth string, body []byte) Request {
	return func(ctx context.Context, c *http.Client) error {
		req, err := newPost(ctx, url, contentType, auth, body)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
		}
		return nil
	}
}

// newPost builds a POST of body with its Content-Type and, if auth is set,
// a bearer token.
func newPost(ctx context.Context, url, contentType, auth string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("bench: build request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	return req, nil
}
