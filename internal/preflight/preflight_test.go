package preflight

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/preflight/preflighttest"
)

const region = "ca-central-1"

// exampleSpec loads one of the example stacks of stacks/.
func exampleSpec(t *testing.T, stack string) *config.Spec {
	t.Helper()
	spec, err := config.Load(filepath.Join("..", ".."), stack)
	if err != nil {
		t.Fatalf("load %s: %v", stack, err)
	}
	return spec
}

// check runs every check of spec against the emulator, as the command does.
func check(t *testing.T, m *preflighttest.Moto, spec *config.Spec, opts Options) Report {
	t.Helper()
	r := opts.Region
	if r == "" {
		r = spec.Region
	}
	report, err := Run(context.Background(), spec, NewClients(m.Config(r)), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if report.Stack != spec.Stack || report.Region != r {
		t.Errorf("report for %s in %s, want %s in %s", report.Stack, report.Region, spec.Stack, r)
	}
	return report
}

// result returns the check called name, failing the test when there is none.
func result(t *testing.T, r Report, name string) Result {
	t.Helper()
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %s", name, dump(r))
	return Result{}
}

func names(r Report) []string {
	var ns []string
	for _, c := range r.Checks {
		ns = append(ns, c.Name)
	}
	return ns
}

func dump(r Report) string {
	out, _ := json.MarshalIndent(r, "", "  ")
	return string(out)
}

// want checks a result's status and that its detail and advice hold the given phrases.
func want(t *testing.T, r Report, name string, status Status, detail, advice []string) Result {
	t.Helper()
	c := result(t, r, name)
	if c.Status != status {
		t.Errorf("%s: status %s, want %s: %+v", name, c.Status, status, c)
	}
	for _, d := range detail {
		if !strings.Contains(c.Detail, d) {
			t.Errorf("%s: detail lacks %q: %s", name, d, c.Detail)
		}
	}
	for _, a := range advice {
		if !strings.Contains(c.Advice, a) {
			t.Errorf("%s: advice lacks %q: %s (detail: %s)", name, a, c.Advice, c.Detail)
		}
	}
	if status != OK && c.Advice == "" {
		t.Errorf("%s: a %s without advice", name, status)
	}
	return c
}

// seedPassing raises the stack's quotas to what it needs (the spot quota to its largest spot
// types), so that only the check a test is about can fail.
func seedPassing(t *testing.T, m *preflighttest.Moto, region string) {
	t.Helper()
	for code, vcpus := range map[string]float64{"L-DB2E81BA": 64, "L-3819A6DF": 64, "L-1216C47A": 64} {
		m.RaiseQuota(t, region, code, vcpus)
	}
}

// The per-group arithmetic a quota's detail spells out adds up to Spec.QuotaNeeds, the figure
// the check compares, for every example stack.
func TestQuotaArithmeticMatchesQuotaNeeds(t *testing.T) {
	for _, stack := range []string{"chemistry", "dev", "linguistics", "physics"} {
		spec := exampleSpec(t, stack)
		needs := spec.QuotaNeeds()
		for _, q := range Quotas {
			sum := 0
			for _, g := range groups(spec, q) {
				sum += (g.maxSize + 1) * g.vcpus
			}
			if sum != q.need(needs) {
				t.Errorf("%s %s: groups add up to %d, QuotaNeeds says %d (%s)", stack, q.Code, sum, q.need(needs), arithmetic(groups(spec, q)))
			}
		}
	}
}

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		pattern, host string
		want          bool
	}{
		{"llm.chem.example.edu", "llm.chem.example.edu", true},
		{"LLM.Chem.Example.edu.", "llm.chem.example.edu", true},
		{"*.chem.example.edu", "llm.chem.example.edu", true},
		{"*.chem.example.edu", "chem.example.edu", false},       // a wildcard needs a label in front
		{"*.chem.example.edu", "a.llm.chem.example.edu", false}, // and covers one label only
		{"*.example.edu", "llm.chem.example.edu", false},
		{"llm.chem.example.edu", "llm2.chem.example.edu", false},
		{"*.chem.example.edu", ".chem.example.edu", false},
	} {
		if got := Covers(c.pattern, c.host); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.pattern, c.host, got, c.want)
		}
	}
}

// commandRE reads the quota, value and region back out of the advised AWS CLI command.
var commandRE = regexp.MustCompile(`aws service-quotas request-service-quota-increase --service-code ec2 --quota-code (L-[0-9A-F]+) --desired-value (\d+) --region (\S+)$`)

// follow does what a quota's advice says, through the API the advised command calls.
func follow(t *testing.T, m *preflighttest.Moto, c Result) {
	t.Helper()
	match := commandRE.FindStringSubmatch(c.Advice)
	if match == nil {
		t.Fatalf("%s: the advice does not end in the increase command: %s", c.Name, c.Advice)
	}
	value, _ := strconv.Atoi(match[2])
	m.RaiseQuota(t, match[3], match[1], float64(value))
}

func TestQuotas(t *testing.T) {
	m := preflighttest.Start(t, preflighttest.AMIParameters(region))
	spec := exampleSpec(t, "linguistics")
	arith := "pool chat (maxSize 3 + 1) × 4 vCPUs (g5.xlarge) = 16"

	// A new account: Service Quotas has no applied value, so the check falls back to the AWS
	// defaults (0, 0 and 5 vCPUs) and says so.
	r := check(t, m, spec, Options{})
	want(t, r, "quota L-DB2E81BA", Fail,
		[]string{"Running On-Demand G and VT instances is 0 vCPUs in ca-central-1", "the AWS default", "the stack needs 16", arith},
		[]string{"raise L-DB2E81BA", "to at least 16 vCPUs: " + IncreaseCommand("L-DB2E81BA", 16, region)})
	want(t, r, "quota L-3819A6DF", Fail,
		[]string{"All G and VT Spot Instance Requests is 0 vCPUs", "the stack needs 20: pool batch (maxSize 4 + 1) × 4 vCPUs (g6.xlarge) = 20"},
		[]string{IncreaseCommand("L-3819A6DF", 20, region)})
	want(t, r, "quota L-1216C47A", Fail,
		[]string{"is 5 vCPUs", "the AWS default", "the stack needs 10: gateway (maxSize 4 + 1) × 2 vCPUs (c7i.large) = 10"},
		[]string{IncreaseCommand("L-1216C47A", 10, region)})

	// An applied value below the need.
	m.RaiseQuota(t, region, "L-DB2E81BA", 8)
	r = check(t, m, spec, Options{})
	c := want(t, r, "quota L-DB2E81BA", Fail,
		[]string{"is 8 vCPUs in ca-central-1 (applied value)", "the stack needs 16"},
		[]string{IncreaseCommand("L-DB2E81BA", 16, region)})
	if strings.Contains(c.Detail, "default") {
		t.Errorf("an applied value reported as the default: %s", c.Detail)
	}

	// Doing what the advice says clears every failure. The spot quota then covers the pool's
	// own type but not its larger spot alternatives: a warning, whose advice clears it too.
	for _, code := range []string{"L-DB2E81BA", "L-3819A6DF", "L-1216C47A"} {
		follow(t, m, result(t, r, "quota "+code))
	}
	r = check(t, m, spec, Options{})
	want(t, r, "quota L-DB2E81BA", OK, []string{"16 vCPUs", "(applied value)"}, nil)
	want(t, r, "quota L-1216C47A", OK, []string{"10 vCPUs"}, nil)
	spot := want(t, r, "quota L-3819A6DF", Warn,
		[]string{"is 20 vCPUs", "the stack needs 20", "(8 vCPUs), which at maxSize + 1 takes 40 vCPUs"},
		[]string{IncreaseCommand("L-3819A6DF", 40, region)})
	follow(t, m, spot)
	r = check(t, m, spec, Options{})
	want(t, r, "quota L-3819A6DF", OK, []string{"40 vCPUs"}, nil)

	// A quota the stack does not draw on is not even looked up.
	r = check(t, m, exampleSpec(t, "dev"), Options{})
	want(t, r, "quota L-DB2E81BA", OK, []string{"not used by this stack"}, nil)
	want(t, r, "quota L-3819A6DF", OK, []string{"not used by this stack"}, nil)
	want(t, r, "quota L-1216C47A", Fail,
		[]string{"the stack needs 12: pool cpu (maxSize 1 + 1) × 4 vCPUs (m7i.xlarge) = 8; gateway (maxSize 1 + 1) × 2 vCPUs (t3.large) = 4"},
		[]string{IncreaseCommand("L-1216C47A", 12, region)})
}

// The emulator's instance type offerings are moto's snapshot of AWS's: in ca-central-1
// (zones a, b and d) the G5 and G4dn types are offered in a and b only, G6 in all three, G6e
// in none.
func TestRegionAndOfferings(t *testing.T) {
	m := preflighttest.Start(t, preflighttest.AMIParameters(region))

	// Two zones: everything is offered in both.
	r := check(t, m, exampleSpec(t, "chemistry"), Options{})
	want(t, r, "region", OK, []string{"ca-central-1 has 3 available availability zones", "the network spans the first 2: ca-central-1a, ca-central-1b"}, nil)
	want(t, r, "offering g5.xlarge", OK, []string{"g5.xlarge (pool gpu) is offered in every zone the network spans (ca-central-1a, ca-central-1b)"}, nil)
	want(t, r, "offering t3.large", OK, []string{"(gateway)"}, nil)

	// Three zones: g5.xlarge is missing from the third.
	spec := exampleSpec(t, "linguistics")
	r = check(t, m, spec, Options{})
	want(t, r, "region", OK, []string{"the network spans the first 3: ca-central-1a, ca-central-1b, ca-central-1d"}, nil)
	want(t, r, "offering g5.xlarge", Fail,
		[]string{"g5.xlarge (pool chat) is not offered in ca-central-1d", "ca-central-1 offers it in ca-central-1a, ca-central-1b"},
		[]string{"g6.xlarge", "set network.azCount: 2", "deploy in a region that offers g5.xlarge in 3 availability zones"})
	want(t, r, "offering g6.xlarge", OK, []string{"(pool batch)"}, nil)
	// Every spot type is checked; an alternative missing from a zone only narrows the spot
	// group's choice there.
	batch := spec.Pools["batch"].SpotInstanceTypes()
	if len(batch) < 2 {
		t.Fatalf("the batch pool should have spot alternatives: %v", batch)
	}
	for _, alt := range batch[1:] {
		c := result(t, r, "offering "+alt)
		if !strings.Contains(c.Detail, "spot alternative of pool batch") {
			t.Errorf("offering %s: detail does not say it is a spot alternative: %s", alt, c.Detail)
		}
	}
	want(t, r, "offering g4dn.xlarge", Warn, []string{"not offered in ca-central-1d"}, []string{"nothing blocks the deploy"})

	// A type the region does not offer at all.
	physics := exampleSpec(t, "physics")
	gpu := physics.Pools["gpu"]
	gpu.InstanceType = "g6e.xlarge"
	physics.Pools["gpu"] = gpu
	r = check(t, m, physics, Options{})
	want(t, r, "offering g6e.xlarge", Fail,
		[]string{"g6e.xlarge (pool gpu) is not offered in ca-central-1a, ca-central-1b", "offers it in none"},
		[]string{"use an instanceType offered in all of ca-central-1a, ca-central-1b", "g4dn.xlarge"})

	// A region with fewer zones than network.azCount (us-west-1 has two).
	r = check(t, m, spec, Options{Region: "us-west-1"})
	want(t, r, "region", Fail,
		[]string{"us-west-1 has 2 available availability zone(s) (us-west-1a, us-west-1b); network.azCount wants 3"},
		[]string{"set network.azCount: 2", "a region with at least 3 availability zones"})
}

func TestAMIParameters(t *testing.T) {
	// ca-central-1 publishes Ubuntu but not the Deep Learning AMI; us-east-2 publishes a GPU
	// parameter that holds no AMI id.
	m := preflighttest.Start(t, preflighttest.PublicParameters{
		region:      {catalog.CPUAMIParameter: preflighttest.CPUAMI},
		"us-east-2": {catalog.GPUAMIParameter: "not-an-ami", catalog.CPUAMIParameter: preflighttest.CPUAMI},
	})

	r := check(t, m, exampleSpec(t, "physics"), Options{})
	want(t, r, "ami gpu", Fail,
		[]string{catalog.GPUAMIParameter + " does not exist in ca-central-1", "(used by pool gpu)"},
		[]string{"deploy in a region that publishes it", "aws ssm get-parameter --name " + catalog.GPUAMIParameter})
	want(t, r, "ami cpu", OK, []string{catalog.CPUAMIParameter + " resolves to " + preflighttest.CPUAMI, "(used by gateway)"}, nil)
	if !r.Failed() {
		t.Errorf("a missing AMI parameter should fail the report")
	}

	// A CPU-only stack does not look for the GPU parameter.
	r = check(t, m, exampleSpec(t, "dev"), Options{})
	if slices.Contains(names(r), "ami gpu") {
		t.Errorf("dev has no GPU pool, yet the GPU AMI was checked: %v", names(r))
	}
	want(t, r, "ami cpu", OK, []string{"(used by pool cpu, gateway)"}, nil)

	r = check(t, m, exampleSpec(t, "physics"), Options{Region: "us-east-2"})
	want(t, r, "ami gpu", Fail, []string{`holds "not-an-ami", not an ami- id`}, nil)
}

func TestCertificate(t *testing.T) {
	m := preflighttest.Start(t, preflighttest.AMIParameters(region))
	seedPassing(t, m, region)
	base := exampleSpec(t, "chemistry") // access.hostname llm.chem.example.edu
	withCert := func(arn string) *config.Spec {
		s := *base
		s.Access.CertificateARN = arn
		return &s
	}
	year := time.Now().Add(365 * 24 * time.Hour)

	t.Run("issued and covering", func(t *testing.T) {
		arn := m.ImportCertificate(t, region, []string{"llm.chem.example.edu"}, year)
		r := check(t, m, withCert(arn), Options{})
		want(t, r, "certificate", OK, []string{arn, "is ISSUED, valid until"}, nil)
		want(t, r, "certificate hostname", OK, []string{"access.hostname llm.chem.example.edu is covered by llm.chem.example.edu"}, nil)
		if r.Failed() || r.Count(Warn) != 0 {
			t.Errorf("want every check ok:\n%s", dump(r))
		}
	})
	t.Run("wildcard", func(t *testing.T) {
		arn := m.ImportCertificate(t, region, []string{"chem.example.edu", "*.chem.example.edu"}, year)
		r := check(t, m, withCert(arn), Options{})
		want(t, r, "certificate hostname", OK, []string{"covered by *.chem.example.edu"}, nil)
	})
	t.Run("name not covered", func(t *testing.T) {
		arn := m.ImportCertificate(t, region, []string{"www.example.edu", "*.example.edu"}, year)
		r := check(t, m, withCert(arn), Options{})
		want(t, r, "certificate", OK, nil, nil)
		want(t, r, "certificate hostname", Fail,
			[]string{"the certificate covers www.example.edu, *.example.edu, not access.hostname llm.chem.example.edu"},
			[]string{"request a certificate for llm.chem.example.edu (or *.chem.example.edu) in ca-central-1"})
	})
	t.Run("pending validation", func(t *testing.T) {
		arn := m.RequestCertificate(t, region, "llm.chem.example.edu")
		r := check(t, m, withCert(arn), Options{})
		// moto publishes a fixed validation record name per domain.
		want(t, r, "certificate", Fail, []string{"is PENDING_VALIDATION"},
			[]string{"create the DNS validation record(s)", ".llm.chem.example.edu. CNAME "})
	})
	t.Run("expiring soon", func(t *testing.T) {
		arn := m.ImportCertificate(t, region, []string{"llm.chem.example.edu"}, time.Now().Add(10*24*time.Hour))
		r := check(t, m, withCert(arn), Options{})
		want(t, r, "certificate", Warn, []string{"expires on", "in 10 day(s)"},
			[]string{"aws acm import-certificate --certificate-arn " + arn})
		if r.Failed() {
			t.Errorf("a warning alone must not fail the report:\n%s", dump(r))
		}
	})
	t.Run("expired", func(t *testing.T) {
		// ACM refuses to import an expired certificate: import one that expires in two
		// seconds and wait for it to lapse.
		notAfter := time.Now().Truncate(time.Second).Add(2 * time.Second)
		arn := m.ImportCertificate(t, region, []string{"llm.chem.example.edu"}, notAfter)
		time.Sleep(time.Until(notAfter.Add(time.Second)))
		r := check(t, m, withCert(arn), Options{})
		want(t, r, "certificate", Fail, []string{"is expired: it expired on " + notAfter.UTC().Format(time.DateTime)},
			[]string{"import the renewed certificate"})
	})
	t.Run("no such certificate", func(t *testing.T) {
		r := check(t, m, base, Options{}) // the example's ARN was never imported here
		want(t, r, "certificate", Fail, []string{base.Access.CertificateARN + " does not exist"}, []string{"aws acm list-certificates --region ca-central-1"})
		if slices.Contains(names(r), "certificate hostname") {
			t.Errorf("the hostname check ran without a certificate: %v", names(r))
		}
	})
	t.Run("another region", func(t *testing.T) {
		seedPassing(t, m, "us-east-2")
		arn := m.ImportCertificate(t, region, []string{"llm.chem.example.edu"}, year)
		r := check(t, m, withCert(arn), Options{Region: "us-east-2"})
		want(t, r, "certificate", Fail, []string{"is in ca-central-1; a load balancer in us-east-2 needs"}, []string{"in us-east-2"})
	})
}

func TestInZone(t *testing.T) {
	for _, c := range []struct {
		zone, host string
		want       bool
	}{
		{"chem.example.edu", "llm.chem.example.edu", true},
		{"chem.example.edu.", "llm.chem.example.edu", true}, // Route 53 returns names with the root's dot
		{"Chem.Example.EDU", "LLM.chem.example.edu.", true},
		{"chem.example.edu", "chem.example.edu", true}, // the apex
		{"chem.example.edu", "a.b.chem.example.edu", true},
		{"chem.example.edu", "xchem.example.edu", false}, // a suffix, but not a label boundary
		{"chem.example.edu", "example.edu", false},
		{"chem.example.edu", "llm.phys.example.edu", false},
		{"chem.example.edu", "", false},
		{"", "llm.chem.example.edu", false},
	} {
		if got := InZone(c.zone, c.host); got != c.want {
			t.Errorf("InZone(%q, %q) = %v, want %v", c.zone, c.host, got, c.want)
		}
	}
}

func TestHostedZone(t *testing.T) {
	m := preflighttest.Start(t, preflighttest.AMIParameters(region))
	seedPassing(t, m, region)
	base := exampleSpec(t, "chemistry") // access.hostname llm.chem.example.edu, a certificate ARN
	// withZone is the example with a hosted zone and hostname; certARN empty means a certificate
	// the deploy requests.
	withZone := func(zoneID, host, certARN string) *config.Spec {
		s := *base
		s.Access.HostedZoneID, s.Access.Hostname, s.Access.CertificateARN = zoneID, host, certARN
		return &s
	}
	year := time.Now().Add(365 * 24 * time.Hour)

	t.Run("public zone, managed certificate", func(t *testing.T) {
		zone := m.CreateHostedZone(t, region, "chem.example.edu", false)
		// Records that do not block the alias: another type at the name, and A records at
		// other names, before and after it in Route 53's order.
		m.CreateRecord(t, zone, "llm.chem.example.edu", r53types.RRTypeTxt, "", `"owner=chemistry-it"`)
		m.CreateRecord(t, zone, "a.llm.chem.example.edu", r53types.RRTypeA, "", "192.0.2.10")
		m.CreateRecord(t, zone, "www.chem.example.edu", r53types.RRTypeCname, "", "web.example.edu")
		r := check(t, m, withZone(zone, "llm.chem.example.edu", ""), Options{})
		want(t, r, "hosted zone", OK, []string{zone + " is the public hosted zone chem.example.edu", "access.hostname llm.chem.example.edu is in it"}, nil)
		want(t, r, "hosted zone record", OK, []string{"chem.example.edu holds no A or CNAME record for llm.chem.example.edu"}, nil)
		if slices.Contains(names(r), "certificate") {
			t.Errorf("no access.certificateArn, yet a certificate was checked: %v", names(r))
		}
		if r.Failed() || r.Count(Warn) != 0 {
			t.Errorf("want every check ok:\n%s", dump(r))
		}
	})
	t.Run("the zone's apex", func(t *testing.T) {
		// The apex holds the zone's own NS and SOA records, which do not block an A alias.
		zone := m.CreateHostedZone(t, region, "chem.example.edu", false)
		r := check(t, m, withZone(zone, "chem.example.edu", ""), Options{})
		want(t, r, "hosted zone", OK, []string{"access.hostname chem.example.edu is in it"}, nil)
		want(t, r, "hosted zone record", OK, []string{"holds no A or CNAME record for chem.example.edu"}, nil)
	})
	t.Run("no such zone", func(t *testing.T) {
		r := check(t, m, withZone("Z0000000000NOSUCHZONE", "llm.chem.example.edu", ""), Options{})
		want(t, r, "hosted zone", Fail,
			[]string{"access.hostedZoneId Z0000000000NOSUCHZONE: Route 53 has no hosted zone with this id"},
			[]string{"check access.hostedZoneId against `aws route53 list-hosted-zones-by-name --dns-name chem.example.edu`", "create a public hosted zone"})
		if slices.Contains(names(r), "hosted zone record") {
			t.Errorf("records were looked for in a zone that does not exist: %v", names(r))
		}
	})
	t.Run("hostname outside the zone", func(t *testing.T) {
		zone := m.CreateHostedZone(t, region, "chem.example.edu", false)
		for _, host := range []string{"xchem.example.edu", "llm.phys.example.edu"} {
			r := check(t, m, withZone(zone, host, ""), Options{})
			want(t, r, "hosted zone", Fail,
				[]string{"access.hostname " + host + " is not in the public hosted zone chem.example.edu (" + zone + ")",
					"the zone holds only chem.example.edu and names that end in .chem.example.edu"},
				[]string{"set access.hostedZoneId to the zone of " + host, "or set access.hostname to a name in chem.example.edu"})
			if slices.Contains(names(r), "hosted zone record") {
				t.Errorf("%s: records were looked for outside the zone: %v", host, names(r))
			}
		}
	})
	t.Run("private zone, managed certificate", func(t *testing.T) {
		zone := m.CreateHostedZone(t, region, "chem.example.edu", true)
		r := check(t, m, withZone(zone, "llm.chem.example.edu", ""), Options{})
		want(t, r, "hosted zone", Fail,
			[]string{zone + " is the private hosted zone chem.example.edu", "access.certificateArn is empty", "cannot see a private zone"},
			[]string{"set access.hostedZoneId to a public hosted zone", "or set access.certificateArn to an issued ACM certificate for llm.chem.example.edu in ca-central-1"})
	})
	t.Run("private zone, certificate given", func(t *testing.T) {
		zone := m.CreateHostedZone(t, region, "chem.example.edu", true)
		arn := m.ImportCertificate(t, region, []string{"llm.chem.example.edu"}, year)
		r := check(t, m, withZone(zone, "llm.chem.example.edu", arn), Options{})
		want(t, r, "hosted zone", OK, []string{zone + " is the private hosted zone chem.example.edu", "only inside the VPCs associated with it"}, nil)
		want(t, r, "hosted zone record", OK, []string{"holds no A or CNAME record"}, nil)
		want(t, r, "certificate", OK, []string{arn}, nil)
		if r.Failed() || r.Count(Warn) != 0 {
			t.Errorf("want every check ok:\n%s", dump(r))
		}
	})
	t.Run("a record in the way", func(t *testing.T) {
		for _, c := range []struct {
			rtype  r53types.RRType
			value  string
			detail string
		}{
			{r53types.RRTypeA, "192.0.2.7", "(A 192.0.2.7)"},
			{r53types.RRTypeCname, "old-llm.example.edu", "(CNAME old-llm.example.edu)"},
		} {
			zone := m.CreateHostedZone(t, region, "chem.example.edu", false)
			m.CreateRecord(t, zone, "llm.chem.example.edu", c.rtype, "", c.value)
			r := check(t, m, withZone(zone, "llm.chem.example.edu", ""), Options{})
			want(t, r, "hosted zone", OK, nil, nil)
			want(t, r, "hosted zone record", Fail,
				[]string{"chem.example.edu already holds a record for access.hostname llm.chem.example.edu " + c.detail, "does not overwrite another record"},
				[]string{"delete that record from chem.example.edu (" + zone + ")", "or set access.hostname to another name in chem.example.edu"})
			if !r.Failed() {
				t.Errorf("%s: a record the deploy cannot create its alias over must fail the report:\n%s", c.rtype, dump(r))
			}
		}
	})
	t.Run("the stack's own alias", func(t *testing.T) {
		zone := m.CreateHostedZone(t, region, "chem.example.edu", false)
		alb := "chem-front-123456789.ca-central-1.elb.amazonaws.com"
		m.CreateRecord(t, zone, "llm.chem.example.edu", r53types.RRTypeA, alb)
		r := check(t, m, withZone(zone, "llm.chem.example.edu", ""), Options{})
		want(t, r, "hosted zone record", OK, []string{"already holds an alias A record for llm.chem.example.edu to " + alb}, nil)
	})
}

// The read-only permissions docs/preflight.md lists are enough, as the emulator evaluates IAM
// policies; without one of them the check it serves says which to grant; and credentials AWS
// does not know stop the run.
func TestPermissions(t *testing.T) {
	m := preflighttest.Start(t, preflighttest.AMIParameters(region))
	seedPassing(t, m, region)
	spec := exampleSpec(t, "chemistry")
	spec.Access.CertificateARN = m.ImportCertificate(t, region, []string{"llm.chem.example.edu"}, time.Now().Add(365*24*time.Hour))
	spec.Access.HostedZoneID = m.CreateHostedZone(t, region, "chem.example.edu", false)
	policy := func(actions []string) string {
		doc, _ := json.Marshal(map[string]any{
			"Version":   "2012-10-17",
			"Statement": []map[string]any{{"Effect": "Allow", "Action": actions, "Resource": "*"}},
		})
		return string(doc)
	}
	fullID, fullSecret := m.CreateUser(t, "preflight", policy(Permissions))
	noSSM := slices.DeleteFunc(slices.Clone(Permissions), func(a string) bool { return a == "ssm:GetParameter" })
	partID, partSecret := m.CreateUser(t, "preflight-no-ssm", policy(noSSM))
	noRecords := slices.DeleteFunc(slices.Clone(Permissions), func(a string) bool { return a == "route53:ListResourceRecordSets" })
	zoneID, zoneSecret := m.CreateUser(t, "preflight-no-records", policy(noRecords))
	m.EnforceAuth(t)

	runAs := func(id, secret string) (Report, error) {
		return Run(context.Background(), spec, NewClients(m.ConfigAs(region, id, secret)), Options{})
	}
	r, err := runAs(fullID, fullSecret)
	if err != nil || r.Failed() || r.Count(Warn) != 0 {
		t.Errorf("with the documented permissions: err %v, want every check ok:\n%s", err, dump(r))
	}

	r, err = runAs(partID, partSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ami gpu", "ami cpu"} {
		want(t, r, name, Fail, []string{"could not check: ssm:GetParameter"}, []string{"allow ssm:GetParameter to the caller"})
	}
	for _, name := range []string{"region", "quota L-DB2E81BA", "offering g5.xlarge", "certificate", "hosted zone", "hosted zone record"} {
		want(t, r, name, OK, nil, nil)
	}

	// Without the record listing, only the record check fails, and names the action.
	r, err = runAs(zoneID, zoneSecret)
	if err != nil {
		t.Fatal(err)
	}
	want(t, r, "hosted zone", OK, nil, nil)
	want(t, r, "hosted zone record", Fail, []string{"could not check: route53:ListResourceRecordSets"}, []string{"allow route53:ListResourceRecordSets to the caller"})

	_, err = runAs("AKIAUNKNOWNKEY000000", "not-a-secret")
	if !errors.Is(err, ErrCredentialsRejected) {
		t.Errorf("unknown credentials: err %v, want ErrCredentialsRejected", err)
	}
}

// docs/preflight.md names every permission preflight calls, and no other.
func TestDocsListPermissions(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "preflight.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := regexp.MustCompile(`"((?:servicequotas|ec2|ssm|acm|route53):[A-Za-z]+)"`).FindAllStringSubmatch(string(doc), -1)
	var got []string
	for _, m := range listed {
		if !slices.Contains(got, m[1]) {
			got = append(got, m[1])
		}
	}
	if !slices.Equal(got, Permissions) {
		t.Errorf("docs/preflight.md's policy lists %v, want %v", got, Permissions)
	}
}
