package program

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/components/sandbox"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/policy"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Every example stack plans, and what it plans follows from its Spec.
func TestPlanEveryStack(t *testing.T) {
	stacks, err := config.Stacks("..")
	if err != nil || len(stacks) == 0 {
		t.Fatalf("no stacks: %v", err)
	}
	for _, stack := range stacks {
		t.Run(stack, func(t *testing.T) {
			spec, plan := planExample(t, stack)
			count := map[string]int{}
			names := map[string]bool{}
			for _, r := range plan.Resources {
				count[r.Type]++
				names[r.Name] = true
			}
			for _, r := range plan.Resources {
				if r.Parent == "" && r.Type != sandbox.TypeToken {
					t.Errorf("%s %s is not inside the sandbox component", r.Type, r.Name)
				}
				if r.Parent != "" && !names[r.Parent] {
					t.Errorf("%s has an unknown parent %q", r.Name, r.Parent)
				}
			}
			azs := spec.Network.AZCount
			managed := map[bool]int{true: 1}[spec.Access.ManagedCertificate()]
			wantNAT := map[config.NATStrategy]int{config.NATSingle: 1, config.NATPerAZ: azs, config.NATNone: 0}[spec.Network.NAT]
			// A gateway of several LiteLLM processes shares its rate-limit counters in a cache,
			// whose AUTH token is the KeyStore's second secret.
			cache := map[bool]int{true: 1}[sandbox.SharedLimits(spec)]
			for typ, want := range map[string]int{
				sandbox.TypeToken:                                   1,
				"llmsandbox:network:Network":                        1,
				"llmsandbox:keys:KeyStore":                          1,
				"aws:ec2/vpc:Vpc":                                   1,
				"aws:ec2/subnet:Subnet":                             2 * azs,
				"aws:ec2/natGateway:NatGateway":                     wantNAT,
				"aws:ec2/flowLog:FlowLog":                           1,
				"aws:kms/key:Key":                                   1,
				"aws:secretsmanager/secret:Secret":                  1 + cache,
				"llmsandbox:cache:RateLimitCache":                   cache,
				"aws:elasticache/replicationGroup:ReplicationGroup": cache,
				// With a hosted zone: the hostname's record, and the certificate with its
				// validation record unless the stack names one.
				"aws:route53/record:Record":                           map[bool]int{true: 1}[spec.Access.HostedZoneID != ""] + managed,
				"aws:acm/certificate:Certificate":                     managed,
				"aws:acm/certificateValidation:CertificateValidation": managed,
			} {
				if count[typ] != want {
					t.Errorf("%s: %d, want %d", typ, count[typ], want)
				}
			}
			for _, poolName := range spec.PoolNames() {
				checkPool(t, plan, spec, spec.Pools[poolName])
			}
			provider := find(t, plan, "pulumi:providers:aws")
			if provider.Inputs["region"] != spec.Region {
				t.Errorf("provider region %v, want %s", provider.Inputs["region"], spec.Region)
			}
			tags := provider.Inputs["defaultTags"].(map[string]any)["tags"].(map[string]any)
			if tags["Department"] != spec.Department || tags["ManagedBy"] != "llm-sandbox" || tags["Stack"] != stack {
				t.Errorf("provider default tags %v", tags)
			}
			for k, v := range spec.Tags {
				if tags[k] != v {
					t.Errorf("stack tag %s=%s missing from default tags %v", k, v, tags)
				}
			}
			// Every example passes every rule; a stack that chose plain HTTP (dev) is told so
			// by the plain-http warning, and nothing else.
			var fs, plain []policy.Finding
			for _, f := range plan.Check() {
				if f.Rule == "plain-http" && f.Severity == policy.Warning {
					plain = append(plain, f)
					continue
				}
				fs = append(fs, f)
			}
			if len(fs) > 0 || (len(plain) > 0) != spec.Access.PlainHTTP {
				t.Errorf("policy findings:\n%v\nplain-http warnings %v with access.plainHttp %v", fs, plain, spec.Access.PlainHTTP)
			}
			var buf bytes.Buffer
			if err := plan.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(buf.String(), `"sk-`) {
				t.Error("the plan shows a master key value")
			}
		})
	}
}

// checkPool asserts that a pool's launch template, role, group, hook, scaling and target group
// are in the plan with the Spec's settings.
func checkPool(t *testing.T, plan *Plan, spec *config.Spec, pool config.Pool) {
	t.Helper()
	prefix := spec.Department + "-" + pool.Name
	byName := func(typ, name string) map[string]any {
		for _, r := range plan.Resources {
			if r.Type == typ && r.Name == name {
				return r.Inputs
			}
		}
		t.Errorf("pool %s: no %s %s in the plan", pool.Name, typ, name)
		return map[string]any{}
	}
	lt := byName("aws:ec2/launchTemplate:LaunchTemplate", prefix+"-lt")
	if md, _ := lt["metadataOptions"].(map[string]any); md["httpTokens"] != "required" || md["httpPutResponseHopLimit"] != 1.0 {
		t.Errorf("pool %s: launch template metadata options %v", pool.Name, lt["metadataOptions"])
	}
	if spot := pool.Spot; !spot && lt["instanceType"] != pool.InstanceType {
		t.Errorf("pool %s: launch template instance type %v, want %s", pool.Name, lt["instanceType"], pool.InstanceType)
	}
	byName("aws:iam/role:Role", prefix+"-role")
	byName("aws:lb/targetGroup:TargetGroup", prefix+"-tg")
	policy := byName("aws:autoscaling/policy:Policy", prefix+"-inflight-tracking")
	if ttc, _ := policy["targetTrackingConfiguration"].(map[string]any); ttc["targetValue"] != float64(pool.Parallel)*80/100 {
		t.Errorf("pool %s: in-flight target %v, want 80 %% of parallel %d", pool.Name, ttc["targetValue"], pool.Parallel)
	}
	asg := byName("aws:autoscaling/group:Group", prefix+"-asg")
	if asg["minSize"] != float64(pool.MinSize) || asg["maxSize"] != float64(pool.MaxSize) {
		t.Errorf("pool %s: group sizes %v..%v, want %d..%d", pool.Name, asg["minSize"], asg["maxSize"], pool.MinSize, pool.MaxSize)
	}
	hooks, _ := asg["initialLifecycleHooks"].([]any)
	// The launch hook ABANDONs by default; the terminating hook, which drains the node,
	// CONTINUEs.
	if len(hooks) != 2 || hooks[0].(map[string]any)["defaultResult"] != "ABANDON" ||
		hooks[1].(map[string]any)["lifecycleTransition"] != "autoscaling:EC2_INSTANCE_TERMINATING" || hooks[1].(map[string]any)["defaultResult"] != "CONTINUE" {
		t.Errorf("pool %s: lifecycle hooks %v, want the launch hook (ABANDON) and the terminating hook (CONTINUE)", pool.Name, asg["initialLifecycleHooks"])
	}
	_, mixed := asg["mixedInstancesPolicy"]
	_, warm := asg["warmPool"]
	if mixed != pool.Spot || warm != (pool.WarmPool > 0) {
		t.Errorf("pool %s: spot %v warm pool %d, but mixed instances %v, warm pool %v", pool.Name, pool.Spot, pool.WarmPool, mixed, warm)
	}
	schedules := 0
	for _, r := range plan.Resources {
		if r.Type == "aws:autoscaling/schedule:Schedule" && strings.HasPrefix(r.Name, prefix+"-") {
			schedules++
			if r.Inputs["timeZone"] != pool.Schedule.Timezone {
				t.Errorf("pool %s: schedule time zone %v", pool.Name, r.Inputs["timeZone"])
			}
		}
	}
	if want := map[bool]int{true: 2, false: 0}[pool.Schedule != nil]; schedules != want {
		t.Errorf("pool %s: %d scheduled actions, want %d", pool.Name, schedules, want)
	}
}

func find(t *testing.T, plan *Plan, typ string) PlannedResource {
	t.Helper()
	for _, r := range plan.Resources {
		if r.Type == typ {
			return r
		}
	}
	t.Fatalf("no %s in the plan", typ)
	return PlannedResource{}
}

// A plan reads the same every run, whatever order the SDK registered resources in.
func TestPlanIsDeterministic(t *testing.T) {
	spec, err := config.Load("..", "linguistics")
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for i := 0; i < 3; i++ {
		plan, err := PlanStack(spec, "..")
		if err != nil {
			t.Fatal(err)
		}
		var text, js bytes.Buffer
		if err := plan.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		// The master key is generated per run, but it is masked, so JSON must match too.
		if err := plan.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		got := text.String() + js.String()
		if i == 0 {
			first = got
		} else if got != first {
			t.Fatal("two plans of the same stack differ")
		}
	}
}

// Main reads the Spec from the engine's config, as `pulumi up` passes it, and exports outputs.
func TestMainReadsEngineConfig(t *testing.T) {
	values := config.Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.60.0.0/16","nat":"perAz"}`,
		"llm-sandbox:access":     `{"plainHttp":true}`,
		"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
	}
	m := mockaws.New("ca-central-1")
	if err := m.Run(Project, "history", values, Main); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.ByName(sandbox.TypeToken, "history"); !ok {
		t.Error("no sandbox named after the department")
	}
	if n := len(m.ByType("aws:ec2/natGateway:NatGateway")); n != 2 {
		t.Errorf("perAz over 2 AZs: %d NAT gateways, want 2", n)
	}
}

func TestMainRejectsInvalidConfig(t *testing.T) {
	values := config.Values{"aws:region": "ca-central-1", "llm-sandbox:department": "History"}
	m := mockaws.New("ca-central-1")
	err := m.Run(Project, "history", values, Main)
	if err == nil || !strings.Contains(err.Error(), "stacks/Pulumi.history.yaml: department: must be a lowercase DNS label") {
		t.Errorf("got %v", err)
	}
	if len(m.ByType(sandbox.TypeToken)) != 0 {
		t.Error("an invalid stack registered resources")
	}
}

// `pulumi up` by hand runs the checks across departments too: a stack whose range overlaps
// another stack file's fails before anything is registered, naming both files.
func TestMainChecksTheOtherStackFiles(t *testing.T) {
	values := config.Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.20.128.0/20"}`,
		"llm-sandbox:access":     `{"plainHttp":true}`,
		"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
	}
	m := mockaws.New("ca-central-1")
	err := m.Run(Project, "history", values, Main)
	want := "stacks/Pulumi.history.yaml: network.cidr: overlaps 10.20.0.0/16 of stacks/Pulumi.chemistry.yaml (got 10.20.128.0/20)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
	if len(m.ByType("llmsandbox:index:Sandbox")) != 0 {
		t.Error("a stack that clashes with another registered resources")
	}
}

// Under `pulumi up` the engine's whole config is in PULUMI_CONFIG, so typos are caught there too.
func TestMainCatchesUnknownKeysFromTheEngine(t *testing.T) {
	all := map[string]string{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.60.0.0/16"}`,
		"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
		"llm-sandbox:gatewy":     `{"minSize":2}`,
	}
	raw, _ := json.Marshal(all)
	t.Setenv(pulumi.EnvConfig, string(raw))
	err := mockaws.New("ca-central-1").Run(Project, "history", nil, Main)
	if err == nil || !strings.Contains(err.Error(), `gatewy: unknown key "gatewy" (did you mean "gateway"?)`) {
		t.Errorf("got %v", err)
	}
}

// Pulumi.yaml is a valid project file whose typed config schema declares every key of the
// stack-file contract, with a description, and whose defaults are the Spec's defaults.
func TestProjectFileDeclaresTheConfigSchema(t *testing.T) {
	proj, err := workspace.LoadProject("../Pulumi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if proj.Name != Project || proj.Runtime.Name() != "go" || proj.StackConfigDir != "stacks" {
		t.Errorf("project %s runtime %s stackConfigDir %q", proj.Name, proj.Runtime.Name(), proj.StackConfigDir)
	}
	for _, key := range config.TopLevelKeys() {
		typ, ok := proj.Config[key]
		if !ok {
			t.Errorf("Pulumi.yaml does not declare %s", key)
			continue
		}
		if typ.Type == nil || typ.Description == "" {
			t.Errorf("%s has no type or description", key)
		}
	}
	if len(proj.Config) != len(config.TopLevelKeys()) {
		t.Errorf("Pulumi.yaml declares %d keys, the Spec has %d", len(proj.Config), len(config.TopLevelKeys()))
	}
	// The declared defaults must parse to the Spec's own defaults. An internal stack must
	// choose its protocol (access.plainHttp or a certificate), so the bare stack chooses plain
	// HTTP, and so does the declared access default below; the rest is the default's.
	values := config.Values{
		"aws:region":             "ca-central-1",
		"llm-sandbox:department": "history",
		"llm-sandbox:network":    `{"cidr":"10.60.0.0/16"}`,
		"llm-sandbox:access":     `{"plainHttp":true}`,
		"llm-sandbox:pools":      `{"gpu":{"models":["llama3.1:8b"]}}`,
	}
	bare, err := config.Parse("history", "x", values)
	if err != nil {
		t.Fatal(err)
	}
	accessDefault, _ := json.Marshal(proj.Config["access"].Default)
	withAccessDefault := maps.Clone(values)
	withAccessDefault["llm-sandbox:access"] = string(accessDefault)
	if _, err := config.Parse("history", "x", withAccessDefault); err == nil ||
		!strings.Contains(err.Error(), "access.plainHttp: an internal endpoint without a certificate") {
		t.Errorf("the declared access default as it is: %v, want the plainHttp refusal", err)
	}
	// The engine refuses a stack that lacks a declared key without a default ("missing
	// configuration value"), so every key but the required ones has a default.
	required := []string{"department", "network", "pools"}
	for key, typ := range proj.Config {
		if typ.Default == nil {
			if !slices.Contains(required, key) {
				t.Errorf("Pulumi.yaml declares %s without a default: the engine would refuse every stack file without it", key)
			}
			continue
		}
		def := typ.Default
		if key == "access" {
			m, ok := def.(map[string]any)
			if !ok {
				t.Fatalf("access default %v is not a mapping", def)
			}
			m = maps.Clone(m)
			m["plainHttp"] = true
			def = m
		}
		raw, _ := json.Marshal(def)
		values[config.Namespace+":"+key] = string(raw)
	}
	withDefaults, err := config.Parse("history", "x", values)
	if err != nil {
		t.Fatalf("Pulumi.yaml defaults do not parse: %v", err)
	}
	if !reflect.DeepEqual(bare, withDefaults) {
		t.Errorf("Pulumi.yaml defaults differ from the Spec's:\n%+v\n%+v", bare, withDefaults)
	}
}

// An Ollama release without a pinned SHA-256 is refused before the agent is built or anything
// is registered, with the way to pin it; the offline plan of the same stack still renders and
// carries the refusal as a warning.
func TestRunRefusesAnUnpinnedOllamaRelease(t *testing.T) {
	spec, err := config.Load("..", "linguistics")
	if err != nil {
		t.Fatal(err)
	}
	unpinned := versions.Ollama
	unpinned.SHA256 = ""
	m := mockaws.New(spec.Region)
	err = m.Run(Project, spec.Stack, nil, func(ctx *pulumi.Context) error { return run(ctx, spec, "..", unpinned) })
	want := "refusing to deploy stack linguistics: versions.Ollama.SHA256 is not a pinned SHA-256"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "sandboxctl pin ollama "+unpinned.Version) {
		t.Errorf("run() = %v, want %q and how to pin it", err, want)
	}
	if n := len(m.Resources()); n != 0 {
		t.Errorf("an unpinned release registered %d resources", n)
	}

	plan, err := planStack(spec, "..", unpinned)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Resources) == 0 || len(plan.Warnings) != 1 || !strings.Contains(plan.Warnings[0], "sandboxctl pin ollama") {
		t.Fatalf("plan: %d resources, warnings %q; want the stack rendered with one warning naming sandboxctl pin ollama", len(plan.Resources), plan.Warnings)
	}
	var text bytes.Buffer
	if err := plan.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "warning: preview and up will refuse this stack: versions.Ollama.SHA256") {
		t.Errorf("the text plan does not print the warning:\n%s", text.String())
	}
	// The plan renders the unpinned release itself (not the project's pin), and the node agent
	// refuses the node config it renders.
	lts := plan.ByType("aws:ec2/launchTemplate:LaunchTemplate")
	pools := 0
	for _, lt := range lts {
		cfg := nodeConfigOf(t, lt)
		if !strings.Contains(cfg, `"role": "ollama"`) {
			continue
		}
		pools++
		if !strings.Contains(cfg, `"sha256": ""`) {
			t.Errorf("%s: the node config does not carry the unpinned release's empty hash:\n%s", lt.Name, cfg)
		}
		path := filepath.Join(t.TempDir(), "node.json")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := node.LoadConfig(path, node.Options{}); err == nil || !strings.Contains(err.Error(), "sandboxctl pin ollama "+unpinned.Version) {
			t.Errorf("%s: the agent loads the unpinned node config (err %v); want a refusal naming sandboxctl pin ollama", lt.Name, err)
		}
	}
	if pools == 0 {
		t.Fatalf("no pool launch template among %d", len(lts))
	}
	// `sandboxctl check` fails on it.
	found := false
	for _, f := range plan.Check() {
		found = found || f.Rule == "pinned-ollama" && strings.Contains(f.Message, "sandboxctl pin ollama "+unpinned.Version)
	}
	if !found {
		t.Errorf("Check() = %v, want a pinned-ollama finding", plan.Check())
	}
	pinned, err := planStack(spec, "..", versions.Ollama)
	if err != nil || len(pinned.Warnings) != 0 {
		t.Fatalf("the pinned release gives warnings %q (%v)", pinned.Warnings, err)
	}
	for _, f := range pinned.Check() {
		if f.Rule == "pinned-ollama" {
			t.Errorf("the pinned release gives a finding: %v", f)
		}
	}
}

// nodeConfigOf returns the node config a launch template's user data writes.
func nodeConfigOf(t *testing.T, lt PlannedResource) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(lt.Inputs["userData"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		WriteFiles []struct{ Path, Content string } `yaml:"write_files"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.WriteFiles {
		if f.Path == node.ConfigPath {
			return f.Content
		}
	}
	t.Fatalf("%s: the user data writes no node config", lt.Name)
	return ""
}

// planExample loads an example stack from stacks/ and renders its offline plan.
func planExample(t *testing.T, stack string) (*config.Spec, *Plan) {
	t.Helper()
	spec, err := config.Load("..", stack)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanStack(spec, "..")
	if err != nil {
		t.Fatal(err)
	}
	return spec, plan
}

func TestMain(m *testing.M) {
	// The engine's config must not leak in from the environment the tests run in.
	os.Unsetenv(pulumi.EnvConfig)
	os.Exit(m.Run())
}
