//go:build ignore

// Command gen writes the detection corpus: files with fake credentials that
// are valid in form, files of look-alikes, and expected.json naming every
// planted credential. Run from the module root:
//
//	go run ./internal/scan/testdata/gen -out internal/scan/testdata/corpus
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"

	"github.com/stint-dev/stint/internal/scan/scantest"
)

func main() {
	out := flag.String("out", "internal/scan/testdata/corpus", "output directory")
	seed := flag.Uint64("seed", 20260514, "generator seed")
	flag.Parse()
	g := scantest.New(*seed)
	files := append(g.Planted(), g.Decoys()...)
	if err := os.RemoveAll(*out); err != nil {
		log.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(*out, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.Content), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	b, err := json.MarshalIndent(files, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*out, "..", "corpus-expected.json"), append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}
