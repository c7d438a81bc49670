// Command score compares a scanner's JSON report with truth.json by file
// and line, and prints recall and precision. It reads stint's report
// (-format stint) or gitleaks' (-format gitleaks).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
)

type key struct {
	file string
	line int
}

func main() {
	truthPath := flag.String("truth", "", "truth.json")
	report := flag.String("report", "", "report file")
	format := flag.String("format", "stint", "stint or gitleaks")
	root := flag.String("root", "", "tree root, stripped from reported paths")
	flag.Parse()
	var tr []struct {
		File string `json:"file"`
		Line int    `json:"line"`
	}
	mustRead(*truthPath, &tr)
	want := map[key]bool{}
	for _, t := range tr {
		want[key{t.File, t.Line}] = true
	}
	got := map[key]bool{}
	rel := func(p string) string {
		r, err := filepath.Rel(*root, p)
		if err != nil {
			return p
		}
		return filepath.ToSlash(r)
	}
	switch *format {
	case "stint":
		var r struct {
			Findings []struct {
				File string `json:"file"`
				Line int    `json:"line"`
			} `json:"findings"`
		}
		mustRead(*report, &r)
		for _, f := range r.Findings {
			got[key{rel(f.File), f.Line}] = true
		}
	case "gitleaks":
		var r []struct {
			File      string
			StartLine int
		}
		mustRead(*report, &r)
		for _, f := range r {
			got[key{rel(f.File), f.StartLine}] = true
		}
	}
	tp := 0
	var fps []string
	for k := range got {
		if want[k] {
			tp++
		} else if len(fps) < 5 {
			fps = append(fps, fmt.Sprintf("%s:%d", k.file, k.line))
		}
	}
	fmt.Printf("planted=%d reported=%d true_positives=%d recall=%.3f precision=%.3f",
		len(want), len(got), tp, float64(tp)/float64(max(1, len(want))), float64(tp)/float64(max(1, len(got))))
	if len(fps) > 0 {
		fmt.Printf(" sample_false_positives=%s", strings.Join(fps, ","))
	}
	fmt.Println()
}

func mustRead(p string, v any) {
	b, err := os.ReadFile(p)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		log.Fatalf("%s: %v", p, err)
	}
}
