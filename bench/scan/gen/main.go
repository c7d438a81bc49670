// Command gen writes a benchmark tree for `stint scan`: source-like filler
// files, with planted fake credentials (valid in form) and look-alike decoy
// files mixed in, and truth.json listing every planted credential.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/stint-dev/stint/internal/scan/scantest"
)

type truth struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Rule string `json:"rule"`
}

func main() {
	out := flag.String("out", "/tmp/stint-scan-bench/tree", "tree to write")
	mb := flag.Int("mb", 200, "approximate size in MB")
	every := flag.Int("every", 40, "one planted set (and one decoy set) per this many filler files")
	flag.Parse()
	g := scantest.New(42)
	if err := os.RemoveAll(*out); err != nil {
		log.Fatal(err)
	}
	var tr []truth
	write := func(rel, content string) int {
		p := filepath.Join(*out, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			log.Fatal(err)
		}
		return len(content)
	}
	total, n, set := 0, 0, 0
	for total < *mb<<20 {
		// ~128 KiB of filler per file.
		total += write(fmt.Sprintf("src/mod%03d/file%05d.go", n/100, n), g.Filler(2200))
		n++
		if n%*every == 0 {
			var fs []scantest.File
			if set%4 == 0 {
				fs = g.Planted() // key generation is the slow part: all formats every 4th set
			} else {
				all := g.Planted()
				fs = all[:8] // the token formats
			}
			for _, f := range append(fs, g.Decoys()...) {
				rel := fmt.Sprintf("proj%04d/%s", set, f.Path)
				total += write(rel, f.Content)
				for _, e := range f.Expect {
					tr = append(tr, truth{rel, e.Line, e.Rule})
				}
			}
			set++
		}
	}
	b, _ := json.MarshalIndent(tr, "", " ")
	if err := os.WriteFile(filepath.Join(filepath.Dir(*out), "truth.json"), b, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("wrote %d MB in %d filler files, %d planted credentials\n", total>>20, n, len(tr))
}
