package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzStackFile feeds arbitrary stack files through reading, parsing and validation: nothing may
// panic, and every rejection must name the file and a key.
func FuzzStackFile(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/invalid/*.yaml")
	examples, _ := filepath.Glob("../stacks/*.yaml")
	for _, file := range append(seeds, examples...) {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("config:\n  llm-sandbox:pools: {a: {models: [1, {x: y}], schedule: []}}\n"))
	f.Add([]byte("config:\n  llm-sandbox:network: [1, 2]\n  llm-sandbox:tags: {k: [v]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		values, err := StackFileValues(data)
		if err != nil {
			return // not YAML: reported as a file error, not a key
		}
		checkParse(t, values)
	})
}

// FuzzValues feeds arbitrary engine values (as `pulumi config set` could store them).
func FuzzValues(f *testing.F) {
	f.Add("network", `{"cidr":"10.0.0.0/16"}`)
	f.Add("pools", `{"gpu":{"models":["llama3.1:8b"],"schedule":{"timezone":"x"}}}`)
	f.Add("access", `{"mode":"public","allowedCidrs":["0.0.0.0/0"]}`)
	f.Add("tags", `[`)
	f.Fuzz(func(t *testing.T, key, value string) {
		values := Values{
			"aws:region":             "ca-central-1",
			"llm-sandbox:department": "chem",
			"llm-sandbox:network":    `{"cidr":"10.20.0.0/16"}`,
			"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
		}
		values["llm-sandbox:"+key] = value
		checkParse(t, values)
	})
}

func checkParse(t *testing.T, values Values) {
	t.Helper()
	const source = "stacks/Pulumi.fuzz.yaml"
	spec, err := Parse("fuzz", source, values)
	if err == nil {
		if spec == nil || len(spec.Pools) == 0 || spec.Department == "" {
			t.Fatalf("accepted an incomplete spec: %+v", spec)
		}
		return
	}
	var ps Problems
	if !errors.As(err, &ps) || len(ps) == 0 {
		t.Fatalf("rejection is not a list of problems: %v", err)
	}
	for _, p := range ps {
		if p.Source != source || p.Path == "" || p.Message == "" {
			t.Fatalf("rejection does not name the file and a key: %+v", p)
		}
	}
}
