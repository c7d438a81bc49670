package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/scan"
)

// maxReportFindings mirrors the server's bound on one inventory report.
const maxReportFindings = 10000

// inventoryReport is `stint scan --report-to`: where and as whom findings
// are posted to the inventory.
type inventoryReport struct {
	url, source string
	id          identityFlags
}

func (r *inventoryReport) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.url, "report-to", "", "post the findings (all of them, baseline or not) to this stint server's inventory, as the full snapshot of --source")
	cmd.Flags().StringVar(&r.source, "source", "", "inventory label of what was scanned, e.g. the repository URL (with --report-to)")
	r.id.add(cmd)
}

// check refuses a half-given report before the scan runs.
func (r *inventoryReport) check() error {
	if r.url == "" && r.source != "" {
		return fmt.Errorf("scan: --source needs --report-to URL")
	}
	if r.url != "" && r.source == "" {
		return fmt.Errorf("scan: --report-to needs --source NAME (the label findings are kept under)")
	}
	return nil
}

// send posts findings as the caller's identity and says what changed.
func (r *inventoryReport) send(ctx context.Context, w io.Writer, findings []scan.Finding) error {
	if len(findings) > maxReportFindings {
		return fmt.Errorf("scan: --report-to: %d findings exceed the report limit of %d; scan smaller sources", len(findings), maxReportFindings)
	}
	tok, err := r.id.token()
	if err != nil {
		return err
	}
	rep := client.InventoryReport{Source: r.source, Findings: make([]client.InventoryFinding, len(findings))}
	for i, f := range findings {
		rep.Findings[i] = client.InventoryFinding{RuleID: f.RuleID, File: f.File, Line: f.Line, Commit: f.Commit,
			Redacted: f.Redacted, Fingerprint: f.Fingerprint, PresentAtHead: f.PresentAtHead}
	}
	d, err := client.New(r.url, nil).ReportInventory(ctx, tok, rep)
	if err != nil {
		return fmt.Errorf("scan: report to inventory: %w", err)
	}
	fmt.Fprintf(w, "inventory %s: %d new, %d still present, %d reopened, %d remediated\n",
		r.source, d.New, d.Present, d.Reopened, d.Remediated)
	return nil
}

// newInventoryCmd builds `stint inventory`: the admin's view of the
// credential inventory that `stint scan --report-to` fills.
func newInventoryCmd(g *globals) *cobra.Command {
	var id identityFlags
	var f client.InventoryFilter
	var asJSON bool
	cmd := &cobra.Command{Use: "inventory", Short: "Static credentials reported by stint scan (admin)"}
	list := &cobra.Command{
		Use: "list", Short: "List inventory findings: where, since when, remediated when", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, err := id.token()
			if err != nil {
				return err
			}
			es, err := g.client().Inventory(cmd.Context(), tok, f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), es)
			}
			return writeInventory(cmd.OutOrStdout(), es)
		},
	}
	list.Flags().StringVar(&f.State, "state", "", "only open or remediated findings")
	list.Flags().StringVar(&f.Source, "source", "", "only findings of this source")
	list.Flags().StringVar(&f.Rule, "rule", "", "only findings of this rule, e.g. aws-access-key-id")
	list.Flags().StringVar(&f.Fingerprint, "fingerprint", "", "only findings of this fingerprint (the same secret everywhere)")
	list.Flags().IntVar(&f.Limit, "limit", 1000, "at most this many findings (up to 10000)")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	id.add(list)
	cmd.AddCommand(list)
	return cmd
}

func writeInventory(w io.Writer, es []client.InventoryEntry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tSTATE\tRULE\tLOCATION\tREDACTED\tFINGERPRINT\tFIRST SEEN\tLAST SEEN\tREMEDIATED")
	day := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	for _, e := range es {
		rem := "-"
		if e.RemediatedAt != nil {
			rem = day(*e.RemediatedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%d\t%s\t%s\t%s\t%s\t%s\n", e.Source, e.State, e.RuleID, e.File, e.Line,
			e.Redacted, e.Fingerprint, day(e.FirstSeen), day(e.LastSeen), rem)
	}
	return tw.Flush()
}
