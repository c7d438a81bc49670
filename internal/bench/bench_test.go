package bench

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary serve credentialBody instead of running
// tests, so that a benchmark's client runs alone in its process.
const helperEnv = "STINT_BENCH_HELPER_SERVER"

// credentialBody is about the size of a real POST /v1/credentials answer.
var credentialBody = `{"lease_id":"01JQ8Z7K3M2N4P5R6S7T8V9W0X","expires_at":"2026-01-02T15:04:05Z","renewable":true,` +
	`"credential":{"username":"stint_support_bot_01jq8z7k3m","password":"` + strings.Repeat("p", 64) + `",` +
	`"dsn":"postgres://stint_support_bot_01jq8z7k3m@db.internal:5432/orders?sslmode=verify-full",` +
	`"note":"` + strings.Repeat("n", 580) + `"}}`

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if err := serveHelper(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveHelper prints its address and serves until stdin closes.
func serveHelper() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("helper server: %w", err)
	}
	fmt.Println(ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, credentialBody)
	})}
	go func() { _ = srv.Serve(ln) }()
	_, _ = io.Copy(io.Discard, os.Stdin)
	return srv.Close()
}

// startHelper runs the helper server in a child process and returns its
// /v1/credentials URL.
func startHelper(b *testing.B) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("helper server address: %v", err)
	}
	return "http://" + strings.TrimSpace(addr) + "/v1/credentials"
}

// cpuTime is this process's user + system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClient compares the client-side cost of one request on the
// net/http path (Request) and the lean path (Spec). The server runs in a
// child process, so allocs/op and cpu-ns/op (this process's CPU time per
// request, GC included) are the client's alone; ns/op is the round trip.
//
//	go test -run '^$' -bench BenchmarkClient -benchtime 2000x ./internal/bench
func BenchmarkClient(b *testing.B) {
	url := startHelper(b)
	body := []byte(`{"target":"orders-db","role":"readonly","ttl":"5m"}`)
	for _, c := range []struct {
		name string
		load Load
	}{
		{"net-http", Post(url, "application/json", "token", body)},
		{"lean", Spec{URL: url, ContentType: "application/json", Auth: "token", Body: body, Expect: `"lease_id"`}},
	} {
		b.Run(c.name, func(b *testing.B) {
			newWorker, done, err := c.load.workers(1)
			if err != nil {
				b.Fatal(err)
			}
			defer done()
			w := newWorker()
			defer w.close()
			ctx := b.Context()
			if err := w.do(ctx); err != nil { // dial outside the measurement
				b.Fatal(err)
			}
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				if err := w.do(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
		})
	}
}
