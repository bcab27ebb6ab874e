package policy

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the rule table in docs/security.md")

const (
	securityDoc = "../docs/security.md"
	tableBegin  = "<!-- rule table: generated from policy.Rules() by `go test ./policy -update` -->\n"
	tableEnd    = "<!-- end of rule table -->\n"
)

// ruleTable renders Rules() as the Markdown table docs/security.md shows.
func ruleTable() string {
	var b strings.Builder
	b.WriteString("| Rule | Severity | What it requires, and why | Checkov, Trivy, Security Hub |\n| --- | --- | --- | --- |\n")
	for _, r := range Rules() {
		controls := "—"
		if len(r.Controls) > 0 {
			controls = strings.Join(r.Controls, ", ")
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.ID, r.Severity, strings.ReplaceAll(r.Rationale, "|", `\|`), controls)
	}
	return b.String()
}

// docs/security.md's rule table is Rules(), so it cannot drift.
func TestSecurityDocRuleTable(t *testing.T) {
	data, err := os.ReadFile(securityDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	begin, end := strings.Index(doc, tableBegin), strings.Index(doc, tableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s has no rule table between %q and %q", securityDoc, tableBegin, tableEnd)
	}
	want := ruleTable()
	got := doc[begin+len(tableBegin) : end]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(securityDoc, []byte(doc[:begin+len(tableBegin)]+want+doc[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s's rule table differs from Rules(); run go test ./policy -update", securityDoc)
}
