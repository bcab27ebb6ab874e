package nodegroup

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/autoscaling"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
)

// The components' own tests (modelpool, gateway) assert on what these helpers register under
// mocks; these cover the pure pieces directly.

var pool = Identity{Kind: "model pool", Name: "chem-gpu", Scope: []argcheck.Tag{
	{Key: TagDepartment, Value: "chem", Field: "Department"},
	{Key: "Pool", Value: "gpu", Field: "Pool"},
}}

var gateway = Identity{Kind: "gateway", Name: "chem-gateway", Scope: []argcheck.Tag{
	{Key: TagDepartment, Value: "chem", Field: "Department"},
	{Key: "llm-sandbox:tier", Value: "gateway"},
}}

func statements(t *testing.T, p PolicyParams) map[string]map[string]any {
	t.Helper()
	doc, err := NodePolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct{ Statement []map[string]any }
	if err := json.Unmarshal([]byte(doc), &parsed); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, s := range parsed.Statement {
		out[s["Sid"].(string)] = s
	}
	return out
}

func TestNodePolicySecretOnlyWhenGiven(t *testing.T) {
	base := PolicyParams{Scope: pool.Scope, Region: "ca-central-1", BucketArn: "arn:aws:s3:::b", KeyArn: "arn:aws:kms:ca-central-1:1:key/k"}
	if s := statements(t, base); s[SidPutMetrics] != nil {
		t.Errorf("without Metrics: statements %v, want no PutMetricData", keys(s))
	}
	base.Metrics = true
	without := statements(t, base)
	if len(without) != 4 || without[SidReadSecret] != nil || without[SidDecryptSecret] != nil {
		t.Errorf("without a secret: statements %v, want lifecycle, artifacts and their decrypt, and metrics only", keys(without))
	}
	metrics := without[SidPutMetrics]
	if metrics["Action"] != "cloudwatch:PutMetricData" || metrics["Resource"] != "*" ||
		metrics["Condition"].(map[string]any)["StringEquals"].(map[string]any)["cloudwatch:namespace"] != llmmetrics.Namespace {
		t.Errorf("metrics statement = %v, want cloudwatch:PutMetricData into %s only", metrics, llmmetrics.Namespace)
	}
	base.SecretArn = "arn:aws:secretsmanager:ca-central-1:1:secret:s-AbCdEf"
	with := statements(t, base)
	if len(with) != 6 || with[SidReadSecret]["Resource"] != base.SecretArn || with[SidReadSecret]["Action"] != "secretsmanager:GetSecretValue" {
		t.Errorf("with a secret: %v", with)
	}
	cond := with[SidDecryptSecret]["Condition"].(map[string]any)["StringEquals"].(map[string]any)
	if cond["kms:ViaService"] != "secretsmanager.ca-central-1.amazonaws.com" {
		t.Errorf("secret decrypt condition = %v, want through Secrets Manager only", cond)
	}
}

// TestLifecycleScopesDoNotOverlap checks that a pool's role and the gateway's role each match
// only their own group's tags.
func TestLifecycleScopesDoNotOverlap(t *testing.T) {
	condition := func(id Identity) map[string]any {
		s := statements(t, PolicyParams{Scope: id.Scope, Region: "ca-central-1", BucketArn: "b", KeyArn: "k"})
		return s[SidCompleteLifecycleAction]["Condition"].(map[string]any)["StringEquals"].(map[string]any)
	}
	tagsOf := func(id Identity) map[string]string {
		out := map[string]string{}
		for _, g := range id.GroupTags(map[string]string{"CostCentre": "CC-1"}) {
			a := g.(*autoscaling.GroupTagArgs)
			out[string(a.Key.(pulumi.String))] = string(a.Value.(pulumi.String))
		}
		return out
	}
	matches := func(cond map[string]any, tags map[string]string) bool {
		for k, v := range cond {
			if tags[strings.TrimPrefix(k, "aws:ResourceTag/")] != v {
				return false
			}
		}
		return true
	}
	for _, tc := range []struct {
		role, group Identity
		want        bool
	}{
		{pool, pool, true}, {gateway, gateway, true}, {pool, gateway, false}, {gateway, pool, false},
	} {
		if got := matches(condition(tc.role), tagsOf(tc.group)); got != tc.want {
			t.Errorf("%s role on %s group: matches %v, want %v", tc.role.Kind, tc.group.Kind, got, tc.want)
		}
	}
}

func TestGroupTagsPropagateIdentityOnly(t *testing.T) {
	got := map[string]bool{}
	for _, g := range gateway.GroupTags(map[string]string{"CostCentre": "CC-1", "Department": "chem"}) {
		a := g.(*autoscaling.GroupTagArgs)
		got[string(a.Key.(pulumi.String))] = bool(a.PropagateAtLaunch.(pulumi.Bool))
	}
	want := map[string]bool{"Name": true, "Department": true, "llm-sandbox:tier": true, "CostCentre": false}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("group tags (key: propagate) = %v, want %v", got, want)
	}
}

func keys(m map[string]map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func TestDeregistrationDelay(t *testing.T) {
	for _, tc := range []struct{ context, want int }{
		{1, 300}, {2048, 300}, {3000, 300}, {3001, 301}, {4096, 410}, {8192, 820}, {16384, 1639},
		{32768, 3277}, {36000, 3600}, {131072, 3600},
	} {
		if got := DeregistrationDelaySeconds(tc.context); got != tc.want {
			t.Errorf("DeregistrationDelaySeconds(%d) = %d, want %d", tc.context, got, tc.want)
		}
	}
}

// The terminating hook outlasts the deregistration delay by the drain margin for every delay
// AWS allows, and stays within the hook's 7200 s limit.
func TestTerminateHeartbeat(t *testing.T) {
	for _, delay := range []int{1, 300, 820, 3600} {
		got := TerminateHeartbeatSeconds(delay)
		if got != delay+120 || got > 7200 {
			t.Errorf("TerminateHeartbeatSeconds(%d) = %d, want %d (delay + 120 s, at most 7200)", delay, got, delay+120)
		}
	}
}
