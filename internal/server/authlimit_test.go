package server

import (
	"testing"
	"time"
)

func TestAuthLimiterCountsOnlyFailuresPerWindow(t *testing.T) {
	now := time.Unix(1800000000, 0)
	l := newAuthLimiter(3, time.Minute, func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if b, _ := l.blocked("10.0.0.1"); b {
			t.Fatalf("blocked after %d failures", i)
		}
		l.failed("10.0.0.1")
	}
	b, left := l.blocked("10.0.0.1")
	if !b || left != time.Minute {
		t.Fatalf("want blocked for a minute, got %v %v", b, left)
	}
	if b, _ := l.blocked("10.0.0.2"); b {
		t.Fatal("another source is blocked")
	}
	now = now.Add(61 * time.Second)
	if b, _ := l.blocked("10.0.0.1"); b {
		t.Fatal("still blocked after the window")
	}
	var off *authLimiter
	off.failed("x")
	if b, _ := off.blocked("x"); b {
		t.Fatal("a nil limiter blocks")
	}
}
