package scan

import (
	"bytes"
	"path/filepath"
	"sort"
	"strings"
)

// Detector finds credentials in byte slices. It is safe for concurrent use.
type Detector struct {
	rules   []*rule
	kw      *keywordMatcher
	kwRules [][]int // keyword index -> rule indexes
	fpKey   []byte
}

// NewDetector compiles the built-in rules. fingerprintKey keys the HMAC of
// Finding.Fingerprint; nil means DefaultFingerprintKey.
func NewDetector(fingerprintKey []byte) *Detector {
	if len(fingerprintKey) == 0 {
		fingerprintKey = []byte(DefaultFingerprintKey)
	}
	d := &Detector{rules: builtinRules(), fpKey: fingerprintKey}
	idx := map[string]int{}
	var kws []string
	for ri, r := range d.rules {
		for _, k := range r.keywords {
			k = strings.ToLower(k)
			i, ok := idx[k]
			if !ok {
				i = len(kws)
				idx[k] = i
				kws = append(kws, k)
				d.kwRules = append(d.kwRules, nil)
			}
			d.kwRules[i] = append(d.kwRules[i], ri)
		}
	}
	d.kw = newKeywordMatcher(kws)
	return d
}

// RuleInfo describes one built-in rule, for documentation and SARIF.
type RuleInfo struct {
	ID          string
	Description string
	Source      string
	Keywords    []string
}

// Rules lists the built-in rules.
func (d *Detector) Rules() []RuleInfo {
	out := make([]RuleInfo, 0, len(d.rules)+2)
	for _, r := range d.rules {
		out = append(out, RuleInfo{r.id, r.desc, r.source, r.keywords})
	}
	out = append(out,
		RuleInfo{"dotenv-secret", "secret-named variable in a .env file", "https://hexdocs.pm/dotenvy/dotenv-file-format.html", nil},
		RuleInfo{"kubernetes-secret-data", "base64 value in the data of a Kubernetes Secret", "https://kubernetes.io/docs/concepts/configuration/secret/", nil})
	return out
}

// candidate is a credential before line numbers and redaction.
type candidate struct {
	rule   *rule
	id     string // overrides rule.id
	start  int
	end    int
	secret []byte
	high   bool
	rem    *Remediation // overrides rule.remediation
}

// fileScan is the state of scanning one buffer.
type fileScan struct {
	d     *Detector
	path  string
	data  []byte
	cands []candidate
}

func (s *fileScan) emit(c candidate) { s.cands = append(s.cands, c) }

// Scan returns the findings in data, which came from path (the path picks
// the structural parsers: .env files, Kubernetes manifests). Findings are
// ordered by line.
func (d *Detector) Scan(path string, data []byte) []Finding {
	s := &fileScan{d: d, path: path, data: data}
	s.collect()
	return s.findings()
}

// collect runs the prefilter and every rule with hits, filling s.cands.
func (s *fileScan) collect() {
	d, data, path := s.d, s.data, s.path
	hits := make([][]int, len(d.rules))
	d.kw.find(data, func(kw, start int) {
		for _, ri := range d.kwRules[kw] {
			hits[ri] = append(hits[ri], start)
		}
	})
	dotenv := isDotenvPath(path)
	for ri, h := range hits {
		if len(h) == 0 {
			continue
		}
		r := d.rules[ri]
		if dotenv && r.id == "generic-secret" {
			continue // the dotenv parser covers these lines structurally
		}
		if r.find != nil {
			r.find(s, r, h)
		} else {
			findRegex(s, r, h)
		}
	}
	if dotenv {
		findDotenv(s)
	}
	if isManifestPath(path) && bytes.Contains(data, []byte("Secret")) {
		findK8sSecrets(s)
	}
}

// findings resolves overlaps, drops stint:ignore lines and builds Findings.
func (s *fileScan) findings() []Finding {
	if len(s.cands) == 0 {
		return nil
	}
	c := s.cands
	sort.SliceStable(c, func(i, j int) bool {
		if c[i].start != c[j].start {
			return c[i].start < c[j].start
		}
		return c[i].rule.priority > c[j].rule.priority
	})
	// Among overlapping candidates keep the highest priority one, so a
	// typed rule wins over the generic one for the same bytes.
	kept := c[:0:0]
	for _, x := range c {
		if n := len(kept); n > 0 && x.start < kept[n-1].end {
			if x.rule.priority > kept[n-1].rule.priority {
				kept[n-1] = x
			}
			continue
		}
		kept = append(kept, x)
	}
	out := make([]Finding, 0, len(kept))
	line, pos := 1, 0
	for _, x := range kept {
		line += bytes.Count(s.data[pos:x.start], []byte{'\n'})
		pos = x.start
		ls := bytes.LastIndexByte(s.data[:x.start], '\n') + 1
		le := bytes.IndexByte(s.data[x.start:], '\n')
		if le < 0 {
			le = len(s.data)
		} else {
			le += x.start
		}
		if bytes.Contains(s.data[ls:le], []byte("stint:ignore")) {
			continue
		}
		f := Finding{
			RuleID:      x.rule.id,
			Description: x.rule.desc,
			File:        s.path,
			Line:        line,
			Column:      x.start - ls + 1,
			Redacted:    redact(x.secret),
			Fingerprint: fingerprint(s.d.fpKey, x.secret),
			Confidence:  "medium",
			Remediation: x.rule.remediation,
		}
		if x.id != "" {
			f.RuleID = x.id
		}
		if x.high {
			f.Confidence = "high"
		}
		if x.rem != nil {
			f.Remediation = *x.rem
		}
		out = append(out, f)
	}
	return out
}

// isDotenvPath reports whether the file is a dotenv file by name.
func isDotenvPath(p string) bool {
	b := filepath.Base(p)
	return b == ".env" || strings.HasPrefix(b, ".env.") || strings.HasSuffix(b, ".env")
}

// isManifestPath reports whether the file may hold Kubernetes manifests.
func isManifestPath(p string) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}
