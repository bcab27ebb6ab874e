package config

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// docs/config.md documents every key of the stack-file contract and every catalog entry.
func TestConfigDocsNameEveryKey(t *testing.T) {
	data, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	paths := []string{"`aws:region`"}
	for _, k := range topLevelKeys {
		paths = append(paths, "`"+k+"`")
	}
	sections := map[string][]string{
		"network": networkKeys, "access": accessKeys, "pools.<name>": poolKeys,
		"pools.<name>.schedule": scheduleKeys, "gateway": gatewayKeys, "alerts": alertsKeys, "teams.<name>": teamKeys,
		"artifacts": artifactKeys,
	}
	for prefix, keys := range sections {
		for _, k := range keys {
			paths = append(paths, "`"+prefix+"."+k+"`")
		}
	}
	for _, tag := range catalog.ModelTags() {
		paths = append(paths, "| `"+tag+"` |")
	}
	for _, typ := range catalog.InstanceTypes() {
		paths = append(paths, "| `"+typ+"` |")
	}
	for _, p := range paths {
		if !strings.Contains(doc, p) {
			t.Errorf("docs/config.md does not document %s", p)
		}
	}
}

// docs/deploy.md's quota table matches what the example stacks need.
func TestDeployDocsQuotaTable(t *testing.T) {
	data, err := os.ReadFile("../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	stacks, err := Stacks("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stacks {
		spec, err := Load("..", s)
		if err != nil {
			t.Fatal(err)
		}
		q := spec.QuotaNeeds()
		var row string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "| "+s+" ") {
				row = line
			}
		}
		want := fmt.Sprintf("| %d | %d | %d | %d |", q.OnDemandG, q.SpotG, q.OnDemandStandard, q.SpotStandard)
		if !strings.HasSuffix(strings.TrimSpace(row), want) {
			t.Errorf("docs/deploy.md row for %s is %q, want it to end %q", s, row, want)
		}
	}
}

// docs/gateway.md works the formula through for chemistry with the figures the code gives.
func TestGatewayDocsSizingExample(t *testing.T) {
	data, err := os.ReadFile("../docs/gateway.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(data)), " ")
	spec, err := Load("..", "chemistry")
	if err != nil {
		t.Fatal(err)
	}
	z := spec.GatewaySizing()
	c7i, _ := catalog.LookupInstance("c7i.large")
	t3, _ := catalog.LookupInstance("t3.large")
	for _, want := range []string{
		poolFormulas(spec, z, true),
		poolFormulas(spec, z, false),
		nodeFormula(c7i),
		nodeFormula(t3),
		fmt.Sprintf("| Nodes needed at `maxSize` / `minSize` | %d / %d (either type) |", z.MaxNodes, z.MinNodes),
		fmt.Sprintf("One busy vCPU carries 1000 / %s ≈ %s tokens/s", tokens(catalog.GatewayCPUMillisPerToken), tokens(catalog.GatewayTokensPerVCPU())),
		fmt.Sprintf("**CPU share: %d %%.**", catalog.GatewayCPUHeadroomPercent),
		fmt.Sprintf("**g5 (A10G): %s tokens/s per stream**", tokens(catalog.ReferenceStreamTokensPerSecond)),
		fmt.Sprintf("**CPU types: %s tokens/s per stream**", tokens(catalog.CPUStreamTokensPerSecond)),
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/gateway.md, Sizing, lacks %q", want)
		}
	}
}

// docs/config.md's instance table shows each type's per-stream and gateway figures as the
// catalog computes them.
func TestConfigDocsSizingColumns(t *testing.T) {
	data, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if typ, ok := strings.CutPrefix(line, "| `"); ok {
			if typ, _, ok := strings.Cut(typ, "` |"); ok {
				rows[typ] = line
			}
		}
	}
	for _, typ := range catalog.InstanceTypes() {
		i, _ := catalog.LookupInstance(typ)
		gw := "—"
		if !i.HasGPU() {
			gw = tokens(i.GatewayTokensPerSecond())
			if i.Burstable() {
				gw += fmt.Sprintf(" (baseline %d %%)", i.BaselineCPUPercent)
			}
		}
		want := fmt.Sprintf("| %s | %s |", tokens(i.StreamTokensPerSecond()), gw)
		if !strings.HasSuffix(rows[typ], want) {
			t.Errorf("docs/config.md row for %s is %q, want it to end %q", typ, rows[typ], want)
		}
	}
}
