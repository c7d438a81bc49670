package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/internal/scan"
)

// newScanCmd builds `stint scan`: find hardcoded credentials in files,
// trees and git history, and say which stint pattern replaces each.
func newScanCmd() *cobra.Command {
	var (
		format, output, baseline, writeBaseline, fixPlan, keyEnv string
		useGit, noGitignore                                      bool
		maxSize                                                  int64
		workers                                                  int
		report                                                   inventoryReport
	)
	cmd := &cobra.Command{
		Use:   "scan [PATH…]",
		Short: "Find hardcoded credentials and plan their replacement with stint",
		Long: `Scan files, directories (respecting .gitignore), .env files, Kubernetes
Secrets and, with --git, every blob in a repository's history for hardcoded
credentials. Secrets are never printed: only a redacted form and an
HMAC-SHA256 fingerprint. Exits 1 when findings remain after the baseline
and stint:ignore comments.`,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			switch format {
			case "table", "json", "sarif":
			default:
				return fmt.Errorf("scan: --format %q: want table, json or sarif", format)
			}
			if err := report.check(); err != nil {
				return err
			}
			var suppress map[string]bool
			if baseline != "" {
				var err error
				if suppress, err = scan.LoadBaseline(baseline); err != nil {
					return err
				}
			}
			s := scan.New(scan.Options{MaxFileSize: maxSize, Workers: workers,
				FingerprintKey: []byte(os.Getenv(keyEnv)), NoGitignore: noGitignore})
			var findings, all []scan.Finding
			emit := func(f scan.Finding) {
				all = append(all, f)
				if !suppress[f.Fingerprint] {
					findings = append(findings, f)
				}
			}
			var st scan.Stats
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			for _, p := range args {
				var ps scan.Stats
				var err error
				if useGit {
					ps, err = s.ScanGit(ctx, p, emit)
				} else {
					ps, err = s.ScanPaths(ctx, []string{p}, emit)
				}
				if err != nil {
					return err
				}
				st.Files += ps.Files
				st.Bytes += ps.Bytes
				st.Skipped += ps.Skipped
			}
			scan.SortFindings(findings)
			if report.url != "" {
				// The inventory tracks what exists, so baselined findings count too.
				if err := report.send(ctx, cmd.ErrOrStderr(), all); err != nil {
					return err
				}
			}
			if writeBaseline != "" {
				if err := scan.WriteBaseline(writeBaseline, findings); err != nil {
					return err
				}
			}
			if fixPlan != "" {
				f, err := os.Create(fixPlan)
				if err != nil {
					return fmt.Errorf("scan: fix plan: %w", err)
				}
				err = scan.WriteFixPlan(f, findings)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
			}
			var w io.Writer = cmd.OutOrStdout()
			if output != "" && output != "-" {
				f, err := os.Create(output)
				if err != nil {
					return fmt.Errorf("scan: output: %w", err)
				}
				defer f.Close()
				w = f
			}
			var err error
			switch format {
			case "json":
				err = scan.WriteJSON(w, scan.Report{Stats: st, Findings: findings})
			case "sarif":
				err = scan.WriteSARIF(w, findings, s.Detector().Rules())
			default:
				err = scan.WriteTable(w, findings)
				if len(findings) == 0 {
					fmt.Fprintf(w, "no credentials found in %d files (%d bytes)\n", st.Files, st.Bytes)
				}
			}
			if err != nil {
				return fmt.Errorf("scan: write report: %w", err)
			}
			if len(findings) > 0 && writeBaseline == "" {
				return fmt.Errorf("%w: %d", scan.ErrFindings, len(findings))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "table", "output format: table, json or sarif")
	fl.StringVarP(&output, "output", "o", "", "write the report to FILE instead of stdout")
	fl.BoolVar(&useGit, "git", false, "scan the git history of each PATH (a repository), every blob once")
	fl.StringVar(&baseline, "baseline", "", "suppress findings whose fingerprint is in this baseline file")
	fl.StringVar(&writeBaseline, "write-baseline", "", "write the findings to this baseline file (and exit 0)")
	fl.StringVar(&fixPlan, "fix-plan", "", "write YAML stint config snippets (targets, policies) that replace the findings")
	fl.Int64Var(&maxSize, "max-file-size", 10<<20, "skip files larger than this many bytes")
	fl.IntVar(&workers, "workers", 0, "files scanned in parallel (default: number of CPUs)")
	fl.BoolVar(&noGitignore, "no-gitignore", false, "also scan files that .gitignore excludes")
	fl.StringVar(&keyEnv, "fingerprint-key-env", "STINT_SCAN_FINGERPRINT_KEY", "environment variable holding the HMAC key for fingerprints")
	report.add(cmd)
	return cmd
}
