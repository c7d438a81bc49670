package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"
)

// SortFindings orders findings by file, line and rule.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.RuleID < b.RuleID
	})
}

// WriteTable writes findings for people, grouped by file.
func WriteTable(w io.Writer, fs []Finding) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	last := ""
	for _, f := range fs {
		if f.File != last {
			if last != "" {
				fmt.Fprintln(tw)
			}
			fmt.Fprintf(tw, "%s\n", f.File)
			last = f.File
		}
		where := fmt.Sprintf("  %d:%d", f.Line, f.Column)
		extra := ""
		if f.Commit != "" {
			extra = fmt.Sprintf("\tcommit %.12s %s %s", f.Commit, f.Author, f.Date)
			if f.PresentAtHead != nil && !*f.PresentAtHead {
				extra += " (gone at HEAD)"
			}
		}
		tt := f.Remediation.TargetType
		if tt == "" {
			tt = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s → %s%s\n", where, f.RuleID, f.Redacted, f.Fingerprint[:12], tt, f.Remediation.Pattern, extra)
	}
	if len(fs) > 0 {
		fmt.Fprintf(tw, "\n%d finding(s). Fingerprints are HMAC-SHA256 prefixes; secrets are never printed.\n", len(fs))
	}
	return tw.Flush()
}

// Report is the JSON document of a scan.
type Report struct {
	Version  int       `json:"version"`
	Stats    Stats     `json:"stats"`
	Findings []Finding `json:"findings"`
}

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r Report) error {
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	r.Version = 1
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteSARIF writes findings as SARIF 2.1.0 for code-scanning UIs.
func WriteSARIF(w io.Writer, fs []Finding, rules []RuleInfo) error {
	type msg struct {
		Text string `json:"text"`
	}
	type sarifRule struct {
		ID               string `json:"id"`
		ShortDescription msg    `json:"shortDescription"`
		HelpURI          string `json:"helpUri,omitempty"`
	}
	type region struct {
		StartLine   int `json:"startLine"`
		StartColumn int `json:"startColumn"`
	}
	type loc struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI string `json:"uri"`
			} `json:"artifactLocation"`
			Region region `json:"region"`
		} `json:"physicalLocation"`
	}
	type result struct {
		RuleID              string            `json:"ruleId"`
		Level               string            `json:"level"`
		Message             msg               `json:"message"`
		Locations           []loc             `json:"locations"`
		PartialFingerprints map[string]string `json:"partialFingerprints"`
	}
	var srules []sarifRule
	for _, r := range rules {
		u := r.Source
		if !strings.HasPrefix(u, "http") {
			u = ""
		}
		srules = append(srules, sarifRule{ID: r.ID, ShortDescription: msg{r.Description}, HelpURI: u})
	}
	results := []result{}
	for _, f := range fs {
		var l loc
		l.PhysicalLocation.ArtifactLocation.URI = strings.TrimPrefix(f.File, "./")
		l.PhysicalLocation.Region = region{StartLine: max(f.Line, 1), StartColumn: max(f.Column, 1)}
		level := "warning"
		if f.Confidence == "high" {
			level = "error"
		}
		results = append(results, result{
			RuleID: f.RuleID, Level: level,
			Message:             msg{fmt.Sprintf("%s (%s). Replace with %s: %s", f.Description, f.Redacted, f.Remediation.Pattern, f.Remediation.Summary)},
			Locations:           []loc{l},
			PartialFingerprints: map[string]string{"stintSecret/v1": f.Fingerprint},
		})
	}
	doc := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs": []any{map[string]any{
			"tool": map[string]any{"driver": map[string]any{
				"name": "stint scan", "informationUri": "https://github.com/stint-dev/stint", "rules": srules,
			}},
			"results": results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// Baseline is a set of accepted findings, matched by fingerprint.
type Baseline struct {
	Version  int             `json:"version"`
	Findings []BaselineEntry `json:"findings"`
}

// BaselineEntry records one accepted finding; only Fingerprint is matched,
// the rest helps a reviewer.
type BaselineEntry struct {
	Fingerprint string `json:"fingerprint"`
	RuleID      string `json:"rule_id"`
	File        string `json:"file"`
	Line        int    `json:"line"`
}

// LoadBaseline reads a baseline file into a fingerprint set.
func LoadBaseline(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scan: baseline: %w", err)
	}
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("scan: baseline %s: %w", path, err)
	}
	set := make(map[string]bool, len(b.Findings))
	for _, e := range b.Findings {
		set[e.Fingerprint] = true
	}
	return set, nil
}

// WriteBaseline writes findings as a baseline file.
func WriteBaseline(path string, fs []Finding) error {
	b := Baseline{Version: 1, Findings: []BaselineEntry{}}
	for _, f := range fs {
		b.Findings = append(b.Findings, BaselineEntry{f.Fingerprint, f.RuleID, f.File, f.Line})
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("scan: baseline: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("scan: baseline: %w", err)
	}
	return nil
}

// fixTarget and fixPolicy are config snippets in the shape of stint's
// config file (targets:, policies:).
type fixTarget struct {
	Name    string         `yaml:"name"`
	Type    string         `yaml:"type"`
	Comment string         `yaml:"-"`
	Fields  map[string]any `yaml:",inline"`
}

type fixPolicy struct {
	Name   string   `yaml:"name"`
	Grants []string `yaml:"grants"`
	MaxTTL string   `yaml:"max_ttl"`
	When   string   `yaml:"when"`
}

// WriteFixPlan writes YAML config snippets: one target per kind of
// credential found, a policy rule granting it, and the places to change.
func WriteFixPlan(w io.Writer, fs []Finding) error {
	type entry struct {
		target fixTarget
		files  map[string]bool
	}
	byType := map[string]*entry{}
	var order []string
	for _, f := range fs {
		tt := f.Remediation.TargetType
		if tt == "" {
			continue
		}
		e, ok := byType[tt+"/"+f.RuleID]
		if !ok {
			e = &entry{target: fixTarget{Name: strings.ReplaceAll(f.RuleID, "-", "_"), Type: tt, Fields: fixFields(tt, f.RuleID)}, files: map[string]bool{}}
			byType[tt+"/"+f.RuleID] = e
			order = append(order, tt+"/"+f.RuleID)
		}
		e.files[fmt.Sprintf("%s:%d (%s)", f.File, f.Line, f.Fingerprint[:12])] = true
	}
	sort.Strings(order)
	var doc struct {
		Targets  []fixTarget `yaml:"targets"`
		Policies []fixPolicy `yaml:"policies"`
	}
	var notes []string
	for _, k := range order {
		e := byType[k]
		doc.Targets = append(doc.Targets, e.target)
		role := "default"
		doc.Policies = append(doc.Policies, fixPolicy{
			Name: "allow-" + e.target.Name, Grants: []string{e.target.Name + "/" + role}, MaxTTL: "15m",
			When: `identity.provider == "CHANGE-ME" && identity.service_account == "CHANGE-ME"`,
		})
		var files []string
		for f := range e.files {
			files = append(files, f)
		}
		sort.Strings(files)
		notes = append(notes, fmt.Sprintf("# %s (%s): replace the static credential at:\n#   %s", e.target.Name, e.target.Type, strings.Join(files, "\n#   ")))
	}
	fmt.Fprintln(w, "# stint scan --fix-plan: review, fill in the CHANGE-ME values and merge into the stint config.")
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("scan: fix plan: %w", err)
	}
	return enc.Close()
}

// fixFields returns the type-specific target fields, with secrets by
// reference only.
func fixFields(targetType, ruleID string) map[string]any {
	switch targetType {
	case "http":
		return map[string]any{"upstream": "https://CHANGE-ME (API base URL for " + ruleID + ")",
			"credential": map[string]any{"header": "Authorization", "secret_file": "/etc/stint/secrets/" + ruleID},
			"roles":      map[string]any{"default": map[string]any{"methods": []string{"GET", "POST"}, "paths": []string{"/**"}}}}
	case "postgres":
		return map[string]any{"dsn": "postgres://stint_admin@CHANGE-ME/DB", "password_file": "/etc/stint/secrets/pg-admin",
			"roles": map[string]any{"default": map[string]any{
				"creation":    "CREATE ROLE \"{{.Name}}\" LOGIN PASSWORD '{{.Password}}' VALID UNTIL '{{.Expiration}}';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{.Name}}\";\n",
				"revocation":  "DROP ROLE IF EXISTS \"{{.Name}}\";\n",
				"default_ttl": "15m"}}}
	case "mysql":
		return map[string]any{"dsn": "stint_admin@tcp(CHANGE-ME:3306)/", "password_file": "/etc/stint/secrets/mysql-admin",
			"roles": map[string]any{"default": map[string]any{
				"creation":    "CREATE USER '{{.Name}}'@'%' IDENTIFIED BY '{{.Password}}';\nGRANT SELECT ON DB.* TO '{{.Name}}'@'%';\n",
				"revocation":  "DROP USER IF EXISTS '{{.Name}}'@'%';\n",
				"default_ttl": "15m"}}}
	case "aws-sts":
		return map[string]any{"roles": map[string]any{"default": map[string]any{"role_arn": "arn:aws:iam::CHANGE-ME:role/CHANGE-ME", "default_ttl": "15m"}}}
	case "ssh":
		return map[string]any{"roles": map[string]any{"default": map[string]any{"principals": []string{"CHANGE-ME"}, "default_ttl": "10m"}}}
	case "x509":
		return map[string]any{"roles": map[string]any{"default": map[string]any{"common_name": "CHANGE-ME", "default_ttl": "1h"}}}
	case "jwt":
		return map[string]any{"roles": map[string]any{"default": map[string]any{"audience": "CHANGE-ME", "scopes": []string{}, "default_ttl": "10m"}}}
	}
	return map[string]any{}
}

// ErrFindings is returned by the CLI when credentials were found, so the
// process exits 1 and CI can gate on it.
var ErrFindings = errors.New("scan: credentials found")
