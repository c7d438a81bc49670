// Command localsts runs the local STS of package ststest on a fixed
// address for benchmarks (bench/aws.md): it knows a workload role session
// and stint's own user, writes an aws-iam proof for the workload, and can
// measure the raw STS round trips (GetCallerIdentity + AssumeRole) with
// the SDK, the baseline against which stint's own share is computed:
// either in one process with its own STS, or (-against) from a separate
// process against the STS that stint uses, as stint's calls are made.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/stint-dev/stint/internal/agent/awsproof"
	"github.com/stint-dev/stint/internal/issuer/awssts/ststest"
)

const account = "111122223333"

func main() {
	addr := flag.String("addr", "127.0.0.1:8491", "listen address")
	proofFile := flag.String("proof", "", "write an aws-iam proof for the workload here")
	serverID := flag.String("server-id", "stint-bench", "the aws-iam provider's server_id")
	baseline := flag.Duration("baseline", 0, "measure raw SDK round trips (GetCallerIdentity + AssumeRole) for this long at concurrency 1, then exit")
	against := flag.String("against", "", "with -baseline: measure against the local STS already running at this URL (the one stint calls) instead of one in this process, so the round trips cross processes as stint's do")
	flag.Parse()

	if *against != "" {
		if *baseline <= 0 {
			log.Fatal("-against needs -baseline")
		}
		measure(*against, *baseline)
		return
	}
	s := ststest.New()
	s.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s.Server = httptest.NewUnstartedServer(s.Config.Handler)
	s.Listener.Close()
	s.Listener = ln
	s.Start()
	s.AddSession("ASIABENCHWORKLOAD001", "workload-secret", "workload-token", ststest.Identity{
		Arn: "arn:aws:sts::" + account + ":assumed-role/ci-runner/bench", UserID: "AROABENCH:bench", Account: account,
	})
	s.AddUser("AKIABENCHSTINT000001", "stint-secret", ststest.Identity{Arn: "arn:aws:iam::" + account + ":user/stint", UserID: "AIDASTINT", Account: account})
	s.AddRole("arn:aws:iam::"+account+":role/orders-reader", 12*time.Hour)
	ep := s.Endpoint()
	fmt.Println("local STS at", ep)

	if *proofFile != "" {
		src, err := awsproof.New(awsproof.Options{ServerID: *serverID, Endpoint: ep,
			Credentials: credentials.NewStaticCredentialsProvider("ASIABENCHWORKLOAD001", "workload-secret", "workload-token")})
		if err != nil {
			log.Fatal(err)
		}
		tok, err := src.Token(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(*proofFile, []byte(tok), 0o600); err != nil {
			log.Fatal(err)
		}
		fmt.Println("proof written to", *proofFile, "(valid 15 minutes)")
	}
	if *baseline > 0 {
		measure(ep, *baseline)
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt)
	<-ch
	report("GetCallerIdentity", s.Calls("GetCallerIdentity"))
	report("AssumeRole", s.Calls("AssumeRole"))
}

func report(name string, calls []ststest.Call) {
	if len(calls) == 0 {
		return
	}
	d := make([]time.Duration, len(calls))
	for i, c := range calls {
		d[i] = c.Duration
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	fmt.Printf("%s: %d calls, handler p50 %s\n", name, len(d), d[len(d)/2])
}

// measure times what stint does against STS per credential, without
// stint: one GetCallerIdentity (as the workload) and one AssumeRole (as
// stint), each over a kept-alive connection with the SDK.
func measure(ep string, dur time.Duration) {
	hc := &http.Client{Timeout: 10 * time.Second}
	client := func(akid, sk, tok string) *sts.Client {
		return sts.NewFromConfig(aws.Config{Region: "us-east-1", HTTPClient: hc, Credentials: credentials.NewStaticCredentialsProvider(akid, sk, tok)},
			func(o *sts.Options) { o.BaseEndpoint = aws.String(ep) })
	}
	workload := client("ASIABENCHWORKLOAD001", "workload-secret", "workload-token")
	stint := client("AKIABENCHSTINT000001", "stint-secret", "")
	ctx := context.Background()
	var gci, ar, both []time.Duration
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		t0 := time.Now()
		if _, err := workload.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
			log.Fatal(err)
		}
		t1 := time.Now()
		if _, err := stint.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + account + ":role/orders-reader"),
			RoleSessionName: aws.String("bench"), DurationSeconds: aws.Int32(900), SourceIdentity: aws.String("bench")}); err != nil {
			log.Fatal(err)
		}
		t2 := time.Now()
		gci, ar, both = append(gci, t1.Sub(t0)), append(ar, t2.Sub(t1)), append(both, t2.Sub(t0))
	}
	for _, x := range []struct {
		name string
		d    []time.Duration
	}{{"GetCallerIdentity", gci}, {"AssumeRole", ar}, {"both", both}} {
		sort.Slice(x.d, func(i, j int) bool { return x.d[i] < x.d[j] })
		fmt.Printf("SDK round trip %s: n=%d p50 %s p99 %s\n", x.name, len(x.d), x.d[len(x.d)/2], x.d[len(x.d)*99/100])
	}
}
