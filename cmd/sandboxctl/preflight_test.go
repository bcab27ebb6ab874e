package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/preflight/preflighttest"
)

// preflightStack is a public department with one GPU pool; its quota needs are
// L-DB2E81BA (maxSize 1 + 1) × 4 = 8 vCPUs for g5.xlarge and L-1216C47A (4 + 1) × 2 = 10 for
// the default gateway.
const preflightStack = `config:
  aws:region: %s
  llm-sandbox:department: chem
  llm-sandbox:network:
    cidr: 10.20.0.0/16
  llm-sandbox:access:
    mode: public
    certificateArn: %s
    allowedCidrs: [142.103.0.0/16]
    hostname: llm.chem.example.edu
  llm-sandbox:pools:
    gpu:
      instanceType: %s
      maxSize: 1
      models: [llama3.1:8b]
`

// preflightProject writes a project whose stack "chem" is preflightStack.
func preflightProject(t *testing.T, region, certARN, instanceType string) string {
	t.Helper()
	return tempProject(t, map[string]string{"chem": fmt.Sprintf(preflightStack, region, certARN, instanceType)})
}

// seedAccount gives the emulated account in region what preflightStack needs: the quotas and
// a certificate for its hostname. It returns the certificate's ARN.
func seedAccount(t *testing.T, m *preflighttest.Moto, region string) string {
	t.Helper()
	m.RaiseQuota(t, region, "L-DB2E81BA", 8)
	m.RaiseQuota(t, region, "L-1216C47A", 10)
	return m.ImportCertificate(t, region, []string{"llm.chem.example.edu"}, time.Now().Add(365*24*time.Hour))
}

// lines returns the text report's check lines (all but the summary) by check name.
func lines(t *testing.T, out string) map[string]string {
	t.Helper()
	found := map[string]string{}
	all := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range all[:len(all)-1] {
		m := regexp.MustCompile(`^(ok|WARN|FAIL) +([^:]+): `).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a check line: %q", l)
		}
		found[m[2]] = l
	}
	return found
}

func TestPreflightPassesAndPrintsJSON(t *testing.T) {
	m := preflighttest.Start(t, preflighttest.AMIParameters("ca-central-1"))
	arn := seedAccount(t, m, "ca-central-1")
	dir := preflightProject(t, "ca-central-1", arn, "g5.xlarge")
	m.SetEnv(t)

	code, out, errOut := sandboxctl(t, dir, "preflight", "chem")
	if code != exitOK {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitOK, out, errOut)
	}
	got := lines(t, out)
	wantChecks := []string{"ollama release", "region", "quota L-DB2E81BA", "quota L-3819A6DF", "quota L-1216C47A", "quota L-34B43A08",
		"offering g5.xlarge", "offering " + config.DefaultGatewayInstanceType, "ami gpu", "ami cpu", "certificate", "certificate hostname"}
	for _, name := range wantChecks {
		if !strings.HasPrefix(got[name], "ok    "+name+": ") {
			t.Errorf("want an ok line for %s, got %q", name, got[name])
		}
	}
	if len(got) != len(wantChecks) {
		t.Errorf("%d check lines, want %d:\n%s", len(got), len(wantChecks), out)
	}
	if !strings.HasSuffix(out, "chem in ca-central-1: 12 check(s), 12 ok, 0 warning(s), 0 failure(s): ready to deploy\n") {
		t.Errorf("summary:\n%s", out)
	}
	for _, progress := range []string{"checking quotas...", "checking instance type offerings...", "checking AMI parameters...", "checking the certificate..."} {
		if !strings.Contains(errOut, progress) {
			t.Errorf("stderr lacks the progress line %q:\n%s", progress, errOut)
		}
	}

	code, out, _ = sandboxctl(t, dir, "preflight", "chem", "--format", "json")
	if code != exitOK {
		t.Fatalf("json: exit %d\n%s", code, out)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if keys := slices.Sorted(maps.Keys(doc)); !slices.Equal(keys, []string{"checks", "region", "stack"}) {
		t.Errorf("top-level keys %v, want checks, region, stack", keys)
	}
	var stack, region string
	var checks []map[string]string
	if json.Unmarshal(doc["stack"], &stack) != nil || json.Unmarshal(doc["region"], &region) != nil || json.Unmarshal(doc["checks"], &checks) != nil {
		t.Fatalf("wrong types:\n%s", out)
	}
	if stack != "chem" || region != "ca-central-1" || len(checks) != len(wantChecks) {
		t.Errorf("stack %q region %q, %d checks:\n%s", stack, region, len(checks), out)
	}
	for i, c := range checks {
		if keys := slices.Sorted(maps.Keys(c)); !slices.Equal(keys, []string{"advice", "detail", "name", "status"}) {
			t.Errorf("check %d has keys %v", i, keys)
		}
		if c["name"] != wantChecks[i] || c["status"] != "ok" || c["detail"] == "" || c["advice"] != "" {
			t.Errorf("check %d: %v, want %s ok with a detail and no advice", i, c, wantChecks[i])
		}
	}

	// --region checks another region, and says so: nothing is seeded in us-east-2.
	code, out, errOut = sandboxctl(t, dir, "preflight", "chem", "--region", "us-east-2")
	if code != exitInvalid || !strings.Contains(errOut, "checking chem in us-east-2, not the stack's aws:region ca-central-1") ||
		!strings.HasPrefix(lines(t, out)["certificate"], "FAIL  certificate: "+arn+" is in ca-central-1") {
		t.Errorf("--region us-east-2: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// Credentials AWS does not know: the emulator now checks them as AWS does.
	m.EnforceAuth(t)
	code, out, errOut = sandboxctl(t, dir, "preflight", "chem")
	if code != exitUsage || out != "" || !strings.Contains(errOut, "AWS rejected the credentials") || !strings.Contains(errOut, "AWS_PROFILE") {
		t.Errorf("unknown credentials: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitUsage, out, errOut)
	}
}

// Each failure exits 1 with a FAIL line that says what to do; the rest of the report stays ok.
func TestPreflightFailures(t *testing.T) {
	// us-east-2 publishes Ubuntu but not the Deep Learning AMI.
	published := preflighttest.AMIParameters("ca-central-1")
	published["us-east-2"] = map[string]string{catalog.CPUAMIParameter: preflighttest.CPUAMI}
	m := preflighttest.Start(t, published)
	arn := seedAccount(t, m, "ca-central-1")
	m.SetEnv(t)

	// expectFail runs preflight on dir and checks that exactly the named checks fail, each line
	// holding the given phrases.
	expectFail := func(t *testing.T, dir string, want map[string][]string) map[string]string {
		t.Helper()
		code, out, errOut := sandboxctl(t, dir, "preflight", "chem")
		if code != exitInvalid {
			t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitInvalid, out, errOut)
		}
		got := lines(t, out)
		for name, line := range got {
			phrases, failing := want[name]
			if !failing {
				if !strings.HasPrefix(line, "ok    ") {
					t.Errorf("only %v should fail, got %q", slices.Sorted(maps.Keys(want)), line)
				}
				continue
			}
			if !strings.HasPrefix(line, "FAIL  "+name+": ") || !strings.Contains(line, " -> ") {
				t.Errorf("want a FAIL line with advice for %s, got %q", name, line)
			}
			for _, p := range phrases {
				if !strings.Contains(line, p) {
					t.Errorf("%s: line lacks %q: %s", name, p, line)
				}
			}
		}
		for name := range want {
			if got[name] == "" {
				t.Errorf("no line for %s:\n%s", name, out)
			}
		}
		if !strings.Contains(out, fmt.Sprintf("%d failure(s): fix the failures before deploying", len(want))) {
			t.Errorf("summary:\n%s", out)
		}
		return got
	}

	t.Run("GPU quota too low", func(t *testing.T) {
		m.RaiseQuota(t, "ca-central-1", "L-DB2E81BA", 4)
		dir := preflightProject(t, "ca-central-1", arn, "g5.xlarge")
		got := expectFail(t, dir, map[string][]string{"quota L-DB2E81BA": {
			"Running On-Demand G and VT instances is 4 vCPUs in ca-central-1 (applied value); the stack needs 8",
			"raise L-DB2E81BA (Running On-Demand G and VT instances) in ca-central-1 to at least 8 vCPUs",
			"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA --desired-value 8 --region ca-central-1",
		}})
		// The advised command, through the API it calls, is all it takes.
		cmd := regexp.MustCompile(`--quota-code (\S+) --desired-value (\d+) --region (\S+)$`).FindStringSubmatch(got["quota L-DB2E81BA"])
		value, _ := strconv.Atoi(cmd[2])
		m.RaiseQuota(t, cmd[3], cmd[1], float64(value))
		if code, out, _ := sandboxctl(t, dir, "preflight", "chem"); code != exitOK {
			t.Errorf("after the advised increase: exit %d\n%s", code, out)
		}
	})

	t.Run("instance type not offered", func(t *testing.T) {
		// The emulator's snapshot of ca-central-1 offers no G6e type.
		dir := preflightProject(t, "ca-central-1", arn, "g6e.xlarge")
		expectFail(t, dir, map[string][]string{"offering g6e.xlarge": {
			"g6e.xlarge (pool gpu) is not offered in ca-central-1a, ca-central-1b", "offers it in none",
			"use an instanceType offered in all of ca-central-1a, ca-central-1b", "or deploy in a region that offers g6e.xlarge",
		}})
	})

	t.Run("certificate does not cover the hostname", func(t *testing.T) {
		other := m.ImportCertificate(t, "ca-central-1", []string{"llm.phys.example.edu"}, time.Now().Add(365*24*time.Hour))
		expectFail(t, preflightProject(t, "ca-central-1", other, "g5.xlarge"), map[string][]string{"certificate hostname": {
			"the certificate covers llm.phys.example.edu, not access.hostname llm.chem.example.edu",
			"request a certificate for llm.chem.example.edu (or *.chem.example.edu) in ca-central-1",
		}})
	})

	t.Run("certificate not issued", func(t *testing.T) {
		pending := m.RequestCertificate(t, "ca-central-1", "llm.chem.example.edu")
		expectFail(t, preflightProject(t, "ca-central-1", pending, "g5.xlarge"), map[string][]string{"certificate": {
			pending + " (llm.chem.example.edu) is PENDING_VALIDATION", "create the DNS validation record(s)",
		}})
	})

	t.Run("a warning alone passes", func(t *testing.T) {
		soon := m.ImportCertificate(t, "ca-central-1", []string{"llm.chem.example.edu"}, time.Now().Add(10*24*time.Hour))
		code, out, errOut := sandboxctl(t, preflightProject(t, "ca-central-1", soon, "g5.xlarge"), "preflight", "chem")
		if code != exitOK {
			t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitOK, out, errOut)
		}
		if line := lines(t, out)["certificate"]; !strings.HasPrefix(line, "WARN  certificate: "+soon+" (llm.chem.example.edu) is ISSUED but expires on ") ||
			!strings.Contains(line, " -> import the renewed certificate over it") {
			t.Errorf("certificate line: %q", line)
		}
		if !strings.HasSuffix(out, "12 check(s), 11 ok, 1 warning(s), 0 failure(s): ready to deploy\n") {
			t.Errorf("summary:\n%s", out)
		}
	})

	t.Run("AMI parameter missing", func(t *testing.T) {
		east := seedAccount(t, m, "us-east-2")
		expectFail(t, preflightProject(t, "us-east-2", east, "g5.xlarge"), map[string][]string{"ami gpu": {
			catalog.GPUAMIParameter + " does not exist in us-east-2",
			"deploy in a region that publishes it",
		}})
	})
}

// zoneStack is preflightStack with a Route 53 hosted zone and no certificate ARN: the deploy
// requests the certificate and validates it through the zone.
const zoneStack = `config:
  aws:region: ca-central-1
  llm-sandbox:department: chem
  llm-sandbox:network:
    cidr: 10.20.0.0/16
  llm-sandbox:access:
    mode: public
    allowedCidrs: [142.103.0.0/16]
    hostname: llm.chem.example.edu
    hostedZoneId: %s
  llm-sandbox:pools:
    gpu:
      instanceType: g5.xlarge
      maxSize: 1
      models: [llama3.1:8b]
`

// With access.hostedZoneId the zone is checked instead of a certificate: ok in a public zone,
// a failure in a private one (ACM cannot validate through it), a warning for a record in the
// way of the alias.
func TestPreflightHostedZone(t *testing.T) {
	m := preflighttest.Start(t, preflighttest.AMIParameters("ca-central-1"))
	seedAccount(t, m, "ca-central-1")
	public := m.CreateHostedZone(t, "ca-central-1", "chem.example.edu", false)
	private := m.CreateHostedZone(t, "ca-central-1", "chem.example.edu", true)
	m.SetEnv(t)
	project := func(zone string) string {
		return tempProject(t, map[string]string{"chem": fmt.Sprintf(zoneStack, zone)})
	}

	code, out, errOut := sandboxctl(t, project(public), "preflight", "chem")
	if code != exitOK {
		t.Fatalf("public zone: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitOK, out, errOut)
	}
	got := lines(t, out)
	if line := got["hosted zone"]; line != "ok    hosted zone: "+public+" is the public hosted zone chem.example.edu; access.hostname llm.chem.example.edu is in it" {
		t.Errorf("hosted zone line: %q", line)
	}
	if line := got["hosted zone record"]; !strings.HasPrefix(line, "ok    hosted zone record: chem.example.edu holds no A or CNAME record for llm.chem.example.edu") {
		t.Errorf("hosted zone record line: %q", line)
	}
	if _, ok := got["certificate"]; ok || strings.Contains(errOut, "checking the certificate...") {
		t.Errorf("no access.certificateArn, yet the certificate was checked:\n%s\n%s", out, errOut)
	}
	if !strings.Contains(errOut, "checking the hosted zone...") {
		t.Errorf("stderr lacks the progress line:\n%s", errOut)
	}
	if !strings.HasSuffix(out, "chem in ca-central-1: 12 check(s), 12 ok, 0 warning(s), 0 failure(s): ready to deploy\n") {
		t.Errorf("summary:\n%s", out)
	}

	code, out, errOut = sandboxctl(t, project(private), "preflight", "chem")
	if code != exitInvalid {
		t.Fatalf("private zone: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitInvalid, out, errOut)
	}
	line := lines(t, out)["hosted zone"]
	for _, want := range []string{"FAIL  hosted zone: " + private + " is the private hosted zone chem.example.edu", "cannot see a private zone",
		" -> set access.hostedZoneId to a public hosted zone", "or set access.certificateArn"} {
		if !strings.Contains(line, want) {
			t.Errorf("private zone: line lacks %q: %s", want, line)
		}
	}
	if !strings.HasSuffix(out, "1 failure(s): fix the failures before deploying\n") {
		t.Errorf("private zone: summary:\n%s", out)
	}

	// A CNAME in the way of the alias: the deploy would fail on it, and so does preflight.
	m.CreateRecord(t, public, "llm.chem.example.edu", "CNAME", "", "old-llm.example.edu")
	code, out, errOut = sandboxctl(t, project(public), "preflight", "chem")
	if code != exitInvalid {
		t.Fatalf("record in the way: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitInvalid, out, errOut)
	}
	if line := lines(t, out)["hosted zone record"]; !strings.HasPrefix(line, "FAIL  hosted zone record: chem.example.edu already holds a record for access.hostname llm.chem.example.edu (CNAME old-llm.example.edu)") ||
		!strings.Contains(line, " -> delete that record") {
		t.Errorf("record in the way: line %q", line)
	}
}

func TestPreflightUsageErrors(t *testing.T) {
	root := projectRoot(t)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no stack", []string{"preflight"}, exitUsage, "want exactly one STACK (got 0)"},
		{"two stacks", []string{"preflight", "dev", "physics"}, exitUsage, "want exactly one STACK (got 2)"},
		{"bad format", []string{"preflight", "dev", "--format", "yaml"}, exitUsage, "--format must be text or json"},
		{"unknown stack", []string{"preflight", "nosuch"}, exitUsage, `unknown stack "nosuch"`},
		{"help", []string{"preflight", "--help"}, exitOK, "Usage: sandboxctl [--project DIR] preflight STACK [--format text|json] [--region R]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := sandboxctl(t, root, c.args...)
			if code != c.code || !strings.Contains(out+errOut, c.want) {
				t.Errorf("exit %d (want %d), want %q in:\n%s%s", code, c.code, c.want, out, errOut)
			}
		})
	}

	// An invalid stack file is reported as validate does, before any AWS call.
	dir := tempProject(t, map[string]string{"bad": strings.Replace(stackFile("bad", "10.20.0.0/16"), "llama3.1:8b", "nope:1b", 1)})
	code, out, errOut := sandboxctl(t, dir, "preflight", "bad")
	if code != exitInvalid || out != "" || !strings.Contains(errOut, `stacks/Pulumi.bad.yaml: pools.gpu.models[0]: unknown model "nope:1b"`) {
		t.Errorf("invalid stack: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// With no credentials anywhere, preflight stops before any check and says how to provide them.
func TestPreflightWithoutCredentials(t *testing.T) {
	preflighttest.Isolate(t)
	code, out, errOut := sandboxctl(t, projectRoot(t), "preflight", "dev")
	if code != exitUsage || out != "" {
		t.Errorf("exit %d (want %d), stdout %q", code, exitUsage, out)
	}
	for _, want := range []string{"sandboxctl preflight: no AWS credentials:", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "docs/preflight.md"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "checking") {
		t.Errorf("checks ran without credentials:\n%s", errOut)
	}
}

// docs/preflight.md shows the command's help as the command prints it.
func TestPreflightHelpIsDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/preflight.md", "preflight")
}

// Where something at the instance metadata address refuses the IMDSv2 token (404 here, as
// proxies on some networks answer), the SDK falls back to IMDSv1 and logs a warning straight to
// the process's stderr. Without credentials, preflight prints its own message and nothing else.
func TestPreflightWithoutCredentialsPrintsNoSDKWarning(t *testing.T) {
	preflighttest.Isolate(t)
	var tokenAsked atomic.Bool
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			tokenAsked.Store(true)
		}
		http.NotFound(w, r)
	}))
	defer imds.Close()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "")
	os.Unsetenv("AWS_EC2_METADATA_DISABLED")
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

	var code int
	var out, errOut string
	process := processStderr(t, func() { code, out, errOut = sandboxctl(t, projectRoot(t), "preflight", "dev") })
	if !tokenAsked.Load() {
		t.Fatal("the IMDSv2 token was never asked for: the test does not reach the path that warns")
	}
	if code != exitUsage || out != "" || !strings.HasPrefix(errOut, "sandboxctl preflight: no AWS credentials:") || !strings.Contains(errOut, "AWS_PROFILE") {
		t.Errorf("exit %d (want %d), stdout %q, stderr:\n%s", code, exitUsage, out, errOut)
	}
	if process != "" {
		t.Errorf("the process's stderr got more than the command printed:\n%s", process)
	}
}

// processStderr runs f with the process's stderr captured, and returns what was written to it.
func processStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		read <- string(b)
	}()
	defer func() {
		os.Stderr = saved
		w.Close()
		r.Close()
	}()
	f()
	os.Stderr = saved
	w.Close()
	return <-read
}
