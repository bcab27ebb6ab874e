package sandbox

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/gateway"
	"github.com/llm-sandbox/llm-sandbox/components/modelpool"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

func testSpec(nat config.NATStrategy) *config.Spec {
	return &config.Spec{
		Stack: "chem-test", Source: "stacks/Pulumi.chem-test.yaml", Region: "ca-central-1", Department: "chem",
		Network: config.Network{CIDR: netip.MustParsePrefix("10.20.0.0/16"), AZCount: 3, NAT: nat},
		Access:  config.Access{Mode: config.AccessInternal, PlainHTTP: true},
		Pools: map[string]config.Pool{"gpu": {
			Name: "gpu", InstanceType: "g5.xlarge", MinSize: 1, MaxSize: 2, Models: []string{"llama3.1:8b"},
			Parallel: 4, ContextLength: 8192,
		}},
		Gateway: config.Gateway{InstanceType: "t3.large", MinSize: 2, MaxSize: 4},
		Tags:    map[string]string{"CostCenter": "CHEM-1"},
	}
}

// fakeAgent writes a stand-in agent binary (the artifacts bucket only uploads and hashes it).
func fakeAgent(t *testing.T) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sandbox-node")
	content := []byte("stand-in agent binary")
	if err := os.WriteFile(path, content, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	return path, hex.EncodeToString(sum[:])
}

func build(t *testing.T, spec *config.Spec) (*mockaws.Monitor, error) {
	t.Helper()
	path, sum := fakeAgent(t)
	m := mockaws.New("ca-central-1")
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		_, err := NewSandbox(ctx, "chem", &SandboxArgs{Spec: spec, AgentPath: path, AgentSHA256: sum})
		return err
	})
	return m, err
}

func TestSandboxComposesKeysAndNetworkFromTheSpec(t *testing.T) {
	m, err := build(t, testSpec(config.NATPerAZ))
	if err != nil {
		t.Fatal(err)
	}
	net, ok := m.ByName("llmsandbox:network:Network", "chem-network")
	if !ok {
		t.Fatal("no network component chem-network")
	}
	keys, ok := m.ByName("llmsandbox:keys:KeyStore", "chem-keys")
	if !ok {
		t.Fatal("no key store chem-keys")
	}
	for _, c := range []mockaws.Resource{net, keys} {
		if m.NameOf(c.Parent) != "chem" {
			t.Errorf("%s is parented to %q, want the sandbox", c.Name, m.NameOf(c.Parent))
		}
	}
	// The Spec's network settings reach the network: 3 AZs, a NAT gateway per AZ.
	if n := len(m.ByType("aws:ec2/subnet:Subnet")); n != 6 {
		t.Errorf("%d subnets, want 6", n)
	}
	if n := len(m.ByType("aws:ec2/natGateway:NatGateway")); n != 3 {
		t.Errorf("%d NAT gateways, want 3", n)
	}
	vpcs := m.ByType("aws:ec2/vpc:Vpc")
	if len(vpcs) != 1 || mockaws.Plain(vpcs[0].Inputs)["cidrBlock"] != "10.20.0.0/16" {
		t.Errorf("VPC: %+v", vpcs)
	}
	// Flow logs are encrypted with the department key.
	groups := m.ByType("aws:cloudwatch/logGroup:LogGroup")
	if len(groups) != 1 || mockaws.Plain(groups[0].Inputs)["kmsKeyId"] != "arn:aws:kms:ca-central-1:123456789012:key/chem-keys-key-id" {
		t.Errorf("flow-log group not encrypted with the department key: %+v", groups)
	}
	// The key store is the department's.
	aliases := m.ByType("aws:kms/alias:Alias")
	if len(aliases) != 1 || mockaws.Plain(aliases[0].Inputs)["name"] != "alias/llm-sandbox/chem" {
		t.Errorf("alias: %+v", aliases)
	}
}

// Every AWS resource is created through the sandbox's provider: the Spec's region and the
// department's tags, whatever the engine's default provider says.
func TestEveryResourceUsesTheDepartmentProvider(t *testing.T) {
	m, err := build(t, testSpec(config.NATSingle))
	if err != nil {
		t.Fatal(err)
	}
	providers := m.ByType("pulumi:providers:aws")
	if len(providers) != 1 || providers[0].Name != "chem-aws" {
		t.Fatalf("want exactly the sandbox provider, got %+v", providers)
	}
	in := mockaws.Plain(providers[0].Inputs)
	if in["region"] != "ca-central-1" {
		t.Errorf("provider region %v", in["region"])
	}
	want := map[string]any{"CostCenter": "CHEM-1", "Department": "chem", "ManagedBy": "llm-sandbox", "Stack": "chem-test"}
	tags := in["defaultTags"].(map[string]any)["tags"].(map[string]any)
	for k, v := range want {
		if tags[k] != v {
			t.Errorf("default tag %s = %v, want %v", k, tags[k], v)
		}
	}
	if len(tags) != len(want) {
		t.Errorf("default tags %v, want %v", tags, want)
	}
	for _, r := range m.Resources() {
		if r.Custom && strings.HasPrefix(r.Type, "aws:") && !strings.Contains(r.Provider, "::chem-aws::") {
			t.Errorf("%s %s uses provider %q, not the sandbox's", r.Type, r.Name, r.Provider)
		}
	}
}

// One model pool per pool of the Spec, wired to the network, the key and the artifacts bucket.
func TestSandboxBuildsOnePoolPerSpecPool(t *testing.T) {
	spec := testSpec(config.NATSingle)
	spec.Pools["batch"] = config.Pool{
		Name: "batch", InstanceType: "g6.xlarge", MinSize: 0, MaxSize: 3, Models: []string{"mistral:7b"},
		Parallel: 4, ContextLength: 8192, Spot: true,
		Schedule: &config.Schedule{Timezone: "America/Toronto", Days: "MON-FRI", Start: "07:00", Stop: "19:00"},
	}
	m, err := build(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	pools := m.ByType(modelpool.TypeToken)
	if len(pools) != 2 {
		t.Fatalf("%d model pools, want 2", len(pools))
	}
	for _, name := range []string{"chem-gpu", "chem-batch"} {
		p, ok := m.ByName(modelpool.TypeToken, name)
		if !ok || m.NameOf(p.Parent) != "chem" {
			t.Errorf("model pool %s missing or not inside the sandbox", name)
		}
	}
	if _, ok := m.ByName("llmsandbox:artifacts:Bucket", "chem-artifacts"); !ok {
		t.Error("no artifacts bucket chem-artifacts")
	}
	batch, ok := m.ByName("aws:autoscaling/group:Group", "chem-batch-asg")
	if !ok {
		t.Fatal("no group chem-batch-asg")
	}
	in := mockaws.Plain(batch.Inputs)
	mixed, _ := in["mixedInstancesPolicy"].(map[string]any)
	if mixed == nil || in["capacityRebalance"] != true {
		t.Errorf("spot pool without mixed instances and capacity rebalance: %v", in)
	}
	if len(m.ByType("aws:autoscaling/schedule:Schedule")) != 2 {
		t.Error("the batch pool's office hours are not scheduled")
	}
	gpu, _ := m.ByName("aws:ec2/launchTemplate:LaunchTemplate", "chem-gpu-lt")
	tags := mockaws.Plain(gpu.Inputs)["tagSpecifications"].([]any)[0].(map[string]any)["tags"].(map[string]any)
	if tags["CostCenter"] != "CHEM-1" || tags["ManagedBy"] != "llm-sandbox" || tags["Pool"] != "gpu" {
		t.Errorf("instances are not tagged with the department's tags: %v", tags)
	}
}

func TestTagsCannotBeOverriddenByTheStack(t *testing.T) {
	spec := testSpec(config.NATSingle)
	spec.Tags = map[string]string{"Department": "other"} // config rejects this; the component still wins
	if got := Tags(spec)["Department"]; got != "chem" {
		t.Errorf("Department tag %q, want chem", got)
	}
}

func TestSandboxRequiresASpec(t *testing.T) {
	m, err := build(t, nil)
	if err == nil || !strings.Contains(err.Error(), "Spec is required") {
		t.Errorf("got %v", err)
	}
	if n := len(m.Resources()); n != 0 {
		t.Errorf("%d resources registered without a Spec", n)
	}
}

// A stack that may be destroyed (deletion protection off) can have its bucket emptied by
// destroy, which it always needs: the agent object is retained on delete. A protected stack's
// bucket keeps S3's refusal.
func TestBucketForceDestroyFollowsDeletionProtection(t *testing.T) {
	for _, protected := range []bool{true, false} {
		spec := testSpec(config.NATSingle)
		spec.Gateway.DeletionProtection = protected
		m, err := build(t, spec)
		if err != nil {
			t.Fatal(err)
		}
		// The artifacts bucket and its access-log bucket.
		buckets := m.ByType("aws:s3/bucketV2:BucketV2")
		if len(buckets) != 2 {
			t.Fatalf("%d buckets, want 2", len(buckets))
		}
		for _, b := range buckets {
			if got := mockaws.Plain(b.Inputs)["forceDestroy"]; got != !protected {
				t.Errorf("deletion protection %t: bucket %s forceDestroy %v, want %t", protected, b.Name, got, !protected)
			}
		}
		// The key registry is protected exactly when the stack is, and the gateway nodes'
		// read grant names it.
		tables := m.ByType("aws:dynamodb/table:Table")
		if len(tables) != 1 {
			t.Fatalf("%d tables, want 1", len(tables))
		}
		if got := mockaws.Plain(tables[0].Inputs)["deletionProtectionEnabled"]; got != protected {
			t.Errorf("deletion protection %t: table deletionProtectionEnabled %v", protected, got)
		}
		granted := false
		for _, rp := range m.ByType("aws:iam/rolePolicy:RolePolicy") {
			granted = granted || strings.Contains(fmt.Sprint(mockaws.Plain(rp.Inputs)["policy"]), tables[0].ARN)
		}
		if !granted {
			t.Errorf("no role policy names the registry table %s", tables[0].ARN)
		}
	}
}

// The artifacts bucket's access logs are kept as long as the flow logs.
func TestAccessLogsKeptAsLongAsFlowLogs(t *testing.T) {
	m, err := build(t, testSpec(config.NATSingle))
	if err != nil {
		t.Fatal(err)
	}
	groups := m.ByType("aws:cloudwatch/logGroup:LogGroup")
	flow := -1.0
	for _, g := range groups {
		if strings.HasSuffix(g.Name, "-flow-logs") {
			flow, _ = mockaws.Plain(g.Inputs)["retentionInDays"].(float64)
		}
	}
	lcs := m.ByType("aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2")
	if flow <= 0 || len(lcs) != 1 {
		t.Fatalf("flow-log retention %v, %d lifecycle configurations; want a retention and one configuration", flow, len(lcs))
	}
	rule := mockaws.Plain(lcs[0].Inputs)["rules"].([]any)[0].(map[string]any)
	if got := rule["expiration"].(map[string]any)["days"]; got != flow {
		t.Errorf("access logs expire after %v days, flow logs after %v", got, flow)
	}
}

// The sandbox and the model pools were renamed to llmsandbox:<package>:<Type>; each registers
// its former type token as an alias, so the engine matches the resources of stacks deployed
// under the old tokens (and, from the parent's alias, every child's) instead of replacing them.
func TestRenamedComponentsAliasTheirFormerTypes(t *testing.T) {
	m, err := build(t, testSpec(config.NATSingle))
	if err != nil {
		t.Fatal(err)
	}
	if FormerTypeToken == TypeToken || modelpool.FormerTypeToken == modelpool.TypeToken {
		t.Fatal("a former type token equals the current one")
	}
	for _, tc := range []struct{ typ, name, former string }{
		{TypeToken, "chem", "llmsandbox:index:Sandbox"},
		{modelpool.TypeToken, "chem-gpu", "llmsandbox:compute:ModelPool"},
	} {
		r, ok := m.ByName(tc.typ, tc.name)
		if !ok {
			t.Fatalf("no %s %s", tc.typ, tc.name)
		}
		if !reflect.DeepEqual(r.AliasTypes, []string{tc.former}) {
			t.Errorf("%s %s aliases types %v, want [%s]", tc.typ, tc.name, r.AliasTypes, tc.former)
		}
	}
}

// A stack's tags share AWS's per-resource limit with the project's own; the stack file allows
// as many as leave room for catalog.ProjectTagsPerResource, which must be what the busiest
// resource, a node, really carries.
func TestProjectTagsPerResourceIsWhatANodeCarries(t *testing.T) {
	spec := testSpec(config.NATSingle)
	spec.Tags = map[string]string{}
	for i := range rules.MaxTagsPerResource - catalog.ProjectTagsPerResource {
		spec.Tags[fmt.Sprintf("Tag%02d", i)] = "v"
	}
	m, err := build(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"chem-gpu-lt", "chem-gateway-lt"} {
		lt, ok := m.ByName("aws:ec2/launchTemplate:LaunchTemplate", name)
		if !ok {
			t.Fatalf("no launch template %s", name)
		}
		for _, spec := range mockaws.Plain(lt.Inputs)["tagSpecifications"].([]any) {
			tags := spec.(map[string]any)["tags"].(map[string]any)
			if len(tags) != rules.MaxTagsPerResource {
				t.Errorf("%s tags its %v with %d tags, want the limit %d", name, spec.(map[string]any)["resourceType"], len(tags), rules.MaxTagsPerResource)
			}
		}
	}
}

// The observability component watches every pool and the gateway by the names CloudWatch uses
// (their groups' names and their load balancers' and target groups' ARN suffixes), and its
// topic is encrypted with the department key and mails the stack's alert addresses.
func TestSandboxWatchesEveryPoolAndTheGateway(t *testing.T) {
	spec := testSpec(config.NATSingle)
	spec.Pools["cpu"] = config.Pool{Name: "cpu", InstanceType: "m7i.xlarge", MinSize: 1, MaxSize: 1, Models: []string{"qwen2.5:0.5b"}, Parallel: 2, ContextLength: 4096}
	spec.Alerts.Emails = []string{"chem-ops@example.edu"}
	m, err := build(t, spec)
	if err != nil {
		t.Fatal(err)
	}
	obs, ok := m.ByName("llmsandbox:observability:Observability", "chem-observability")
	if !ok || m.NameOf(obs.Parent) != "chem" {
		t.Fatalf("no observability component parented to the sandbox (found %v)", ok)
	}
	key := m.ByType("aws:kms/key:Key")[0].ARN
	topics := m.ByType("aws:sns/topic:Topic")
	if len(topics) != 1 || mockaws.Plain(topics[0].Inputs)["kmsMasterKeyId"] != key {
		t.Errorf("alarm topic not encrypted with the department key %s: %+v", key, topics)
	}
	subs := m.ByType("aws:sns/topicSubscription:TopicSubscription")
	if len(subs) != 1 || mockaws.Plain(subs[0].Inputs)["endpoint"] != "chem-ops@example.edu" {
		t.Errorf("subscriptions = %+v, want the stack's one address", subs)
	}
	suffix := func(typ, name string) string {
		_, ok := m.ByName(typ, name)
		if !ok {
			t.Fatalf("no %s %s", typ, name)
		}
		return "/" + name + "/"
	}
	for _, c := range []struct{ alarm, asg, tg, lb string }{
		{"gateway", "chem-gateway-asg", "chem-gateway-tg", "chem-gateway-alb"},
		{"pool-gpu", "chem-gpu-asg", "chem-gpu-tg", "chem-gateway-internal"},
		{"pool-cpu", "chem-cpu-asg", "chem-cpu-tg", "chem-gateway-internal"},
	} {
		a, ok := m.ByName("aws:cloudwatch/metricAlarm:MetricAlarm", "chem-observability-"+c.alarm+"-response-time")
		if !ok {
			t.Errorf("no response-time alarm for %s", c.alarm)
			continue
		}
		dims := fmt.Sprint(mockaws.Plain(a.Inputs)["dimensions"])
		if !strings.Contains(dims, "targetgroup"+suffix("aws:lb/targetGroup:TargetGroup", c.tg)) || !strings.Contains(dims, "app"+suffix("aws:lb/loadBalancer:LoadBalancer", c.lb)) {
			t.Errorf("%s response-time dimensions %s, want %s behind %s", c.alarm, dims, c.tg, c.lb)
		}
		p, ok := m.ByName("aws:cloudwatch/metricAlarm:MetricAlarm", "chem-observability-"+c.alarm+"-pending-node")
		if want := c.asg + "-" + mockaws.CannedNameSuffix; !ok || fmt.Sprint(mockaws.Plain(p.Inputs)["dimensions"]) != fmt.Sprint(map[string]any{"AutoScalingGroupName": want}) {
			t.Errorf("%s pending-node alarm %v, want it on group %s", c.alarm, p.Inputs, want)
		}
	}
	// The GPU pool's heartbeat is longer than the CPU pool's, and its alarm waits for it.
	gpu, _ := m.ByName("aws:cloudwatch/metricAlarm:MetricAlarm", "chem-observability-pool-gpu-pending-node")
	cpu, _ := m.ByName("aws:cloudwatch/metricAlarm:MetricAlarm", "chem-observability-pool-cpu-pending-node")
	if g, c := mockaws.Plain(gpu.Inputs)["datapointsToAlarm"], mockaws.Plain(cpu.Inputs)["datapointsToAlarm"]; g != float64(modelpool.HeartbeatGPUSeconds/60) || c != float64(modelpool.HeartbeatCPUSeconds/60) {
		t.Errorf("pending datapoints gpu %v, cpu %v; want the pools' heartbeats in minutes", g, c)
	}
	// Each pool's parallel is its in-flight alarm's threshold; the gateway has none.
	for pool, want := range map[string]float64{"gpu": float64(spec.Pools["gpu"].Parallel), "cpu": 2} {
		a, ok := m.ByName("aws:cloudwatch/metricAlarm:MetricAlarm", "chem-observability-pool-"+pool+"-in-flight-above-capacity")
		if got := mockaws.Plain(a.Inputs)["threshold"]; !ok || got != want {
			t.Errorf("pool %s in-flight alarm threshold %v (found %t), want its parallel %v", pool, got, ok, want)
		}
	}
	if _, ok := m.ByName("aws:cloudwatch/metricAlarm:MetricAlarm", "chem-observability-gateway-in-flight-above-capacity"); ok {
		t.Error("the gateway has an in-flight-above-capacity alarm, want none")
	}
}

// The Spec's teams reach the gateway with their models and per-key limits.
func TestTeamsReachTheGateway(t *testing.T) {
	spec := testSpec(config.NATSingle)
	spec.Teams = map[string]config.Team{
		"students": {Name: "students", Models: []string{"llama3.1:8b"}, RequestsPerMinute: 10, TokensPerMinute: 20000, ParallelPerKey: 1, MaxKeyLifetimeDays: 120},
	}
	got := teams(spec)
	want := map[string]gateway.Team{"students": {Models: []string{"llama3.1:8b"}, RequestsPerMinute: 10, TokensPerMinute: 20000, ParallelPerKey: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("teams = %+v, want %+v", got, want)
	}
	if _, err := build(t, spec); err != nil {
		t.Errorf("a sandbox with a team: %v", err)
	}
}

// A gateway that can run more than one LiteLLM process gets the rate-limit cache: its AUTH
// token in a secret of the KeyStore, the group in the department's private subnets encrypted
// with the department key, its endpoint and token secret in the gateway's node config, and its
// port open to the gateway nodes' group only.
func TestRateLimitCacheForSeveralProcesses(t *testing.T) {
	for _, tc := range []struct {
		maxSize int
		want    bool
	}{{4, true}, {1, true}} {
		spec := testSpec(config.NATSingle)
		spec.Gateway.MinSize, spec.Gateway.MaxSize = 1, tc.maxSize
		if got := SharedLimits(spec); got != tc.want {
			t.Errorf("maxSize %d on %s: SharedLimits %t, want %t", tc.maxSize, spec.Gateway.InstanceType, got, tc.want)
		}
	}
	one := testSpec(config.NATSingle)
	one.Gateway.InstanceType, one.Gateway.MinSize, one.Gateway.MaxSize = "one-vcpu.test", 1, 1
	if SharedLimits(one) {
		t.Errorf("one node of one worker: SharedLimits true, want false (one process counts exactly)")
	}

	m, err := build(t, testSpec(config.NATSingle))
	if err != nil {
		t.Fatal(err)
	}
	groups := m.ByType("aws:elasticache/replicationGroup:ReplicationGroup")
	if len(groups) != 1 {
		t.Fatalf("%d replication groups, want 1", len(groups))
	}
	rg := mockaws.Plain(groups[0].Inputs)
	if rg["kmsKeyId"] != "arn:aws:kms:ca-central-1:123456789012:key/chem-keys-key-id" || rg["subnetGroupName"] != "chem-limits" {
		t.Errorf("replication group kmsKeyId %v subnetGroupName %v", rg["kmsKeyId"], rg["subnetGroupName"])
	}
	subnets, _ := m.ByName("aws:elasticache/subnetGroup:SubnetGroup", "chem-cache-subnets")
	ids := fmt.Sprint(mockaws.Plain(subnets.Inputs)["subnetIds"])
	if !strings.Contains(ids, "private") || strings.Contains(ids, "public") {
		t.Errorf("cache subnets %s, want the private subnets", ids)
	}
	if _, ok := m.ByName("aws:secretsmanager/secret:Secret", "chem-keys-cache-auth-token"); !ok {
		t.Fatalf("no cache AUTH token secret")
	}
	secretArn := "arn:aws:secretsmanager:ca-central-1:123456789012:secret:chem-keys-cache-auth-token-id-AbCdEf"
	if !groups[0].Inputs["authToken"].ContainsSecrets() {
		t.Errorf("the replication group's authToken is not secret")
	}
	var lt mockaws.Resource
	for _, r := range m.ByType("aws:ec2/launchTemplate:LaunchTemplate") {
		if strings.Contains(r.Name, "gateway") {
			lt = r
		}
	}
	data, err := base64.StdEncoding.DecodeString(mockaws.Plain(lt.Inputs)["userData"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"host": "master.chem-limits.`) || !strings.Contains(string(data), `"authTokenSecretArn": "`+secretArn+`"`) || !strings.Contains(string(data), `"port": 6379`) {
		t.Errorf("the gateway's user data does not name the cache and its token's secret:\n%s", data)
	}
	var in []string
	for _, r := range m.ByType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
		if p := mockaws.Plain(r.Inputs); p["securityGroupId"] == "chem-cache-sg-id" {
			in = append(in, fmt.Sprint(p["referencedSecurityGroupId"], " ", p["fromPort"], " ", p["cidrIpv4"]))
		}
	}
	if len(in) != 1 || in[0] != "chem-gateway-sg-id 6379 <nil>" {
		t.Errorf("rules into the cache's group: %v, want the gateway nodes' group on 6379 only", in)
	}
}
