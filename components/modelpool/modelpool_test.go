package modelpool

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Shared assertions over the mock's recordings.
var (
	only   = mocktest.Only
	inputs = mocktest.OnlyInputs
	obj    = mocktest.Obj
	list   = mocktest.List
	strs   = mocktest.Strings
)

const (
	region    = "ca-central-1"
	keyArn    = "arn:aws:kms:ca-central-1:123456789012:key/0b5e6a1c-1111-2222-3333-444455556666"
	bucketArn = "arn:aws:s3:::llm-chem-20260101000000000000000001"
	agentSHA  = "a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718"
	agentURL  = "https://llm-chem-20260101000000000000000001.s3.ca-central-1.amazonaws.com/agent/sandbox-node-" + agentSHA
	ollamaURL = "https://github.com/ollama/ollama/releases/download/v0.35.1/ollama-linux-amd64.tar.zst"
	ollamaSHA = "2222222222222222222222222222222222222222222222222222222222222222"
	albSG     = "sg-0a1b2c3d4e5f60718"
	vpcID     = "vpc-0123456789abcdef0"

	tComponent  = TypeToken
	tRole       = "aws:iam/role:Role"
	tAttachment = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
	tRolePolicy = "aws:iam/rolePolicy:RolePolicy"
	tProfile    = "aws:iam/instanceProfile:InstanceProfile"
	tSG         = "aws:ec2/securityGroup:SecurityGroup"
	tTG         = "aws:lb/targetGroup:TargetGroup"
	tLT         = "aws:ec2/launchTemplate:LaunchTemplate"
	tASG        = "aws:autoscaling/group:Group"
	tPolicy     = "aws:autoscaling/policy:Policy"
	tSchedule   = "aws:autoscaling/schedule:Schedule"
)

// Identifiers mockaws gives the children of a pool named "chem-gpu".
func mockID(child string) string { return "chem-gpu-" + child + "-id" }

func mockArn(service, child string) string {
	return "arn:aws:" + service + ":" + region + ":" + mockaws.DefaultAccountID + ":" + mockID(child)
}

var (
	subnets    = []string{"subnet-0aaa", "subnet-0bbb"}
	groupName  = "chem-gpu-asg-" + mockaws.CannedNameSuffix
	roleName   = "chem-gpu-role-" + mockaws.CannedNameSuffix
	officeDays = &Schedule{Timezone: "America/Vancouver", Days: "MON-FRI", Start: "08:00", Stop: "19:30"}
)

// validArgs is a GPU pool of department chem serving two models.
func validArgs() *ModelPoolArgs {
	return &ModelPoolArgs{
		Department:            "chem",
		Pool:                  "gpu",
		Region:                region,
		InstanceType:          "g5.xlarge",
		GPU:                   true,
		SpotInstanceTypes:     []string{"g5.xlarge", "g6.xlarge", "g5.2xlarge"},
		MinSize:               1,
		MaxSize:               3,
		Models:                []string{"llama3.1:8b", "phi3:mini"},
		Parallel:              4,
		ContextLength:         8192,
		OllamaRelease:         versions.Release{Version: "0.35.1", URL: ollamaURL, SHA256: ollamaSHA},
		AgentURL:              pulumi.String(agentURL),
		AgentSHA256:           agentSHA,
		ArtifactsBucketArn:    pulumi.String(bucketArn),
		KMSKeyArn:             pulumi.String(keyArn),
		VpcID:                 pulumi.String(vpcID),
		SubnetIDs:             pulumi.ToStringArray(subnets),
		SourceSecurityGroupID: pulumi.String(albSG),
		Tags:                  map[string]string{"CostCentre": "CC-1234", "Department": "chem"},
	}
}

func with(edit func(*ModelPoolArgs)) *ModelPoolArgs {
	a := validArgs()
	edit(a)
	return a
}

// outputs are a ModelPool's struct outputs, resolved.
type outputs struct {
	AutoScalingGroupName, TargetGroupArn, SecurityGroupID, LaunchTemplateID, RoleArn string
}

// run builds a ModelPool named "chem-gpu" under mockaws.
func run(t *testing.T, args *ModelPoolArgs) (*mockaws.Monitor, *ModelPool, outputs, error) {
	t.Helper()
	m := mockaws.New(region)
	var comp *ModelPool
	var got outputs
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		p, err := NewModelPool(ctx, "chem-gpu", args)
		comp = p
		if err != nil {
			return err
		}
		pulumi.All(p.AutoScalingGroupName, p.TargetGroupArn, p.SecurityGroupID, p.LaunchTemplateID, p.RoleArn).ApplyT(func(v []any) error {
			got.AutoScalingGroupName, got.TargetGroupArn = v[0].(string), v[1].(string)
			got.SecurityGroupID, got.LaunchTemplateID = string(v[2].(pulumi.ID)), string(v[3].(pulumi.ID))
			got.RoleArn = v[4].(string)
			return nil
		})
		return nil
	})
	return m, comp, got, err
}

func mustRun(t *testing.T, args *ModelPoolArgs) (*mockaws.Monitor, *ModelPool, outputs) {
	t.Helper()
	m, p, got, err := run(t, args)
	if err != nil {
		t.Fatalf("NewModelPool: %v", err)
	}
	return m, p, got
}

func TestLaunchTemplate(t *testing.T) {
	m, p, _ := mustRun(t, validArgs())
	lt := inputs(t, m, tLT)

	if lt["imageId"] != mockaws.CannedAMI(catalog.GPUAMIParameter) || p.AMIID != lt["imageId"] {
		t.Errorf("imageId = %v (component says %s), want the concrete AMI %s resolved from the GPU parameter", lt["imageId"], p.AMIID, mockaws.CannedAMI(catalog.GPUAMIParameter))
	}
	if lt["instanceType"] != "g5.xlarge" {
		t.Errorf("instanceType = %v, want g5.xlarge", lt["instanceType"])
	}
	if lt["updateDefaultVersion"] != true {
		t.Errorf("updateDefaultVersion = %v, want true", lt["updateDefaultVersion"])
	}

	md := obj(t, lt["metadataOptions"], "metadataOptions")
	wantMD := map[string]any{"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1.0, "instanceMetadataTags": "enabled"}
	if !reflect.DeepEqual(md, wantMD) {
		t.Errorf("metadataOptions = %v, want %v (IMDSv2 only, hop limit 1, tags readable)", md, wantMD)
	}
	if mon := obj(t, lt["monitoring"], "monitoring"); mon["enabled"] != true {
		t.Errorf("monitoring = %v, want enabled", mon)
	}

	nics := list(t, lt["networkInterfaces"], "networkInterfaces")
	if len(nics) != 1 {
		t.Fatalf("networkInterfaces = %v, want one", nics)
	}
	nic := obj(t, nics[0], "networkInterfaces[0]")
	if nic["associatePublicIpAddress"] != "false" || nic["deviceIndex"] != 0.0 {
		t.Errorf("network interface = %v, want device 0 with associatePublicIpAddress \"false\"", nic)
	}
	if sgs := strs(nic["securityGroups"]); !slices.Equal(sgs, []string{mockID("sg")}) {
		t.Errorf("network interface security groups = %v, want only the pool's %s", sgs, mockID("sg"))
	}
	if _, set := lt["vpcSecurityGroupIds"]; set {
		t.Errorf("vpcSecurityGroupIds set beside networkInterfaces: %v", lt["vpcSecurityGroupIds"])
	}

	bdms := list(t, lt["blockDeviceMappings"], "blockDeviceMappings")
	if len(bdms) != 1 {
		t.Fatalf("blockDeviceMappings = %v, want the root volume only", bdms)
	}
	bdm := obj(t, bdms[0], "blockDeviceMappings[0]")
	ebs := obj(t, bdm["ebs"], "ebs")
	size, _ := ebs["volumeSize"].(float64)
	if bdm["deviceName"] != "/dev/sda1" || ebs["volumeType"] != "gp3" || size < 100 {
		t.Errorf("root volume = %v on %v, want gp3 >= 100 GiB on /dev/sda1", ebs, bdm["deviceName"])
	}
	if ebs["encrypted"] != "true" || ebs["kmsKeyId"] != keyArn || ebs["deleteOnTermination"] != "true" {
		t.Errorf("root volume = %v, want encrypted \"true\" with %s, deleted on termination", ebs, keyArn)
	}

	if prof := obj(t, lt["iamInstanceProfile"], "iamInstanceProfile"); prof["arn"] != mockArn("iam", "profile") {
		t.Errorf("iamInstanceProfile = %v, want the pool's profile %s", prof, mockArn("iam", "profile"))
	}

	wantTags := map[string]any{"Name": "chem-gpu", "Department": "chem", "Pool": "gpu", "CostCentre": "CC-1234"}
	specs := list(t, lt["tagSpecifications"], "tagSpecifications")
	got := map[string]any{}
	for i, s := range specs {
		spec := obj(t, s, "tagSpecifications[i]")
		got[spec["resourceType"].(string)] = spec["tags"]
		_ = i
	}
	for _, rt := range []string{"instance", "volume"} {
		if !reflect.DeepEqual(got[rt], wantTags) {
			t.Errorf("%s tags = %v, want %v", rt, got[rt], wantTags)
		}
	}
	if len(specs) != 2 {
		t.Errorf("tagSpecifications = %v, want instance and volume", specs)
	}
}

func TestAMIFollowsGPUFlag(t *testing.T) {
	seen := map[string]string{}
	for _, tc := range []struct {
		name  string
		gpu   bool
		param string
	}{
		{"GPU pool uses the DLAMI", true, catalog.GPUAMIParameter},
		{"CPU pool uses Ubuntu", false, catalog.CPUAMIParameter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, p, _ := mustRun(t, with(func(a *ModelPoolArgs) {
				a.GPU = tc.gpu
				a.InstanceType = map[bool]string{true: "g5.xlarge", false: "m7i.2xlarge"}[tc.gpu]
			}))
			want := mockaws.CannedAMI(tc.param)
			if got := inputs(t, m, tLT)["imageId"]; got != want {
				t.Errorf("imageId = %v, want %s from %s", got, want, tc.param)
			}
			if p.AMIParameter != tc.param || p.AMIID != want {
				t.Errorf("component AMI = %s from %s, want %s from %s", p.AMIID, p.AMIParameter, want, tc.param)
			}
			seen[tc.name] = want
		})
	}
	if len(seen) == 2 && seen["GPU pool uses the DLAMI"] == seen["CPU pool uses Ubuntu"] {
		t.Errorf("GPU and CPU pools resolved the same AMI %s", seen["GPU pool uses the DLAMI"])
	}
}

// cloudConfig decodes the launch template's user data and returns the cloud-config document,
// the node config it writes and the agent fetch script.
func cloudConfig(t *testing.T, m *mockaws.Monitor) (string, node.Config, string) {
	t.Helper()
	raw, ok := inputs(t, m, tLT)["userData"].(string)
	if !ok {
		t.Fatalf("userData is not a plain string")
	}
	data, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		t.Fatalf("userData is not base64: %v", err)
	}
	doc := string(data)
	if !strings.HasPrefix(doc, "#cloud-config\n") {
		t.Fatalf("user data does not start with #cloud-config:\n%s", doc)
	}
	var cc struct {
		WriteFiles []struct{ Path, Content string } `yaml:"write_files"`
	}
	if err := yaml.Unmarshal(data, &cc); err != nil {
		t.Fatalf("user data is not YAML: %v\n%s", err, doc)
	}
	var cfg node.Config
	var script string
	found := false
	for _, f := range cc.WriteFiles {
		switch f.Path {
		case node.ConfigPath:
			dec := json.NewDecoder(strings.NewReader(f.Content))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cfg); err != nil {
				t.Fatalf("node.json is not a node config: %v\n%s", err, f.Content)
			}
			found = true
		case "/usr/local/sbin/llm-sandbox-fetch-agent":
			script = f.Content
		}
	}
	if !found {
		t.Fatalf("user data writes no %s:\n%s", node.ConfigPath, doc)
	}
	return doc, cfg, script
}

// An unpinned release is rendered, with its empty hash, only when RenderUnpinnedOllama asks
// (the offline plan); the node config it renders is one the agent refuses.
func TestRenderUnpinnedOllama(t *testing.T) {
	args := with(func(a *ModelPoolArgs) { a.OllamaRelease.SHA256, a.RenderUnpinnedOllama = "", true })
	m, _, _ := mustRun(t, args)
	_, cfg, _ := cloudConfig(t, m)
	if cfg.Ollama == nil || cfg.Ollama.Release.SHA256 != "" || cfg.Ollama.Release.URL != args.OllamaRelease.URL {
		t.Fatalf("node config release = %+v, want the unpinned release with an empty hash", cfg.Ollama)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "sandboxctl pin ollama "+args.OllamaRelease.Version) {
		t.Errorf("the agent's validation of the rendered config = %v, want a refusal naming sandboxctl pin ollama", err)
	}
}

func TestUserDataCarriesNodeConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args *ModelPoolArgs
	}{
		{"GPU, two models", validArgs()},
		{"CPU, one model", with(func(a *ModelPoolArgs) {
			a.GPU, a.InstanceType, a.Pool = false, "m7i.2xlarge", "cpu"
			a.Models, a.Parallel, a.ContextLength = []string{"qwen2.5:1.5b"}, 2, 4096
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, p, _ := mustRun(t, tc.args)
			_, cfg, script := cloudConfig(t, m)
			a := tc.args
			want := node.Config{
				Role: node.RoleOllama, Department: a.Department, Pool: a.Pool, Region: a.Region,
				Lifecycle: node.Lifecycle{
					Hook: nodegroup.LaunchHookName, HeartbeatSeconds: HeartbeatSeconds(a.GPU),
					TerminateHook: nodegroup.TerminateHookName, DrainSeconds: (a.ContextLength + 9) / 10, // 10 tokens/s, rounded up
				},
			}
			var models []node.Model
			for _, tag := range a.Models {
				models = append(models, node.Model{Name: tag})
			}
			want.Ollama = &node.OllamaConfig{
				Version: a.OllamaRelease.Version, GPU: a.GPU, Port: 11434, BackendPort: 11435,
				Release:  node.Artifact{URL: a.OllamaRelease.URL, SHA256: a.OllamaRelease.SHA256, SumsURL: a.OllamaRelease.SumsURL},
				Parallel: a.Parallel, ContextLength: a.ContextLength,
				MaxQueue: MaxQueue(a.Parallel, len(a.Models)), Models: models,
			}
			if !reflect.DeepEqual(cfg, want) {
				gotJSON, _ := json.MarshalIndent(cfg, "", " ")
				wantJSON, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("node.json:\n got  %s\n want %s", gotJSON, wantJSON)
			}
			if cfg.Lifecycle.AutoScalingGroup != "" {
				t.Errorf("node.json names the group %q; the agent must read it from IMDS tags", cfg.Lifecycle.AutoScalingGroup)
			}
			if !reflect.DeepEqual(p.NodeConfig, &want) {
				t.Errorf("component NodeConfig = %+v, want what the user data carries", p.NodeConfig)
			}
			if !strings.Contains(script, agentURL) || !strings.Contains(script, agentSHA) {
				t.Errorf("fetch script does not fetch %s checked against %s:\n%s", agentURL, agentSHA, script)
			}
		})
	}
}

func TestMaxQueue(t *testing.T) {
	for _, tc := range []struct{ parallel, models, want int }{
		{1, 1, 16}, {2, 1, 16}, {4, 1, 16}, {4, 2, 32}, {8, 3, 96},
	} {
		if got := MaxQueue(tc.parallel, tc.models); got != tc.want {
			t.Errorf("MaxQueue(%d, %d) = %d, want %d", tc.parallel, tc.models, got, tc.want)
		}
	}
}

func TestRole(t *testing.T) {
	m, _, _ := mustRun(t, validArgs())

	trust := mocktest.Policy(t, inputs(t, m, tRole)["assumeRolePolicy"])
	if len(trust) != 1 || trust[0].Effect != "Allow" || !reflect.DeepEqual(trust[0].Principal, mocktest.Principal{"Service": "ec2.amazonaws.com"}) ||
		!slices.Equal(strs(trust[0].Action), []string{"sts:AssumeRole"}) {
		t.Errorf("trust policy = %+v, want only EC2 to assume the role", trust)
	}

	att := inputs(t, m, tAttachment)
	if att["policyArn"] != "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" || att["role"] != roleName {
		t.Errorf("managed policy attachment = %v, want AmazonSSMManagedInstanceCore on %s", att, roleName)
	}

	rp := inputs(t, m, tRolePolicy)
	if rp["role"] != roleName {
		t.Errorf("inline policy is on %v, want %s", rp["role"], roleName)
	}
	sts := mocktest.Policy(t, rp["policy"])
	var actions []string
	bySid := map[string]mocktest.Statement{}
	for _, st := range sts {
		if st.Effect != "Allow" {
			t.Errorf("%s: Effect %s, want Allow", st.Sid, st.Effect)
		}
		for _, a := range strs(st.Action) {
			if strings.Contains(a, "*") {
				t.Errorf("%s: wildcard action %s", st.Sid, a)
			}
			actions = append(actions, a)
		}
		bySid[st.Sid] = st
	}
	sort.Strings(actions)
	wantActions := []string{"autoscaling:CompleteLifecycleAction", "cloudwatch:PutMetricData", "kms:Decrypt", "s3:GetObject"}
	if !slices.Equal(actions, wantActions) {
		t.Errorf("actions = %v, want exactly %v", actions, wantActions)
	}

	lc := bySid[nodegroup.SidCompleteLifecycleAction]
	wantLC := map[string]map[string]any{"StringEquals": {"aws:ResourceTag/Department": "chem", "aws:ResourceTag/Pool": "gpu"}}
	if !slices.Equal(strs(lc.Resource), []string{"*"}) || !reflect.DeepEqual(lc.Condition, wantLC) {
		t.Errorf("lifecycle statement = %+v, want Resource * with condition %v", lc, wantLC)
	}
	s3 := bySid[nodegroup.SidReadArtifacts]
	if !slices.Equal(strs(s3.Resource), []string{bucketArn + "/*"}) || s3.Condition != nil {
		t.Errorf("artifacts statement = %+v, want s3:GetObject on %s/*", s3, bucketArn)
	}
	kms := bySid[nodegroup.SidDecryptArtifacts]
	wantKMS := map[string]map[string]any{"StringEquals": {"kms:ViaService": "s3.ca-central-1.amazonaws.com"}}
	if !slices.Equal(strs(kms.Resource), []string{keyArn}) || !reflect.DeepEqual(kms.Condition, wantKMS) {
		t.Errorf("KMS statement = %+v, want kms:Decrypt on %s via S3 only", kms, keyArn)
	}
	cw := bySid[nodegroup.SidPutMetrics]
	wantCW := map[string]map[string]any{"StringEquals": {"cloudwatch:namespace": llmmetrics.Namespace}}
	if !slices.Equal(strs(cw.Resource), []string{"*"}) || !reflect.DeepEqual(cw.Condition, wantCW) {
		t.Errorf("metrics statement = %+v, want cloudwatch:PutMetricData into %s only", cw, llmmetrics.Namespace)
	}

	if prof := inputs(t, m, tProfile); prof["role"] != roleName {
		t.Errorf("instance profile role = %v, want %s", prof["role"], roleName)
	}
}

func TestSecurityGroup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		source  pulumi.StringInput
		ingress []any
	}{
		{"only the internal ALB reaches Ollama", pulumi.String(albSG), []any{map[string]any{
			"description": "Ollama from the internal ALB only (Ollama has no authentication)",
			"protocol":    "tcp", "fromPort": 11434.0, "toPort": 11434.0, "securityGroups": []any{albSG},
		}}},
		{"closed until the gateway exists", nil, []any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := mustRun(t, with(func(a *ModelPoolArgs) { a.SourceSecurityGroupID = tc.source }))
			sg := inputs(t, m, tSG)
			if sg["vpcId"] != vpcID || sg["revokeRulesOnDelete"] != true {
				t.Errorf("security group = %v, want in %s, revoking rules on delete", sg, vpcID)
			}
			ingress, set := sg["ingress"]
			if !set {
				t.Fatalf("ingress is not set: the provider would keep rules added out of band; want an explicit list")
			}
			if !reflect.DeepEqual(ingress, tc.ingress) {
				t.Errorf("ingress = %#v, want %#v", ingress, tc.ingress)
			}
			egress := list(t, sg["egress"], "egress")
			if len(egress) != 1 {
				t.Fatalf("egress = %v, want one rule", egress)
			}
			e := obj(t, egress[0], "egress[0]")
			if e["protocol"] != "tcp" || e["fromPort"] != 443.0 || e["toPort"] != 443.0 || !slices.Equal(strs(e["cidrBlocks"]), []string{"0.0.0.0/0"}) {
				t.Errorf("egress = %v, want only TCP 443 to 0.0.0.0/0", e)
			}
			for _, k := range []string{"securityGroups", "ipv6CidrBlocks", "prefixListIds", "self"} {
				if v, set := e[k]; set {
					t.Errorf("egress %s = %v, want none", k, v)
				}
			}
		})
	}
}

func TestTargetGroup(t *testing.T) {
	m, _, _ := mustRun(t, validArgs())
	tg := inputs(t, m, tTG)
	want := map[string]any{
		"port": 11434.0, "protocol": "HTTP", "protocolVersion": "HTTP1", "targetType": "instance",
		"loadBalancingAlgorithmType": "least_outstanding_requests", "vpcId": vpcID,
		// 8192 tokens at 10 tokens/s.
		"deregistrationDelay": 820.0,
	}
	for k, v := range want {
		if tg[k] != v {
			t.Errorf("%s = %v, want %v", k, tg[k], v)
		}
	}
	hc := obj(t, tg["healthCheck"], "healthCheck")
	if hc["path"] != "/api/version" || hc["matcher"] != "200" || hc["protocol"] != "HTTP" || hc["port"] != "traffic-port" || hc["enabled"] != true {
		t.Errorf("healthCheck = %v, want HTTP GET /api/version answering 200 on the traffic port", hc)
	}
	if prefix, _ := tg["namePrefix"].(string); prefix == "" || len(prefix) > 6 {
		t.Errorf("namePrefix = %q, want 1..6 characters (target group names have at most 32)", prefix)
	}
	if _, set := tg["name"]; set {
		t.Errorf("name = %v, want a generated name", tg["name"])
	}
}

func TestGroup(t *testing.T) {
	for _, tc := range []struct {
		name      string
		gpu       bool
		heartbeat float64
		wait      string
	}{
		{"GPU", true, 1800, "40m"},
		{"CPU", false, 900, "25m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := mustRun(t, with(func(a *ModelPoolArgs) { a.GPU = tc.gpu }))
			r := only(t, m, tASG)
			asg := mockaws.Plain(r.Inputs)

			if !slices.Equal(strs(asg["vpcZoneIdentifiers"]), subnets) {
				t.Errorf("vpcZoneIdentifiers = %v, want %v", asg["vpcZoneIdentifiers"], subnets)
			}
			if asg["minSize"] != 1.0 || asg["maxSize"] != 3.0 {
				t.Errorf("min, max = %v, %v; want 1, 3", asg["minSize"], asg["maxSize"])
			}
			if v, set := asg["desiredCapacity"]; set {
				t.Errorf("desiredCapacity = %v, want it left to scaling", v)
			}
			if !slices.Contains(r.IgnoreChanges, "desiredCapacity") {
				t.Errorf("ignoreChanges = %v, want desiredCapacity", r.IgnoreChanges)
			}
			if asg["healthCheckType"] != "ELB" || asg["healthCheckGracePeriod"] != 0.0 {
				t.Errorf("health check = %v with grace %v, want ELB with 0", asg["healthCheckType"], asg["healthCheckGracePeriod"])
			}
			if tgs := strs(asg["targetGroupArns"]); !slices.Equal(tgs, []string{mockArn("lb", "tg")}) {
				t.Errorf("targetGroupArns = %v, want the pool's %s", tgs, mockArn("lb", "tg"))
			}
			lt := obj(t, asg["launchTemplate"], "launchTemplate")
			if lt["id"] != mockID("lt") || lt["version"] != "1" {
				t.Errorf("launchTemplate = %v, want %s pinned to its latest version number 1 (never $Latest)", lt, mockID("lt"))
			}

			hooks := list(t, asg["initialLifecycleHooks"], "initialLifecycleHooks")
			wantHook := map[string]any{
				"name": nodegroup.LaunchHookName, "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
				"defaultResult": "ABANDON", "heartbeatTimeout": tc.heartbeat,
			}
			// The terminating hook: the target group's delay for 8192 tokens (820 s) plus the
			// 120 s margin, CONTINUE by default so a node whose agent died still goes.
			wantTerminate := map[string]any{
				"name": nodegroup.TerminateHookName, "lifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
				"defaultResult": "CONTINUE", "heartbeatTimeout": 940.0,
			}
			if len(hooks) != 2 || !reflect.DeepEqual(hooks[0], wantHook) || !reflect.DeepEqual(hooks[1], wantTerminate) {
				t.Errorf("lifecycle hooks = %v, want [%v %v]", hooks, wantHook, wantTerminate)
			}

			// The dashboard and alarms read the group's metrics: they are published every minute.
			if got := strs(asg["enabledMetrics"]); !slices.Equal(got, nodegroup.GroupMetrics()) || asg["metricsGranularity"] != "1Minute" {
				t.Errorf("group metrics = %v at %v, want %v at 1Minute", got, asg["metricsGranularity"], nodegroup.GroupMetrics())
			}

			ir := obj(t, asg["instanceRefresh"], "instanceRefresh")
			prefs := obj(t, ir["preferences"], "instanceRefresh.preferences")
			if ir["strategy"] != "Rolling" || prefs["minHealthyPercentage"] != 100.0 || prefs["maxHealthyPercentage"] != 200.0 {
				t.Errorf("instance refresh = %v, want Rolling, 100%%..200%% healthy (launch before terminate)", ir)
			}
			if prefs["autoRollback"] != true {
				t.Errorf("instance refresh autoRollback = %v, want true", prefs["autoRollback"])
			}
			if v, set := ir["triggers"]; set {
				t.Errorf("triggers = %v; launch template changes always trigger, extras are refused", v)
			}
			if asg["waitForCapacityTimeout"] != tc.wait {
				t.Errorf("waitForCapacityTimeout = %v, want %s (heartbeat + 10 minutes)", asg["waitForCapacityTimeout"], tc.wait)
			}

			tags := map[string][2]any{}
			for _, tg := range list(t, asg["tags"], "tags") {
				o := obj(t, tg, "tag")
				tags[o["key"].(string)] = [2]any{o["value"], o["propagateAtLaunch"]}
			}
			wantTags := map[string][2]any{
				"Name": {"chem-gpu", true}, "Department": {"chem", true}, "Pool": {"gpu", true},
				"CostCentre": {"CC-1234", false},
			}
			if !reflect.DeepEqual(tags, wantTags) {
				t.Errorf("group tags = %v, want %v", tags, wantTags)
			}
		})
	}
}

func TestScalingPolicy(t *testing.T) {
	for _, parallel := range []int{1, 4, 5, 6} {
		m, _, _ := mustRun(t, with(func(a *ModelPoolArgs) { a.Parallel = parallel }))
		p := inputs(t, m, tPolicy)
		if p["autoscalingGroupName"] != groupName || p["policyType"] != "TargetTrackingScaling" || p["estimatedInstanceWarmup"] != float64(ScaleOutWarmupSeconds) {
			t.Errorf("policy = %v, want target tracking on %s with a %d s warm-up", p, groupName, ScaleOutWarmupSeconds)
		}
		ttc := obj(t, p["targetTrackingConfiguration"], "targetTrackingConfiguration")
		if _, cpu := ttc["predefinedMetricSpecification"]; cpu {
			t.Errorf("target tracking = %v: want the in-flight metric, not a predefined one", ttc)
		}
		cm := obj(t, ttc["customizedMetricSpecification"], "customizedMetricSpecification")
		wantDims := []any{
			map[string]any{"name": llmmetrics.DimensionDepartment, "value": "chem"},
			map[string]any{"name": llmmetrics.DimensionPool, "value": "gpu"},
		}
		if cm["namespace"] != llmmetrics.Namespace || cm["metricName"] != llmmetrics.MetricInFlightRequests ||
			cm["statistic"] != "Average" || cm["period"] != 60.0 || !reflect.DeepEqual(cm["metricDimensions"], wantDims) {
			t.Errorf("metric = %v, want the Average of %s/%s over 60 s with dimensions %v", cm, llmmetrics.Namespace, llmmetrics.MetricInFlightRequests, wantDims)
		}
		// 80 % of parallel: 0.8, 3.2, 4, 4.8.
		if want := float64(parallel) * 80 / 100; ttc["targetValue"] != want || ttc["disableScaleIn"] != false {
			t.Errorf("parallel %d: target %v (scale-in disabled: %v), want %v with scale-in", parallel, ttc["targetValue"], ttc["disableScaleIn"], want)
		}
	}
}

// TestSpotWarmPoolSchedule checks each allowed combination of spot, warm pool and office hours
// for the resources and settings each one adds, and that the others stay absent.
func TestSpotWarmPoolSchedule(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spot     bool
		warmPool int
		schedule *Schedule
		minSize  int
	}{
		{name: "plain", minSize: 1},
		{name: "spot", spot: true, minSize: 1},
		{name: "warmPool", warmPool: 2, minSize: 1},
		{name: "schedule", schedule: officeDays, minSize: 0},
		{name: "spot+schedule", spot: true, schedule: officeDays, minSize: 2},
		{name: "warmPool+schedule", warmPool: 1, schedule: officeDays, minSize: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, p, _ := mustRun(t, with(func(a *ModelPoolArgs) {
				a.Spot, a.WarmPool, a.Schedule, a.MinSize = tc.spot, tc.warmPool, tc.schedule, tc.minSize
			}))
			r := only(t, m, tASG)
			asg := mockaws.Plain(r.Inputs)
			lt := inputs(t, m, tLT)

			// Spot: a mixed instances policy over the spot types, all spot, capacity rebalance.
			mip, hasMIP := asg["mixedInstancesPolicy"]
			_, hasLT := asg["launchTemplate"]
			_, hasType := lt["instanceType"]
			if tc.spot {
				if !hasMIP || hasLT || hasType {
					t.Fatalf("spot: mixedInstancesPolicy %v, launchTemplate set %v, template instanceType set %v; want only the mixed policy", hasMIP, hasLT, hasType)
				}
				ltSpec := obj(t, obj(t, obj(t, mip, "mip")["launchTemplate"], "mip.launchTemplate")["launchTemplateSpecification"], "spec")
				if ltSpec["launchTemplateId"] != mockID("lt") || ltSpec["version"] != "1" {
					t.Errorf("mixed policy template = %v, want %s pinned to version 1", ltSpec, mockID("lt"))
				}
				var types []string
				for _, o := range list(t, obj(t, obj(t, mip, "mip")["launchTemplate"], "mip.launchTemplate")["overrides"], "overrides") {
					types = append(types, obj(t, o, "override")["instanceType"].(string))
				}
				if !slices.Equal(types, []string{"g5.xlarge", "g6.xlarge", "g5.2xlarge"}) {
					t.Errorf("overrides = %v, want the spot types in order, the pool's own first", types)
				}
				dist := obj(t, obj(t, mip, "mip")["instancesDistribution"], "instancesDistribution")
				wantDist := map[string]any{"onDemandBaseCapacity": 0.0, "onDemandPercentageAboveBaseCapacity": 0.0, "spotAllocationStrategy": "price-capacity-optimized"}
				if !reflect.DeepEqual(dist, wantDist) {
					t.Errorf("instancesDistribution = %v, want %v", dist, wantDist)
				}
				if asg["capacityRebalance"] != true {
					t.Errorf("capacityRebalance = %v, want true with spot", asg["capacityRebalance"])
				}
			} else {
				if hasMIP || !hasLT || !hasType {
					t.Errorf("on-demand: mixedInstancesPolicy %v, launchTemplate set %v, template instanceType set %v; want the template alone", hasMIP, hasLT, hasType)
				}
				if v, set := asg["capacityRebalance"]; set {
					t.Errorf("capacityRebalance = %v without spot, want unset", v)
				}
			}

			// Warm pool: stopped instances of an absolute size, reused on scale-in.
			wp, hasWP := asg["warmPool"]
			if tc.warmPool > 0 {
				want := map[string]any{
					"poolState": "Stopped", "minSize": float64(tc.warmPool), "maxGroupPreparedCapacity": float64(tc.warmPool),
					"instanceReusePolicy": map[string]any{"reuseOnScaleIn": true},
				}
				if !reflect.DeepEqual(wp, want) {
					t.Errorf("warmPool = %v, want %v", wp, want)
				}
			} else if hasWP {
				t.Errorf("warmPool = %v, want none", wp)
			}

			// Office hours: two scheduled actions; the actions own min and max.
			scheds := m.ByType(tSchedule)
			if tc.schedule == nil {
				if len(scheds) != 0 || len(p.ScheduledActions) != 0 {
					t.Errorf("scheduled actions = %d without a schedule, want none", len(scheds))
				}
				if slices.Contains(r.IgnoreChanges, "minSize") || slices.Contains(r.IgnoreChanges, "maxSize") {
					t.Errorf("ignoreChanges = %v without a schedule; min and max must follow the args", r.IgnoreChanges)
				}
				return
			}
			if !slices.Contains(r.IgnoreChanges, "minSize") || !slices.Contains(r.IgnoreChanges, "maxSize") {
				t.Errorf("ignoreChanges = %v with a schedule, want minSize and maxSize (the actions own them)", r.IgnoreChanges)
			}
			startMin := float64(max(tc.minSize, 1))
			want := map[string]map[string]any{
				"chem-gpu-office-hours-start": {
					"autoscalingGroupName": groupName, "scheduledActionName": "chem-gpu-office-hours-start",
					"recurrence": "0 8 * * MON-FRI", "timeZone": "America/Vancouver",
					"minSize": startMin, "maxSize": 3.0, "desiredCapacity": startMin,
				},
				"chem-gpu-office-hours-stop": {
					"autoscalingGroupName": groupName, "scheduledActionName": "chem-gpu-office-hours-stop",
					"recurrence": "30 19 * * MON-FRI", "timeZone": "America/Vancouver",
					"minSize": 0.0, "maxSize": 0.0, "desiredCapacity": 0.0,
				},
			}
			if len(scheds) != 2 || len(p.ScheduledActions) != 2 {
				t.Fatalf("scheduled actions = %d (component %d), want start and stop", len(scheds), len(p.ScheduledActions))
			}
			for _, s := range scheds {
				if got := mockaws.Plain(s.Inputs); !reflect.DeepEqual(got, want[s.Name]) {
					t.Errorf("%s = %v, want %v", s.Name, got, want[s.Name])
				}
			}
		})
	}
}

func TestRecurrence(t *testing.T) {
	for _, tc := range []struct{ at, days, want string }{
		{"08:00", "MON-FRI", "0 8 * * MON-FRI"},
		{"19:30", "MON,WED,FRI", "30 19 * * MON,WED,FRI"},
		{"00:05", "SAT-SUN", "5 0 * * SAT-SUN"},
	} {
		if got := Recurrence(tc.at, tc.days); got != tc.want {
			t.Errorf("Recurrence(%q, %q) = %q, want %q", tc.at, tc.days, got, tc.want)
		}
	}
}

func TestSpotWithWarmPoolRefused(t *testing.T) {
	m, p, _, err := run(t, with(func(a *ModelPoolArgs) { a.Spot, a.WarmPool = true, 1 }))
	if err == nil {
		t.Fatal("NewModelPool accepted Spot with WarmPool")
	}
	if !strings.Contains(err.Error(), "Spot") || !strings.Contains(err.Error(), "WarmPool") || !strings.Contains(err.Error(), `model pool "chem-gpu"`) {
		t.Errorf("error %q does not name the pool and both fields", err)
	}
	if p != nil {
		t.Error("NewModelPool returned a pool with its error")
	}
	if rs := m.Resources(); len(rs) != 0 {
		t.Errorf("registered %d resources, want nothing", len(rs))
	}
}

func TestOutputs(t *testing.T) {
	_, p, got := mustRun(t, validArgs())
	want := outputs{
		AutoScalingGroupName: groupName,
		TargetGroupArn:       mockArn("lb", "tg"),
		SecurityGroupID:      mockID("sg"),
		LaunchTemplateID:     mockID("lt"),
		RoleArn:              "arn:aws:iam::" + mockaws.DefaultAccountID + ":role/" + mockID("role"),
	}
	if got != want {
		t.Errorf("outputs:\n got  %+v\n want %+v", got, want)
	}
	if p.LaunchHookName != nodegroup.LaunchHookName || p.Group == nil || p.TargetGroup == nil || p.ScalingPolicy == nil {
		t.Errorf("component fields not set: %+v", p)
	}
}

// TestChildNamesAndParents checks the exact set of children (names from the component name and
// roles, the scheduled actions by key) and that each one's parent is the component.
func TestChildNamesAndParents(t *testing.T) {
	for _, tc := range []struct {
		name     string
		schedule *Schedule
	}{
		{"always on", nil},
		{"office hours", officeDays},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := mustRun(t, with(func(a *ModelPoolArgs) { a.Schedule = tc.schedule }))
			want := []string{
				tRole + " chem-gpu-role",
				tAttachment + " chem-gpu-ssm",
				tRolePolicy + " chem-gpu-node",
				tProfile + " chem-gpu-profile",
				tSG + " chem-gpu-sg",
				tTG + " chem-gpu-tg",
				tLT + " chem-gpu-lt",
				tASG + " chem-gpu-asg",
				tPolicy + " chem-gpu-inflight-tracking",
			}
			if tc.schedule != nil {
				want = append(want, tSchedule+" chem-gpu-office-hours-start", tSchedule+" chem-gpu-office-hours-stop")
			}
			mocktest.Children(t, m, tComponent, "chem-gpu", want)
		})
	}
}

// TestInvalidArgs checks that each bad argument is refused with an error naming its field,
// before anything (not even the component) is registered.
func TestInvalidArgs(t *testing.T) {
	sched := func(edit func(*Schedule)) func(*ModelPoolArgs) {
		return func(a *ModelPoolArgs) {
			s := *officeDays
			edit(&s)
			a.Schedule = &s
		}
	}
	tests := []struct {
		name  string
		args  *ModelPoolArgs
		field string
	}{
		{"nil args", nil, "ModelPoolArgs"},
		{"empty department", with(func(a *ModelPoolArgs) { a.Department = "" }), "Department"},
		{"uppercase department", with(func(a *ModelPoolArgs) { a.Department = "Chem" }), "Department"},
		{"empty pool", with(func(a *ModelPoolArgs) { a.Pool = "" }), "Pool"},
		{"pool with underscore", with(func(a *ModelPoolArgs) { a.Pool = "big_gpu" }), "Pool"},
		{"pool of 21", with(func(a *ModelPoolArgs) { a.Pool = strings.Repeat("p", 21) }), "Pool"},
		{"pool named as the gateway", with(func(a *ModelPoolArgs) { a.Pool = "gateway" }), "Pool"},
		{"empty region", with(func(a *ModelPoolArgs) { a.Region = "" }), "Region"},
		{"malformed region", with(func(a *ModelPoolArgs) { a.Region = "Canada Central" }), "Region"},
		{"empty instance type", with(func(a *ModelPoolArgs) { a.InstanceType = "" }), "InstanceType"},
		{"malformed instance type", with(func(a *ModelPoolArgs) { a.InstanceType = "g5 xlarge" }), "InstanceType"},
		{"negative min", with(func(a *ModelPoolArgs) { a.MinSize = -1 }), "MinSize"},
		{"zero max", with(func(a *ModelPoolArgs) { a.MinSize, a.MaxSize = 0, 0 }), "MaxSize"},
		{"min above max", with(func(a *ModelPoolArgs) { a.MinSize, a.MaxSize = 3, 2 }), "MaxSize"},
		{"negative warm pool", with(func(a *ModelPoolArgs) { a.WarmPool = -1 }), "WarmPool"},
		{"spot with warm pool", with(func(a *ModelPoolArgs) { a.Spot, a.WarmPool = true, 2 }), "Spot, WarmPool"},
		{"spot without types", with(func(a *ModelPoolArgs) { a.Spot, a.SpotInstanceTypes = true, nil }), "SpotInstanceTypes"},
		{"spot types not led by the pool's", with(func(a *ModelPoolArgs) { a.Spot, a.SpotInstanceTypes = true, []string{"g6.xlarge", "g5.xlarge"} }), "SpotInstanceTypes[0]"},
		{"spot type twice", with(func(a *ModelPoolArgs) {
			a.Spot, a.SpotInstanceTypes = true, []string{"g5.xlarge", "g6.xlarge", "g6.xlarge"}
		}), "SpotInstanceTypes[2]"},
		{"unknown time zone", with(sched(func(s *Schedule) { s.Timezone = "Pacific Time" })), "Schedule.Timezone"},
		{"empty time zone", with(sched(func(s *Schedule) { s.Timezone = "" })), "Schedule.Timezone"},
		{"lowercase days", with(sched(func(s *Schedule) { s.Days = "mon-fri" })), "Schedule.Days"},
		{"numeric days", with(sched(func(s *Schedule) { s.Days = "1-5" })), "Schedule.Days"},
		{"start not HH:MM", with(sched(func(s *Schedule) { s.Start = "8:00" })), "Schedule.Start"},
		{"stop out of range", with(sched(func(s *Schedule) { s.Stop = "24:00" })), "Schedule.Stop"},
		{"stop before start", with(sched(func(s *Schedule) { s.Start, s.Stop = "18:00", "08:00" })), "Schedule.Stop"},
		{"no models", with(func(a *ModelPoolArgs) { a.Models = nil }), "Models"},
		{"empty model", with(func(a *ModelPoolArgs) { a.Models = []string{"llama3.1:8b", ""} }), "Models[1]"},
		{"model with a path", with(func(a *ModelPoolArgs) { a.Models = []string{"../llama"} }), "Models[0]"},
		{"model twice", with(func(a *ModelPoolArgs) { a.Models = []string{"phi3:mini", "phi3:mini"} }), "Models[1]"},
		{"zero parallel", with(func(a *ModelPoolArgs) { a.Parallel = 0 }), "Parallel"},
		{"zero context", with(func(a *ModelPoolArgs) { a.ContextLength = 0 }), "ContextLength"},
		{"no Ollama version", with(func(a *ModelPoolArgs) { a.OllamaRelease.Version = " " }), "OllamaRelease.Version"},
		{"plain-HTTP release", with(func(a *ModelPoolArgs) { a.OllamaRelease.URL = "http://example.com/ollama.tar.zst" }), "OllamaRelease.URL"},
		{"release without hash or sums file", with(func(a *ModelPoolArgs) { a.OllamaRelease.SHA256 = "" }), "OllamaRelease.SHA256"},
		{"malformed hash even when rendering unpinned", with(func(a *ModelPoolArgs) { a.OllamaRelease.SHA256, a.RenderUnpinnedOllama = "abc", true }), "OllamaRelease"},
		{"release with a plain-HTTP sums file", with(func(a *ModelPoolArgs) {
			a.OllamaRelease.SHA256, a.OllamaRelease.SumsURL = "", "ftp://example.com/sha256sum.txt"
		}), "OllamaRelease.SHA256"},
		{"bad agent hash", with(func(a *ModelPoolArgs) { a.AgentSHA256 = strings.ToUpper(agentSHA) }), "AgentSHA256"},
		{"nil agent URL", with(func(a *ModelPoolArgs) { a.AgentURL = nil }), "AgentURL"},
		{"nil bucket", with(func(a *ModelPoolArgs) { a.ArtifactsBucketArn = nil }), "ArtifactsBucketArn"},
		{"nil key", with(func(a *ModelPoolArgs) { a.KMSKeyArn = nil }), "KMSKeyArn"},
		{"nil VPC", with(func(a *ModelPoolArgs) { a.VpcID = nil }), "VpcID"},
		{"nil subnets", with(func(a *ModelPoolArgs) { a.SubnetIDs = nil }), "SubnetIDs"},
		{"Name tag", with(func(a *ModelPoolArgs) { a.Tags = map[string]string{"Name": "x"} }), `Tags["Name"]`},
		{"other department tag", with(func(a *ModelPoolArgs) { a.Tags = map[string]string{"Department": "physics"} }), `Tags["Department"]`},
		{"other pool tag", with(func(a *ModelPoolArgs) { a.Tags = map[string]string{"Pool": "cpu"} }), `Tags["Pool"]`},
		{"aws: tag", with(func(a *ModelPoolArgs) { a.Tags = map[string]string{"aws:owner": "me"} }), `Tags["aws:owner"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, p, _, err := run(t, tt.args)
			mocktest.Refused(t, m, err, `model pool "chem-gpu"`, tt.field)
			if p != nil {
				t.Error("NewModelPool returned a pool with its error")
			}
		})
	}
}

func TestInvalidArgsAllReported(t *testing.T) {
	_, _, _, err := run(t, &ModelPoolArgs{Department: "chem", Pool: "gpu", Region: region, InstanceType: "g5.xlarge", MaxSize: 1})
	mocktest.ReportsAll(t, err, "Models", "Parallel", "ContextLength", "OllamaRelease.Version", "OllamaRelease.URL", "AgentSHA256", "AgentURL", "KMSKeyArn", "VpcID", "SubnetIDs")
}

// With MirrorBucket the node config names the release and every model in the bucket, by the
// pins, and still validates as a node config; the component's own NodeConfig keeps the
// internet sources. Without a pin for every model, or with an unpinned release, the
// component refuses, naming the field and the model.
func TestMirrorBucket(t *testing.T) {
	pins := map[string]versions.ModelPin{
		"llama3.1:8b": {Manifest: strings.Repeat("1", 64), Size: 1, Pinned: "2026-12-05"},
		"phi3:mini":   {Manifest: strings.Repeat("2", 64), Size: 1, Pinned: "2026-12-05"},
	}
	const bucket = "llm-chem-artifacts"
	m, p, _ := mustRun(t, with(func(a *ModelPoolArgs) { a.MirrorBucket, a.ModelPins = pulumi.String(bucket), pins }))
	_, cfg, _ := cloudConfig(t, m)
	if got, want := cfg.Ollama.Release.URL, "s3://"+bucket+"/mirror/ollama/"+ollamaSHA+"/ollama-linux-amd64.tar.zst"; got != want || cfg.Ollama.Release.SHA256 != ollamaSHA {
		t.Errorf("release %+v, want %s", cfg.Ollama.Release, want)
	}
	for _, model := range cfg.Ollama.Models {
		mm := model.Mirror
		if mm == nil || mm.Manifest.SHA256 != pins[model.Name].Manifest || mm.Manifest.URL != "s3://"+bucket+"/mirror/models/manifests/"+pins[model.Name].Manifest ||
			mm.Blobs != "s3://"+bucket+"/mirror/models/blobs/" || model.Source != nil {
			t.Errorf("model %s: mirror %+v", model.Name, mm)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the mirrored node config does not validate: %v", err)
	}
	if p.NodeConfig.Ollama.Release.URL != ollamaURL || p.NodeConfig.Ollama.Models[0].Mirror != nil {
		t.Errorf("NodeConfig was changed by the mirror: %+v", p.NodeConfig.Ollama)
	}

	for name, edit := range map[string]func(*ModelPoolArgs){
		"a model without a pin": func(a *ModelPoolArgs) {
			a.MirrorBucket, a.ModelPins = pulumi.String(bucket), map[string]versions.ModelPin{"llama3.1:8b": pins["llama3.1:8b"]}
		},
		"an unpinned release": func(a *ModelPoolArgs) {
			a.MirrorBucket, a.ModelPins, a.OllamaRelease.SHA256, a.RenderUnpinnedOllama = pulumi.String(bucket), pins, "", true
		},
	} {
		_, _, _, err := run(t, with(edit))
		want := map[string]string{"a model without a pin": `ModelPins: must pin model "phi3:mini"`, "an unpinned release": "MirrorBucket: needs a pinned OllamaRelease"}[name]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", name, err, want)
		}
	}
}
