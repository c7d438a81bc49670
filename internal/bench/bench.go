// Package bench is the load generator behind `stint bench`: it drives a
// running server over HTTP and reports throughput and latency percentiles,
// and measures the raw-crypto baseline that BENCHMARKS.md divides by.
package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result summarises one run.
type Result struct {
	Name        string        `json:"name"`
	Requests    int64         `json:"requests"`
	Errors      int64         `json:"errors"`
	Duration    time.Duration `json:"duration_ns"`
	PerSecond   float64       `json:"per_second"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
	FirstError  string        `json:"first_error,omitempty"`
	Concurrency int           `json:"concurrency"`
}

func (r Result) String() string {
	s := fmt.Sprintf("%s: %d requests in %.1fs with %d workers: %.0f/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, errors %d",
		r.Name, r.Requests, r.Duration.Seconds(), r.Concurrency, r.PerSecond, ms(r.P50), ms(r.P99), ms(r.Max), r.Errors)
	if r.FirstError != "" {
		s += " (first: " + r.FirstError + ")"
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Options drive a run.
type Options struct {
	Concurrency int
	Duration    time.Duration
	Warmup      time.Duration
	// MaxRequests ends the run after this many successful requests (0: none).
	MaxRequests int64
}

// Load is what Run drives: a Request (any request, through net/http) or a
// Spec (one request repeated on a lean keep-alive connection per worker).
type Load interface {
	// workers prepares a run: newWorker is called once per goroutine and
	// phase, and done releases what the workers share.
	workers(concurrency int) (newWorker func() worker, done func(), err error)
}

// worker makes requests for one goroutine, one at a time.
type worker interface {
	// do makes one request; it returns an error for a failed one.
	do(ctx context.Context) error
	close()
}

// Run drives l from Concurrency goroutines for Duration (after Warmup)
// and records each latency.
func Run(ctx context.Context, name string, o Options, l Load) Result {
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	res := Result{Name: name, Concurrency: o.Concurrency}
	newWorker, done, err := l.workers(o.Concurrency)
	if err != nil {
		res.Errors, res.FirstError = 1, err.Error()
		return res
	}
	defer done()
	if o.Warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, o.Warmup)
		run(wctx, o.Concurrency, 0, newWorker)
		cancel()
	}
	rctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	lat, errs, first := run(rctx, o.Concurrency, o.MaxRequests, newWorker)
	el := time.Since(start)
	res.Requests, res.Errors, res.Duration, res.FirstError = int64(len(lat)), errs, el, first
	if len(lat) > 0 {
		slices.Sort(lat)
		res.PerSecond = float64(len(lat)) / el.Seconds()
		res.P50 = lat[len(lat)*50/100]
		res.P99 = lat[len(lat)*99/100]
		res.Max = lat[len(lat)-1]
	}
	return res
}

func run(ctx context.Context, n int, maxOK int64, newWorker func() worker) ([]time.Duration, int64, string) {
	var wg sync.WaitGroup
	var errs, ok atomic.Int64
	var firstMu sync.Mutex
	first := ""
	lats := make([][]time.Duration, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker()
			defer w.close()
			local := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				if maxOK > 0 && ok.Add(1) > maxOK {
					break
				}
				t := time.Now()
				err := w.do(ctx)
				d := time.Since(t)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					errs.Add(1)
					firstMu.Lock()
					if first == "" {
						first = err.Error()
					}
					firstMu.Unlock()
					continue
				}
				local = append(local, d)
			}
			lats[i] = local
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all, errs.Load(), first
}

// Baseline measures raw ES256 sign + RS256 (2048-bit) verify operations
// per second on one goroutine: the cryptographic floor of one exchange.
func Baseline(d time.Duration) (float64, error) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, err
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return 0, err
	}
	msg := []byte(`{"iss":"https://stint.example.com","sub":"system:serviceaccount:agents:support-bot","aud":"stint","exp":1800000000}`)
	h := sha256.Sum256(msg)
	rsig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, h[:])
	if err != nil {
		return 0, err
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		h := sha256.Sum256(msg)
		if _, err := ecdsa.SignASN1(rand.Reader, ec, h[:]); err != nil {
			return 0, err
		}
		if err := rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, h[:], rsig); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// RSS returns the resident and peak resident set size of a process, in bytes.
func RSS(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v * 1024
		case "VmHWM:":
			peak = v * 1024
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("bench: no VmRSS in /proc status")
	}
	return rss, peak, nil
}

// BaselineEd25519 measures raw Ed25519 signatures per second on one
// goroutine: the cryptographic floor of one SSH certificate.
func BaselineEd25519(d time.Duration) (float64, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return 0, err
	}
	msg := make([]byte, 300) // about the size of a certificate's signed body
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		msg[0] = byte(n)
		_ = ed25519.Sign(priv, msg)
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
