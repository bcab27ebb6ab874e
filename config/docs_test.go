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
		"pools.<name>.schedule": scheduleKeys, "gateway": gatewayKeys, "alerts": alertsKeys,
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
