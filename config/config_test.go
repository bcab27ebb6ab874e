package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every file in testdata/invalid names, on its first line, a message it must produce.
func TestInvalidStackFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("want at least 25 invalid stack files, found %d", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			want := wantLine(t, file)
			values, err := ReadStackFile(file)
			if err != nil {
				t.Fatal(err)
			}
			source := StackFile(name)
			_, err = Parse(name, source, values)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			if !strings.Contains(err.Error(), source+": "+want) {
				t.Errorf("want a problem %q, got:\n%s", source+": "+want, err)
			}
			for _, p := range ps {
				if p.Path == "" || p.Source != source || p.Message == "" {
					t.Errorf("problem without a file, key or message: %+v", p)
				}
			}
		})
	}
}

// wantLine reads the "# want: ..." header of a test stack file.
func wantLine(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	want, ok := strings.CutPrefix(first, "# want: ")
	if !ok {
		t.Fatalf("%s: first line must be '# want: <message>'", file)
	}
	return want
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	values := Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "Chem",
		"llm-sandbox:network":    `{"cidr":"10.20.0.0/8","azCount":5}`,
		"llm-sandbox:pools":      `{"gpu":{"models":["nope:1b"],"maxSize":0}}`,
		"llm-sandbox:tags":       `{"aws:x":"y"}`,
	}
	_, err := Parse("chem", "stacks/Pulumi.chem.yaml", values)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	var paths []string
	for _, p := range ps {
		paths = append(paths, p.Path)
	}
	want := []string{"department", "network.cidr", "network.azCount", "pools.gpu.maxSize", "pools.gpu.models[0]", "tags.aws:x"}
	for _, w := range want {
		if !containsPath(paths, w) {
			t.Errorf("no problem reported for %s; got %v", w, paths)
		}
	}
}

func containsPath(paths []string, p string) bool {
	for _, x := range paths {
		if x == p {
			return true
		}
	}
	return false
}

// Every key left out takes its default. Access has no default protocol: an internal stack
// names plain HTTP or a certificate (TestPlainHTTPIsAChoice), so this one says plainHttp.
func TestDefaultsAreApplied(t *testing.T) {
	values := Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.50.0.0/16"}`,
		"llm-sandbox:access":     `{"plainHttp":true}`,
		"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
	}
	spec, err := Parse("history", "stacks/Pulumi.history.yaml", values)
	if err != nil {
		t.Fatal(err)
	}
	want := &Spec{
		Stack: "history", Source: "stacks/Pulumi.history.yaml", Region: "ca-central-1", Department: "history",
		Network: Network{CIDR: netip.MustParsePrefix("10.50.0.0/16"), AZCount: 2, NAT: NATSingle},
		Access:  Access{Mode: AccessInternal, PlainHTTP: true},
		Pools: map[string]Pool{"gpu": {
			Name: "gpu", InstanceType: "g5.xlarge", MinSize: 1, MaxSize: 2, Models: []string{"llama3.1:8b"},
			Parallel: 4, ContextLength: 8192,
		}},
		Gateway: Gateway{InstanceType: "c7i.large", MinSize: 2, MaxSize: 4, DeletionProtection: true},
		Teams:   map[string]Team{},
		Tags:    map[string]string{},
	}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("got  %+v\nwant %+v", spec, want)
	}
}

// The front listener's protocol is always a choice in the stack file: an internal stack
// without a certificate is refused with both ways out named, plain HTTP needs the key, and
// the key is refused where HTTPS is already chosen or required.
func TestPlainHTTPIsAChoice(t *testing.T) {
	const cert = `"certificateArn":"arn:aws:acm:ca-central-1:123456789012:certificate/8f2b6c1e-4d3a-4b7e-9c1d-2a5e6f7b8c9d"`
	for _, tc := range []struct {
		access string // "" for no access key at all
		plain  bool
		want   string // a problem at access.plainHttp, "" for none
	}{
		{"", false, "set access.certificateArn (or access.hostname with access.hostedZoneId) for HTTPS, or set access.plainHttp: true"},
		{`{"mode":"internal"}`, false, "would send API keys and prompts in clear"},
		{`{"mode":"internal","plainHttp":false}`, false, "or set access.plainHttp: true"},
		{`{"mode":"internal","plainHttp":true}`, true, ""},
		{`{"mode":"internal",` + cert + `}`, false, ""},
		{`{"mode":"internal","hostname":"llm.hist.example.edu","hostedZoneId":"Z0123456789ABCDEFGHIJ"}`, false, ""},
		{`{"mode":"internal","plainHttp":true,` + cert + `}`, true, "must not be true together with access.certificateArn"},
		{`{"mode":"internal","plainHttp":true,"hostname":"llm.hist.example.edu","hostedZoneId":"Z0123456789ABCDEFGHIJ"}`, true, "must not be true together with access.certificateArn or access.hostedZoneId"},
		{`{"mode":"public","plainHttp":true,"allowedCidrs":["142.103.0.0/16"],` + cert + `}`, true, "must not be true when access.mode is public"},
		{`{"mode":"public","plainHttp":false,"allowedCidrs":["142.103.0.0/16"],` + cert + `}`, false, ""},
	} {
		values := Values{
			"aws:region":             "ca-central-1",
			"llm-sandbox:department": "history",
			"llm-sandbox:network":    `{"cidr":"10.50.0.0/16"}`,
			"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
		}
		if tc.access != "" {
			values["llm-sandbox:access"] = tc.access
		}
		spec, err := Parse("history", "stacks/Pulumi.history.yaml", values)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.access, err)
			} else if spec.Access.PlainHTTP != tc.plain {
				t.Errorf("%s: PlainHTTP %t, want %t", tc.access, spec.Access.PlainHTTP, tc.plain)
			}
			continue
		}
		var ps Problems
		if !errors.As(err, &ps) {
			t.Errorf("%s: got %v, want a problem at access.plainHttp containing %q", tc.access, err, tc.want)
			continue
		}
		found := false
		for _, p := range ps {
			found = found || (p.Path == "access.plainHttp" && strings.Contains(p.Message, tc.want))
		}
		if !found {
			t.Errorf("%s: got %v, want a problem at access.plainHttp containing %q", tc.access, err, tc.want)
		}
	}
}

// A hosted zone without a certificate ARN means a certificate the program requests; with one,
// the given certificate is used and only the DNS record is made.
func TestHostedZoneMakesTheCertificateOptional(t *testing.T) {
	base := Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.50.0.0/16"}`,
		"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
	}
	for _, tc := range []struct {
		access  string
		managed bool
	}{
		{`{"mode":"public","hostname":"llm.hist.example.edu","hostedZoneId":"Z0123456789ABCDEFGHIJ","allowedCidrs":["142.103.0.0/16"]}`, true},
		{`{"mode":"internal","hostname":"llm.hist.example.edu","hostedZoneId":"Z0123456789ABCDEFGHIJ"}`, true},
		{`{"mode":"public","hostname":"llm.hist.example.edu","hostedZoneId":"Z0123456789ABCDEFGHIJ","allowedCidrs":["142.103.0.0/16"],
		   "certificateArn":"arn:aws:acm:ca-central-1:123456789012:certificate/8f2b6c1e-4d3a-4b7e-9c1d-2a5e6f7b8c9d"}`, false},
	} {
		values := Values{"llm-sandbox:access": tc.access}
		for k, v := range base {
			values[k] = v
		}
		spec, err := Parse("history", "stacks/Pulumi.history.yaml", values)
		if err != nil {
			t.Fatalf("%s: %v", tc.access, err)
		}
		if spec.Access.HostedZoneID != "Z0123456789ABCDEFGHIJ" || spec.Access.ManagedCertificate() != tc.managed {
			t.Errorf("%s: got zone %q, managed certificate %t; want Z0123456789ABCDEFGHIJ, %t",
				tc.access, spec.Access.HostedZoneID, spec.Access.ManagedCertificate(), tc.managed)
		}
	}
}

// The engine passes values as strings (objects as JSON); a stack file read by sandboxctl must
// give the same Spec.
func TestStackFileAndEngineValuesAgree(t *testing.T) {
	fromFile, err := Load("..", "chemistry")
	if err != nil {
		t.Fatal(err)
	}
	engine := Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "chemistry",
		"llm-sandbox:network":    `{"azCount":2,"cidr":"10.20.0.0/16","nat":"single"}`,
		"llm-sandbox:access": `{"allowAnywhere":false,"allowedCidrs":["142.103.0.0/16","206.87.0.0/16"],` +
			`"certificateArn":"arn:aws:acm:ca-central-1:123456789012:certificate/8f2b6c1e-4d3a-4b7e-9c1d-2a5e6f7b8c9d","hostname":"llm.chem.example.edu","mode":"public"}`,
		"llm-sandbox:pools": `{"gpu":{"contextLength":8192,"instanceType":"g5.xlarge","maxSize":2,"minSize":1,` +
			`"models":["llama3.1:8b","qwen2.5:7b","nomic-embed-text"],"parallel":4,` +
			`"schedule":{"days":"MON-FRI","start":"08:00","stop":"20:00","timezone":"America/Vancouver"}}}`,
		"llm-sandbox:gateway": `{"instanceType":"t3.large","maxSize":4,"minSize":2}`,
		"llm-sandbox:teams": `{"ci":{"maxKeyLifetimeDays":1,"requestsPerMinute":600},"chem101":{"maxKeyLifetimeDays":120,"models":["llama3.1:8b"],"parallelPerKey":1,` +
			`"requestsPerMinute":10,"tokensPerMinute":20000},"grad":{"parallelPerKey":2,"requestsPerMinute":30,` +
			`"tokensPerMinute":60000},"staff":{"maxKeyLifetimeDays":365}}`,
		"llm-sandbox:tags": `{"CostCenter":"CHEM-1234"}`,
	}
	fromEngine, err := Parse("chemistry", StackFile("chemistry"), engine)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, fromEngine) {
		t.Errorf("file and engine disagree:\nfile   %+v\nengine %+v", fromFile, fromEngine)
	}
}

func TestUnqualifiedKeysBelongToTheProject(t *testing.T) {
	values, err := StackFileValues([]byte("config:\n  department: history\n  aws:region: ca-central-1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if values["llm-sandbox:department"] != "history" {
		t.Errorf("department not read as llm-sandbox:department: %v", values)
	}
}

func TestExampleStacksAreValidTogether(t *testing.T) {
	stacks, err := Stacks("..")
	if err != nil {
		t.Fatal(err)
	}
	if len(stacks) < 3 {
		t.Fatalf("want at least three example stacks, got %v", stacks)
	}
	var specs []*Spec
	for _, s := range stacks {
		spec, err := Load("..", s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		specs = append(specs, spec)
	}
	if ps := CheckSet(specs); len(ps) > 0 {
		t.Errorf("example stacks clash:\n%s", ps)
	}
}

func TestCheckSetFindsDuplicatesAndOverlaps(t *testing.T) {
	a := &Spec{Source: "stacks/Pulumi.a.yaml", Department: "chem", Network: Network{CIDR: netip.MustParsePrefix("10.20.0.0/16")}}
	b := &Spec{Source: "stacks/Pulumi.b.yaml", Department: "chem", Network: Network{CIDR: netip.MustParsePrefix("10.20.4.0/22")}}
	c := &Spec{Source: "stacks/Pulumi.c.yaml", Department: "phys", Network: Network{CIDR: netip.MustParsePrefix("10.21.0.0/16")}}
	got := CheckSet([]*Spec{a, b, c}).Error()
	want := "stacks/Pulumi.a.yaml: department: department \"chem\" is also deployed by stacks/Pulumi.b.yaml\n" +
		"stacks/Pulumi.b.yaml: department: department \"chem\" is also deployed by stacks/Pulumi.a.yaml\n" +
		"stacks/Pulumi.a.yaml: network.cidr: overlaps 10.20.4.0/22 of stacks/Pulumi.b.yaml (got 10.20.0.0/16)\n" +
		"stacks/Pulumi.b.yaml: network.cidr: overlaps 10.20.0.0/16 of stacks/Pulumi.a.yaml (got 10.20.4.0/22)"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestLoadMissingStack(t *testing.T) {
	_, err := Load("..", "no-such-department")
	if err == nil || !strings.Contains(err.Error(), `stacks/Pulumi.no-such-department.yaml: (file): no stack file for stack "no-such-department"`) {
		t.Errorf("got %v", err)
	}
}

func TestStackFileThatIsNotYAML(t *testing.T) {
	if _, err := StackFileValues([]byte("config: [unclosed")); err == nil {
		t.Error("want an error for a file that is not YAML")
	}
}

func TestSuggest(t *testing.T) {
	for unknown, want := range map[string]string{"netwrok": "network", "Pools": "pools", "zzzzzz": ""} {
		if got := suggest(unknown, topLevelKeys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", unknown, got, want)
		}
	}
}

func TestListenerPortsAreStableAndDistinct(t *testing.T) {
	if (Pool{Name: "gpu"}).ListenerPort() != (Pool{Name: "gpu", Models: []string{"x"}}).ListenerPort() {
		t.Error("a pool's listener port depends on more than its name")
	}
	// Find two names that share a port, and check that validation refuses them together.
	seen := map[int]string{}
	var a, b string
	for i := 0; b == ""; i++ {
		name := fmt.Sprintf("p%d", i)
		port := Pool{Name: name}.ListenerPort()
		if port < ListenerPortBase || port >= ListenerPortBase+ListenerPortRange {
			t.Fatalf("port %d of %s out of range", port, name)
		}
		if other, ok := seen[port]; ok {
			a, b = other, name
		}
		seen[port] = name
	}
	values := Values{
		"aws:region": "ca-central-1", "llm-sandbox:department": "chem",
		"llm-sandbox:network": `{"cidr":"10.20.0.0/16"}`,
		"llm-sandbox:pools":   fmt.Sprintf(`{%q:{"models":["llama3.2:1b"]},%q:{"models":["llama3.2:1b"]}}`, a, b),
	}
	_, err := Parse("chem", "stacks/Pulumi.chem.yaml", values)
	if err == nil || !strings.Contains(err.Error(), "gets the same internal listener port") {
		t.Errorf("pools %s and %s share a port but got %v", a, b, err)
	}
}
