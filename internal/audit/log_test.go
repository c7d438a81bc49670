package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

var zeroTime time.Time

// memSink keeps what it was given.
type memSink struct {
	mu     sync.Mutex
	events []Event
	err    error
	block  chan struct{} // when non-nil, Write waits for it to close
}

func (m *memSink) Name() string { return "mem" }
func (m *memSink) Write(_ context.Context, evs []Event) error {
	if m.block != nil {
		<-m.block
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.events = append(m.events, evs...)
	return nil
}
func (m *memSink) Close() error { return nil }
func (m *memSink) got() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

func newFileLog(t testing.TB, path string, resume *Event) *Log {
	t.Helper()
	fs, err := NewFileSink(path, FileOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: fs, Required: true}}, Resume: resume, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func verifyFile(t *testing.T, path string, o VerifyOptions) (VerifyResult, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return VerifyWith(f, o)
}

func ev(typ string, i int) Event {
	return Event{Type: typ, Outcome: OutcomeSuccess, RequestID: fmt.Sprintf("req-%d", i),
		Principal: &Actor{Provider: "k8s", Subject: "ns/sa", Attributes: map[string]any{"n": i}},
		Details:   map[string]any{"ttl": 300, "aud": []string{"a", "b"}}}
}

func TestRecordResumesChainAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "audit.jsonl")
	l := newFileLog(t, path, nil)
	for i := range 5 {
		if err := l.Record(context.Background(), ev(CredentialIssue, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(context.Background(), ev(CredentialIssue, 9)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close = %v, want ErrClosed", err)
	}
	last, err := LastEvent(path)
	if err != nil || last == nil || last.Seq != 5 {
		t.Fatalf("LastEvent = %+v, %v; want seq 5", last, err)
	}
	l = newFileLog(t, path, last)
	if err := l.RecordAll(context.Background(), ev(PolicyDeny, 5), ev(PolicyAllow, 6)); err != nil {
		t.Fatal(err)
	}
	if seq, _ := l.Head(); seq != 7 {
		t.Fatalf("Head seq = %d, want 7", seq)
	}
	l.Close()
	res, err := verifyFile(t, path, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 7 || res.FirstSeq != 1 || res.LastSeq != 7 {
		t.Fatalf("verify = %+v, want 7 events seq 1..7", res)
	}
}

func TestRecordManyConcurrentCallersYieldsOneChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l := newFileLog(t, path, nil)
	const callers, each = 200, 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				if err := l.Record(context.Background(), ev(CredentialUse, c*each+i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l.Close()
	ids := map[string]bool{}
	reqs := map[string]bool{}
	f, _ := os.Open(path)
	defer f.Close()
	if err := Query(f, Filter{}, time.Time{}, func(e Event) error {
		ids[e.ID], reqs[e.RequestID] = true, true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != callers*each || len(reqs) != callers*each {
		t.Fatalf("got %d ids, %d request ids; want %d of each", len(ids), len(reqs), callers*each)
	}
	if res, err := verifyFile(t, path, VerifyOptions{}); err != nil || res.Events != callers*each {
		t.Fatalf("verify = %+v, %v", res, err)
	}
}

func TestRecordFailsClosedOnRequiredSinkOnly(t *testing.T) {
	boom := errors.New("disk on fire")
	tests := []struct {
		name     string
		required bool
		wantErr  bool
	}{
		{"required sink error fails the call", true, true},
		{"best-effort sink error does not", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, bad := &memSink{}, &memSink{err: boom}
			var logs bytes.Buffer
			l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: ok, Required: true}, {Sink: bad, Required: tc.required}},
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			err = l.Record(context.Background(), ev(CredentialIssue, 1))
			l.Close()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Record = %v, want error %v", err, tc.wantErr)
			}
			var se *SinkError
			if tc.wantErr && (!errors.Is(err, boom) || !errors.As(err, &se) || se.FirstSeq != 1) {
				t.Fatalf("Record error %v does not name the sink failure at seq 1", err)
			}
			if !strings.Contains(logs.String(), "sink write failed") {
				t.Fatalf("sink failure not logged: %q", logs.String())
			}
			if len(ok.got()) != 1 {
				t.Fatalf("healthy sink got %d events, want 1", len(ok.got()))
			}
		})
	}
}

func TestBestEffortSinkNeverBlocksCaller(t *testing.T) {
	ok := &memSink{}
	stuck := &memSink{block: make(chan struct{})}
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: ok, Required: true}, {Sink: stuck, QueueSize: 10}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		for i := range 100 {
			if err := l.Record(context.Background(), ev(CredentialUse, i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked on a stuck best-effort sink")
	}
	close(stuck.block)
	l.Close()
	if n := len(ok.got()); n != 100 {
		t.Fatalf("required sink got %d, want 100", n)
	}
	if n := len(stuck.got()); n == 0 || n >= 100 {
		t.Fatalf("stuck sink got %d events; want some delivered and the overflow dropped", n)
	}
}

func TestRecordRespectsContextWhileWaiting(t *testing.T) {
	stuck := &memSink{block: make(chan struct{})}
	l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: stuck, Required: true}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := l.Record(ctx, ev(CredentialIssue, 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Record = %v, want deadline exceeded", err)
	}
	close(stuck.block)
	l.Close()
}

func TestRecordRejectsBadInput(t *testing.T) {
	l, _ := NewLog(Options{Sinks: []SinkConfig{{Sink: &memSink{}, Required: true}}, Logger: quiet})
	defer l.Close()
	if err := l.Record(context.Background(), Event{Outcome: OutcomeSuccess}); err == nil {
		t.Fatal("event without a type was accepted")
	}
	if _, err := NewLog(Options{}); err == nil {
		t.Fatal("NewLog without sinks succeeded")
	}
	if _, err := NewLog(Options{Sinks: []SinkConfig{{Sink: &memSink{}}}, Resume: &Event{Seq: 3}}); err == nil {
		t.Fatal("NewLog accepted a resume event without a hash")
	}
}

func TestDetailsOfAnyShapeVerify(t *testing.T) {
	type scope struct {
		Zeta  string `json:"zeta"`
		Alpha int    `json:"alpha"`
	}
	path := filepath.Join(t.TempDir(), "a.jsonl")
	l := newFileLog(t, path, nil)
	e := ev(TokenExchange, 1)
	e.Details = map[string]any{"scope": scope{"z", 1}, "big": uint64(1<<63 + 1), "f": 0.1, "t": time.Unix(0, 5).In(time.FixedZone("x", 3600)),
		"html": "<a&b>", "bad_utf8": "\xff", "nested": map[string]any{"b": []any{1, "x", nil}}, "empty": map[string]any{}}
	e.Human = &Actor{Subject: "alice", Attributes: map[string]any{"groups": []scope{{"g", 2}}}}
	if err := l.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := verifyFile(t, path, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestFingerprint(t *testing.T) {
	mk := func(key string) *Log {
		l, err := NewLog(Options{Sinks: []SinkConfig{{Sink: &memSink{}}}, FingerprintKey: []byte(key), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	a, a2, b := mk("k1"), mk("k1"), mk("k2")
	fp := a.Fingerprint("s3cret-token")
	if !strings.HasPrefix(fp, "hmac-sha256:") || len(fp) != len("hmac-sha256:")+22 {
		t.Fatalf("fingerprint %q has the wrong form", fp)
	}
	if strings.Contains(fp, "s3cret") {
		t.Fatal("fingerprint contains the secret")
	}
	if fp != a2.Fingerprint("s3cret-token") {
		t.Fatal("same key and secret give different fingerprints")
	}
	if fp == b.Fingerprint("s3cret-token") || fp == a.Fingerprint("other") {
		t.Fatal("fingerprint does not depend on key and secret")
	}
}

func TestFileSinkPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	path := filepath.Join(dir, "audit.jsonl")
	s, err := NewFileSink(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&^want != 0 {
			t.Errorf("%s mode %v, want at most %v", p, st.Mode().Perm(), want)
		}
	}
}

func TestTornTailIsReportedAndCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	l := newFileLog(t, path, nil)
	l.RecordAll(context.Background(), ev(AuthSuccess, 1), ev(AuthSuccess, 2))
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":3,"time":"2026-`)
	f.Close()

	last, err := LastEvent(path)
	var torn *TornTailError
	if !errors.As(err, &torn) || torn.Bytes != 22 {
		t.Fatalf("LastEvent error = %v, want a 22-byte torn tail", err)
	}
	if last == nil || last.Seq != 2 {
		t.Fatalf("LastEvent = %+v, want seq 2", last)
	}
	if _, err := verifyFile(t, path, VerifyOptions{}); err == nil {
		t.Fatal("Verify accepted a torn last line")
	}
	l = newFileLog(t, path, last)
	if err := l.Record(context.Background(), ev(AuthSuccess, 3)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if res, err := verifyFile(t, path, VerifyOptions{}); err != nil || res.LastSeq != 3 {
		t.Fatalf("after repair verify = %+v, %v", res, err)
	}
}

func TestLastEventOfMissingOrEmptyFile(t *testing.T) {
	dir := t.TempDir()
	if e, err := LastEvent(filepath.Join(dir, "none")); e != nil || err != nil {
		t.Fatalf("missing file: %v, %v", e, err)
	}
	os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600)
	if e, err := LastEvent(filepath.Join(dir, "empty")); e != nil || err != nil {
		t.Fatalf("empty file: %v, %v", e, err)
	}
	os.WriteFile(filepath.Join(dir, "bad"), []byte(`{"seq":1,"hash":"x"}`+"\n"), 0o600)
	if _, err := LastEvent(filepath.Join(dir, "bad")); err == nil {
		t.Fatal("LastEvent accepted an event whose hash does not match")
	}
}

// A long last line crosses LastEvent's read buffer.
func TestLastEventLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	l := newFileLog(t, path, nil)
	e := ev(AdminPrefix+"policy.update", 1)
	e.Details = map[string]any{"blob": strings.Repeat("x", 200<<10)}
	l.RecordAll(context.Background(), ev(AuthSuccess, 0), e)
	l.Close()
	last, err := LastEvent(path)
	if err != nil || last.Seq != 2 {
		t.Fatalf("LastEvent = %v, %v", last, err)
	}
	if _, err := verifyFile(t, path, VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

var _ io.Closer = (*FileSink)(nil)

func TestStreamSinkWritesVerifiableLines(t *testing.T) {
	var buf bytes.Buffer
	l, _ := NewLog(Options{Logger: quiet, Sinks: []SinkConfig{{Sink: NewStreamSink("stdout", &buf), Required: true}}})
	l.RecordAll(context.Background(), ev(AuthSuccess, 1), ev(AuthFailure, 2))
	l.Close()
	if res, err := Verify(&buf); err != nil || res.Events != 2 {
		t.Fatalf("verify stdout record: %+v, %v", res, err)
	}
}
