package scan_test

import (
	"testing"

	"github.com/stint-dev/stint/internal/scan"

	"github.com/stint-dev/stint/internal/scan/scantest"
)

func BenchmarkScanFiller(b *testing.B) {
	data := []byte(scantest.New(1).Filler(20000))
	d := scan.NewDetector(nil)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		d.Scan("x.go", data)
	}
}
