package main

import (
	"runtime"
	"testing"
)

func TestTuneProcsAddsOnePOnlyWithoutALowerLimit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	n := runtime.NumCPU()
	type tc struct {
		name   string
		env    string
		before int
		want   int
	}
	tests := []tc{
		{"all cores: one spare P", "", n, n + 1},
		{"operator's GOMAXPROCS wins", "3", n, n},
	}
	if n > 1 {
		tests = append(tests, tc{"a container limit below the cores is kept", "", n - 1, n - 1})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tt.env)
			runtime.GOMAXPROCS(tt.before)
			tuneProcs()
			if got := runtime.GOMAXPROCS(0); got != tt.want {
				t.Fatalf("GOMAXPROCS = %d, want %d", got, tt.want)
			}
		})
	}
}
