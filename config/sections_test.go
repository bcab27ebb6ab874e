package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// parseAccess parses a stack whose access section is given, with the tags given.
func parseAccess(t *testing.T, access, tags string) error {
	t.Helper()
	_, err := parseWith(t, access, tags)
	return err
}

// parseWith parses a stack whose access section is given, followed by the top-level keys in
// rest.
func parseWith(t *testing.T, access, rest string) (*Spec, error) {
	t.Helper()
	doc := `config:
  aws:region: ca-central-1
  llm-sandbox:department: chemistry
  llm-sandbox:network:
    cidr: 10.20.0.0/16
  llm-sandbox:access:
` + access + `
  llm-sandbox:pools:
    gpu:
      models: [llama3.1:8b]
` + rest
	values, err := StackFileValues([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return Parse("chemistry", "stacks/Pulumi.chemistry.yaml", values)
}

const publicHTTPS = `    mode: public
    certificateArn: arn:aws:acm:ca-central-1:123456789012:certificate/8f2b6c1e-4d3a-4b7e-9c1d-2a5e6f7b8c9d
`

func cidrList(n int) string {
	var s []string
	for i := range n {
		s = append(s, fmt.Sprintf("142.103.%d.0/24", i))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// The limits are boundaries: the widest list validate accepts is accepted, and one step beyond
// is refused (the refusals are the testdata/invalid files).
func TestAccessAndTagLimitsAcceptTheirBoundary(t *testing.T) {
	tags45 := "  llm-sandbox:tags:\n"
	for i := range 45 {
		tags45 += fmt.Sprintf("    Tag%02d: v%d\n", i, i)
	}
	for _, tc := range []struct {
		name, access, tags string
		ok                 bool
	}{
		{"a /8 exactly", publicHTTPS + "    allowedCidrs: [11.0.0.0/8]", "", true},
		{"a /8 and a /16 beside it", publicHTTPS + "    allowedCidrs: [11.0.0.0/8, 12.0.0.0/16]", "", false},
		{"ranges inside a /8, overlapping", publicHTTPS + "    allowedCidrs: [11.0.0.0/9, 11.0.0.0/8, 11.128.0.0/9]", "", true},
		{"halves with allowAnywhere", publicHTTPS + "    allowAnywhere: true\n    allowedCidrs: [0.0.0.0/1, 128.0.0.0/1]", "", true},
		{"30 ranges over HTTPS", publicHTTPS + "    allowedCidrs: " + cidrList(30), "", true},
		{"31 ranges over HTTPS", publicHTTPS + "    allowedCidrs: " + cidrList(31), "", false},
		{"59 ranges internal over HTTP, with the VPC's", "    mode: internal\n    plainHttp: true\n    allowedCidrs: " + cidrList(59), "", true},
		{"60 ranges internal over HTTP, with the VPC's", "    mode: internal\n    plainHttp: true\n    allowedCidrs: " + cidrList(60), "", false},
		{"45 tags", publicHTTPS + "    allowedCidrs: [142.103.0.0/16]", tags45, true},
		{"46 tags", publicHTTPS + "    allowedCidrs: [142.103.0.0/16]", tags45 + "    Tag45: v\n", false},
		{"unicode tag value", publicHTTPS + "    allowedCidrs: [142.103.0.0/16]", "  llm-sandbox:tags:\n    Owner: Département de chimie\n", true},
	} {
		err := parseAccess(t, tc.access, tc.tags)
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// alerts.emails reaches the Spec in file order; without the key there is nobody to mail.
func TestAlertsEmailsReachTheSpec(t *testing.T) {
	parse := func(alerts string) *Spec {
		t.Helper()
		spec, err := parseWith(t, "    mode: internal", alerts)
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	got := parse("  llm-sandbox:alerts:\n    emails: [lab@chem.example.edu, Chem-Ops@example.edu]\n").Alerts.Emails
	if want := []string{"lab@chem.example.edu", "Chem-Ops@example.edu"}; !slices.Equal(got, want) {
		t.Errorf("alerts.emails = %q, want %q", got, want)
	}
	if got := parse("").Alerts.Emails; len(got) != 0 {
		t.Errorf("no alerts key: emails = %q, want none", got)
	}
}
