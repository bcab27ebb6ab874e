package rules

import (
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
)

// check runs a rule over values it must accept and values it must refuse; a refusal must quote
// the value so that the message shows what was found.
func check(t *testing.T, name string, rule func(string) string, good, bad []string) {
	t.Helper()
	for _, v := range good {
		if msg := rule(v); msg != "" {
			t.Errorf("%s(%q) = %q, want it accepted", name, v, msg)
		}
	}
	for _, v := range bad {
		msg := rule(v)
		if msg == "" {
			t.Errorf("%s(%q) accepted it, want a problem", name, v)
		} else if !strings.Contains(msg, "got") {
			t.Errorf("%s(%q) = %q, want the value found in the message", name, v, msg)
		}
	}
}

func TestRegion(t *testing.T) {
	check(t, "Region", Region,
		[]string{"ca-central-1", "us-east-1", "ap-southeast-2", "ap-southeast-7", "il-central-1", "mx-central-1",
			"us-gov-west-1", "cn-north-1", "cn-northwest-1", "us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1",
			"us-isof-south-1", "eusc-de-east-1", "me-central-1", "af-south-1"},
		[]string{"", "ca-central", "Ca-central-1", "canada-central-1", "ca-central-1a", "us-east-1-bos-1",
			"xx-central-1", "us-foo-bar-1", "us-gov-west", " ca-central-1", "eu-iso-west-1", "eusc-fr-east-1"})
}

func TestPartition(t *testing.T) {
	for region, want := range map[string]string{
		"ca-central-1": "aws", "us-east-1": "aws", "cn-north-1": "aws-cn", "us-gov-west-1": "aws-us-gov",
		"us-iso-east-1": "aws-iso", "us-isob-east-1": "aws-iso-b", "eu-isoe-west-1": "aws-iso-e",
		"us-isof-south-1": "aws-iso-f", "eusc-de-east-1": "aws-eusc",
	} {
		if got := Partition(region); got != want {
			t.Errorf("Partition(%s) = %s, want %s", region, got, want)
		}
	}
}

func TestDepartment(t *testing.T) {
	check(t, "Department", Department,
		[]string{"chemistry", "ch", "cs-2", "a0", strings.Repeat("a", 32)},
		[]string{"", "c", "Chemistry", "2chem", "-chem", "chem-", "chem_lab", "chem.lab", strings.Repeat("a", 33), "chém"})
}

func TestPoolName(t *testing.T) {
	check(t, "PoolName", PoolName,
		[]string{"gpu", "g", "chat-2", strings.Repeat("p", 20)},
		[]string{"", "GPU", "1gpu", "gpu-", "gpu_pool", strings.Repeat("p", 21)})
}

func TestModelPoolName(t *testing.T) {
	check(t, "ModelPoolName", ModelPoolName,
		[]string{"gpu", "g", "gateways", "gateway-2", strings.Repeat("p", 20)},
		[]string{"", "GPU", "gpu_pool", "gateway", strings.Repeat("p", 21)})
	if msg := ModelPoolName(llmmetrics.PoolGateway); msg == "" {
		t.Errorf("ModelPoolName accepts %q, the gateway's Pool dimension", llmmetrics.PoolGateway)
	}
}

func TestTeamName(t *testing.T) {
	check(t, "TeamName", TeamName,
		[]string{"students", "s", "ci", "phd-2026", strings.Repeat("t", 32)},
		[]string{"", "Students", "2026", "ta-", "ta_group", "ta.group", strings.Repeat("t", 33)})
}

func TestACMCertificateARN(t *testing.T) {
	const arn = "arn:aws:acm:ca-central-1:123456789012:certificate/8f2b6c1e-4d3a-4b7e-9c1d-2a5e6f7b8c9d"
	if msg := ACMCertificateARN(arn, "ca-central-1"); msg != "" {
		t.Errorf("a certificate in the region: %s", msg)
	}
	if msg := ACMCertificateARN(arn, ""); msg != "" {
		t.Errorf("no region to compare with: %s", msg)
	}
	if msg := ACMCertificateARN("arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/abc-1", "us-gov-west-1"); msg != "" {
		t.Errorf("a GovCloud certificate: %s", msg)
	}
	if msg := ACMCertificateARN(arn, "us-east-1"); !strings.Contains(msg, "region us-east-1") || !strings.Contains(msg, "in ca-central-1") {
		t.Errorf("a certificate in another region: %q", msg)
	}
	for _, bad := range []string{"", "my-cert", "arn:aws:iam::123456789012:server-certificate/x", "arn:aws:acm:ca-central-1:1234:certificate/x"} {
		if msg := ACMCertificateARN(bad, "ca-central-1"); !strings.Contains(msg, "must be an ACM certificate ARN") {
			t.Errorf("ACMCertificateARN(%q) = %q", bad, msg)
		}
	}
}

func TestHostedZoneID(t *testing.T) {
	check(t, "HostedZoneID", HostedZoneID,
		[]string{"Z0123456789ABCDEFGHIJ", "Z1"},
		[]string{"", "z0123", "chem.example.edu", "/hostedzone/Z0123456789ABCDEFGHIJ", strings.Repeat("Z", 33)})
	if msg := HostedZoneID("/hostedzone/Z01"); !strings.Contains(msg, "drop the /hostedzone/ prefix") {
		t.Errorf("the prefix gets its own advice, got %q", msg)
	}
}

func TestHostname(t *testing.T) {
	check(t, "Hostname", Hostname,
		[]string{"llm.chem.example.edu", "a.io", "llm-1.x.example.com"},
		[]string{"", "localhost", "https://llm.example.edu", "LLM.example.edu", "llm.example.123", "-a.example.edu",
			strings.Repeat("a", 64) + ".edu", strings.Repeat(strings.Repeat("a", 60)+".", 5) + "edu"})
}

func TestScheduleRules(t *testing.T) {
	check(t, "Clock", Clock, []string{"00:00", "08:00", "23:59", "19:30"}, []string{"", "8:00", "24:00", "12:60", "8am", "08:00:00"})
	check(t, "Days", Days, []string{"MON-FRI", "MON,WED,FRI", "SUN", "MON-WED,FRI"}, []string{"", "weekdays", "mon-fri", "MON-", "MON,,FRI", "MON FRI"})
	check(t, "TimeZone", TimeZone, []string{"America/Vancouver", "UTC", "Europe/Berlin"}, []string{"", "Local", "Pacific/Vancouver", "PST8"})
}

func TestSHA256Hex(t *testing.T) {
	sum := strings.Repeat("0123456789abcdef", 4)
	check(t, "SHA256Hex", SHA256Hex, []string{sum}, []string{"", sum[1:], sum + "0", strings.ToUpper(sum), strings.Replace(sum, "0", "g", 1)})
}

func TestInstanceTypeShape(t *testing.T) {
	shape := func(v string) string { return InstanceTypeShape(v, "g5.xlarge") }
	check(t, "InstanceTypeShape", shape, []string{"g5.xlarge", "t3.large", "g4dn.2xlarge", "m7i-flex.large"}, []string{"", "g5", "G5.xlarge", "g5.xlarge ", "5g.xlarge"})
}

func TestOllamaTag(t *testing.T) {
	check(t, "OllamaTag", OllamaTag, []string{"llama3.1:8b", "phi3:mini", "qwen2.5"},
		[]string{"", "library/llama3", "registry.ollama.ai/llama3:8b", "llama3 8b", "llama\t3", "a\\b", "x\x00"})
}

func TestIPv4CIDR(t *testing.T) {
	for _, tc := range []struct{ in, want, problem string }{
		{"10.20.0.0/16", "10.20.0.0/16", ""},
		{"203.0.113.7/32", "203.0.113.7/32", ""},
		{"0.0.0.0/0", "0.0.0.0/0", ""},
		{"10.20.1.0/16", "", "has host bits set (got 10.20.1.0/16, did you mean 10.20.0.0/16?)"},
		{"142.103.0.0/33", "", `must be an IPv4 CIDR such as 10.20.0.0/16 (got "142.103.0.0/33")`},
		{"ten-twenty", "", `must be an IPv4 CIDR such as 10.20.0.0/16 (got "ten-twenty")`},
		{"10.20.0.0", "", `must be an IPv4 CIDR such as 10.20.0.0/16 (got "10.20.0.0")`},
		{"2001:db8::/32", "", `must be an IPv4 CIDR such as 10.20.0.0/16 (got "2001:db8::/32")`},
		{"", "", `must be an IPv4 CIDR such as 10.20.0.0/16 (got "")`},
	} {
		p, problem := IPv4CIDR(tc.in)
		if problem != tc.problem || (tc.want != "" && p.String() != tc.want) || (tc.want == "" && p.IsValid()) {
			t.Errorf("IPv4CIDR(%q) = %v, %q; want %s, %q", tc.in, p, problem, tc.want, tc.problem)
		}
	}
}

func TestVPCRange(t *testing.T) {
	for in, want := range map[string][2]bool{ // size ok, private
		"10.20.0.0/16":    {true, true},
		"10.20.0.0/22":    {true, true},
		"10.0.0.0/8":      {false, true},
		"10.20.0.0/24":    {false, true},
		"172.31.0.0/16":   {true, true},
		"172.32.0.0/16":   {true, false},
		"192.168.0.0/16":  {true, true},
		"192.169.0.0/16":  {true, false},
		"100.64.0.0/16":   {true, false},
		"172.16.0.0/12":   {false, true},
		"192.168.0.0/15":  {false, false},
		"142.103.0.0/16":  {true, false},
		"11.255.252.0/22": {true, false},
	} {
		p, _ := IPv4CIDR(in)
		if got := VPCSize(p) == ""; got != want[0] {
			t.Errorf("VPCSize(%s) accepted %v, want %v", in, got, want[0])
		}
		if got := PrivateRange(p) == ""; got != want[1] {
			t.Errorf("PrivateRange(%s) accepted %v, want %v", in, got, want[1])
		}
	}
}

func TestEmail(t *testing.T) {
	check(t, "Email", Email,
		[]string{"chem-ops@example.edu", "a.b+alerts@chem.example.ca", "Ops@Example.EDU"},
		[]string{"", "chem-ops", "chem-ops@", "@example.edu", "chem ops@example.edu", "Ops <ops@example.edu>",
			"<ops@example.edu>", "ops@localhost", "ops@example..edu", "ops@@example.edu", "ops@example.edu ",
			strings.Repeat("a", 64) + "@" + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + ".example.edu"})
}
