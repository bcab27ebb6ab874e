package gateway

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/frontdoor"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Shared assertions over the mock's recordings.
var (
	only = mocktest.OnlyInputs
	obj  = mocktest.Obj
	list = mocktest.List
	strs = mocktest.Strings
)

const (
	region     = "ca-central-1"
	keyArn     = "arn:aws:kms:ca-central-1:123456789012:key/0b5e6a1c-1111-2222-3333-444455556666"
	bucketArn  = "arn:aws:s3:::llm-chem-20260101000000000000000001"
	tableArn   = "arn:aws:dynamodb:ca-central-1:123456789012:table/llm-sandbox-chem-keys"
	secretArn  = "arn:aws:secretsmanager:ca-central-1:123456789012:secret:llm-sandbox/chem/litellm-master-key-AbCdEf"
	certArn    = "arn:aws:acm:ca-central-1:123456789012:certificate/5f0c1e2d-aaaa-bbbb-cccc-0123456789ab"
	agentSHA   = "a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718"
	agentURL   = "https://llm-chem-20260101000000000000000001.s3.ca-central-1.amazonaws.com/agent/sandbox-node-" + agentSHA
	vpcID      = "vpc-0123456789abcdef0"
	vpcCIDR    = "10.20.0.0/16"
	internalSG = "sg-0internalalb00001"
	gpuSG      = "sg-0poolgpu000000001"
	cpuSG      = "sg-0poolcpu000000001"
	gpuTG      = "arn:aws:elasticloadbalancing:ca-central-1:123456789012:targetgroup/ollama-gpu/0123456789abcdef"
	cpuTG      = "arn:aws:elasticloadbalancing:ca-central-1:123456789012:targetgroup/ollama-cpu/fedcba9876543210"

	tComponent  = TypeToken
	tRole       = "aws:iam/role:Role"
	tAttachment = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
	tRolePolicy = "aws:iam/rolePolicy:RolePolicy"
	tProfile    = "aws:iam/instanceProfile:InstanceProfile"
	tSG         = "aws:ec2/securityGroup:SecurityGroup"
	tIngress    = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
	tEgress     = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
	tLB         = "aws:lb/loadBalancer:LoadBalancer"
	tListener   = "aws:lb/listener:Listener"
	tRule       = "aws:lb/listenerRule:ListenerRule"
	tTG         = "aws:lb/targetGroup:TargetGroup"
	tWebACL     = "aws:wafv2/webAcl:WebAcl"
	tWebACLAsc  = "aws:wafv2/webAclAssociation:WebAclAssociation"
	tLT         = "aws:ec2/launchTemplate:LaunchTemplate"
	tASG        = "aws:autoscaling/group:Group"
	tPolicy     = "aws:autoscaling/policy:Policy"
	tCert       = "aws:acm/certificate:Certificate"
	tCertValid  = "aws:acm/certificateValidation:CertificateValidation"
	tRecord     = "aws:route53/record:Record"
)

var (
	publicSubnets  = []string{"subnet-0pub-a", "subnet-0pub-b"}
	privateSubnets = []string{"subnet-0priv-a", "subnet-0priv-b"}
	groupName      = "chem-gw-asg-" + mockaws.CannedNameSuffix
	roleName       = "chem-gw-role-" + mockaws.CannedNameSuffix
	// The DNS names mockaws gives the two load balancers of a gateway named chem-gw.
	frontDNS    = "chem-gw-alb-" + mockaws.CannedNameSuffix + "." + region + ".elb.amazonaws.com"
	internalDNS = "internal-chem-gw-internal-" + mockaws.CannedNameSuffix + "." + region + ".elb.amazonaws.com"
)

// Identifiers mockaws gives the children of a gateway named "chem-gw".
func mockID(child string) string { return "chem-gw-" + child + "-id" }

func mockArn(service, child string) string {
	return "arn:aws:" + service + ":" + region + ":" + mockaws.DefaultAccountID + ":" + mockID(child)
}

// validArgs is a public gateway of department chem in front of two pools.
func validArgs() *GatewayArgs {
	return &GatewayArgs{
		Department:       "chem",
		Region:           region,
		VpcID:            pulumi.String(vpcID),
		VpcCIDR:          vpcCIDR,
		PublicSubnetIDs:  pulumi.ToStringArray(publicSubnets),
		PrivateSubnetIDs: pulumi.ToStringArray(privateSubnets),
		Access: Access{
			Mode:           ModePublic,
			CertificateARN: certArn,
			AllowedCIDRs:   []string{"206.12.0.0/16", "142.103.0.0/16"},
		},
		DeletionProtection: true,
		InstanceType:       "t3.large",
		MinSize:            2,
		MaxSize:            4,
		Pools: map[string]PoolRoute{
			"gpu": {ListenerPort: 21234, TargetGroupArn: pulumi.String(gpuTG), SecurityGroupID: pulumi.String(gpuSG), Models: []string{"llama3.1:8b", "phi3:mini"}, ContextLength: 8192},
			"cpu": {ListenerPort: 25678, TargetGroupArn: pulumi.String(cpuTG), SecurityGroupID: pulumi.String(cpuSG), Models: []string{"qwen2.5:1.5b", "nomic-embed-text"}},
		},
		InternalALBSecurityGroupID: pulumi.String(internalSG),
		MasterKeySecretArn:         pulumi.String(secretArn),
		KeyRegistryTableArn:        pulumi.String(tableArn),
		Teams: map[string]Team{
			"staff":    {Models: []string{"phi3:mini", "llama3.1:8b"}, RequestsPerMinute: 60, TokensPerMinute: 100000, ParallelPerKey: 2},
			"students": {Models: []string{"qwen2.5:1.5b"}, RequestsPerMinute: 10, TokensPerMinute: 20000, ParallelPerKey: 1},
		},
		AgentURL:           pulumi.String(agentURL),
		AgentSHA256:        agentSHA,
		ArtifactsBucketArn: pulumi.String(bucketArn),
		KMSKeyArn:          pulumi.String(keyArn),
		Tags:               map[string]string{"CostCentre": "CC-1234", "Department": "chem"},
	}
}

func with(edit func(*GatewayArgs)) *GatewayArgs {
	a := validArgs()
	edit(a)
	return a
}

// internal makes a the internal gateway, with or without a certificate.
func internal(cert bool) func(*GatewayArgs) {
	return func(a *GatewayArgs) {
		a.Access = Access{Mode: ModeInternal, AllowedCIDRs: []string{"192.168.10.0/24"}, PlainHTTP: !cert}
		if cert {
			a.Access.CertificateARN = certArn
		}
	}
}

const (
	zoneID = "Z0123456789ABCDEFGHIJ"
	host   = "llm.chem.example.edu"
)

// zoned gives a the hosted zone that holds its hostname, with the certificate it has (none:
// the gateway requests one).
func zoned(a *GatewayArgs) {
	a.Access.Hostname, a.Access.HostedZoneID, a.Access.PlainHTTP = host, zoneID, false
}

// outputs are a Gateway's struct outputs, resolved.
type outputs struct {
	EndpointURL, AutoScalingGroupName, LoadBalancerArn, InternalLoadBalancerArn string
}

// run builds a Gateway named "chem-gw" under mockaws.
func run(t *testing.T, args *GatewayArgs) (*mockaws.Monitor, *Gateway, outputs, error) {
	t.Helper()
	m := mockaws.New(region)
	var comp *Gateway
	var got outputs
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		g, err := NewGateway(ctx, "chem-gw", args)
		comp = g
		if err != nil {
			return err
		}
		pulumi.All(g.EndpointURL, g.AutoScalingGroupName, g.LoadBalancerArn, g.InternalLoadBalancerArn).ApplyT(func(v []any) error {
			got = outputs{v[0].(string), v[1].(string), v[2].(string), v[3].(string)}
			return nil
		})
		return nil
	})
	return m, comp, got, err
}

func mustRun(t *testing.T, args *GatewayArgs) (*mockaws.Monitor, *Gateway, outputs) {
	t.Helper()
	m, g, got, err := run(t, args)
	if err != nil {
		t.Fatalf("NewGateway: %v", err)
	}
	return m, g, got
}

// listenerSummary is what a front listener does, in a comparable form.
type listenerSummary struct {
	Port                       float64
	Protocol, SSLPolicy, Cert  string
	Action, Target, Status     string
	RedirectTo, RedirectStatus string
}

func summarize(t *testing.T, l map[string]any) listenerSummary {
	t.Helper()
	acts := list(t, l["defaultActions"], "defaultActions")
	if len(acts) != 1 {
		t.Fatalf("defaultActions = %v, want one", acts)
	}
	a := obj(t, acts[0], "defaultActions[0]")
	s := listenerSummary{Port: l["port"].(float64), Protocol: l["protocol"].(string), Action: a["type"].(string)}
	s.SSLPolicy, _ = l["sslPolicy"].(string)
	s.Cert, _ = l["certificateArn"].(string)
	s.Target, _ = a["targetGroupArn"].(string)
	if r, ok := a["fixedResponse"].(map[string]any); ok {
		s.Status, _ = r["statusCode"].(string)
	}
	if r, ok := a["redirect"].(map[string]any); ok {
		s.RedirectTo = fmt.Sprintf("%v:%v", r["protocol"], r["port"])
		s.RedirectStatus, _ = r["statusCode"].(string)
	}
	return s
}

func TestFrontListeners(t *testing.T) {
	// The client listener's default action is the 403: only its rules forward
	// (TestClientListenerRules).
	https := listenerSummary{Port: 443, Protocol: "HTTPS", SSLPolicy: "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09", Cert: certArn, Action: "fixed-response", Status: "403"}
	redirect := listenerSummary{Port: 80, Protocol: "HTTP", Action: "redirect", RedirectTo: "HTTPS:443", RedirectStatus: "HTTP_301"}
	for _, tc := range []struct {
		name string
		args *GatewayArgs
		want map[string]listenerSummary
	}{
		{"public: HTTPS with TLS 1.3 policy, 80 redirects", validArgs(), map[string]listenerSummary{"chem-gw-https": https, "chem-gw-http": redirect}},
		{"internal with a certificate: as public", with(internal(true)), map[string]listenerSummary{"chem-gw-https": https, "chem-gw-http": redirect}},
		{"internal with PlainHTTP: plain HTTP on 80, refusing as HTTPS does", with(internal(false)), map[string]listenerSummary{
			"chem-gw-http": {Port: 80, Protocol: "HTTP", Action: "fixed-response", Status: "403"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, g, _ := mustRun(t, tc.args)
			got := map[string]listenerSummary{}
			for _, r := range m.ByType(tListener) {
				l := mockaws.Plain(r.Inputs)
				if l["loadBalancerArn"] != mockArn("lb", "alb") {
					continue // the internal ALB's pool listeners
				}
				got[r.Name] = summarize(t, l)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("front listeners:\n got  %+v\n want %+v", got, tc.want)
			}
			if (g.HTTPSListener != nil) != (len(tc.want) == 2) || g.HTTPListener == nil {
				t.Errorf("component listeners: HTTPS %v, HTTP %v", g.HTTPSListener, g.HTTPListener)
			}
		})
	}
}

// TestClientListenerRules reads the client listener and its rules back from what was
// registered and runs requests through them as an ALB evaluates them: only the inference paths
// reach LiteLLM's target group, under the hostname when there is one (other names get 404);
// the management routes and every other spelling of a path get the listener's 403. Plain HTTP
// gets the same rules as HTTPS, and no other listener gets any.
func TestClientListenerRules(t *testing.T) {
	tg := mockArn("lb", "tg")
	for _, tc := range []struct {
		name     string
		args     *GatewayArgs
		client   string // the client listener's child name
		hostname string
	}{
		{"public without a hostname", validArgs(), "chem-gw-https", ""},
		{"public with a hostname", with(func(a *GatewayArgs) { a.Access.Hostname = host }), "chem-gw-https", host},
		{"internal with PlainHTTP", with(internal(false)), "chem-gw-http", ""},
		{"internal with PlainHTTP and a hostname", with(func(a *GatewayArgs) { internal(false)(a); a.Access.Hostname = host }), "chem-gw-http", host},
		{"internal in a hosted zone", with(func(a *GatewayArgs) { internal(false)(a); zoned(a) }), "chem-gw-https", host},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, g, _ := mustRun(t, tc.args)
			var client map[string]any
			var clientArn string
			for _, r := range m.ByType(tListener) {
				if r.Name == tc.client {
					client, clientArn = mockaws.Plain(r.Inputs), r.ARN
				}
			}
			if client == nil {
				t.Fatalf("no listener %s", tc.client)
			}
			rules := map[string]map[string]any{}
			for _, r := range m.ByType(tRule) {
				in := mockaws.Plain(r.Inputs)
				if in["listenerArn"] != clientArn {
					t.Errorf("rule %s is on %v, want the client listener %s only", r.Name, in["listenerArn"], clientArn)
				}
				for _, a := range list(t, in["actions"], "actions") {
					if act := obj(t, a, "action"); act["type"] == "forward" && act["targetGroupArn"] != tg {
						t.Errorf("rule %s forwards to %v, want LiteLLM's target group %s", r.Name, act["targetGroupArn"], tg)
					}
				}
				rules[r.Name] = in
			}
			if len(g.ListenerRules) != len(rules) {
				t.Errorf("component ListenerRules has %d rules, %d registered", len(g.ListenerRules), len(rules))
			}
			l := frontdoor.Parse(client, rules)
			if ps := frontdoor.Problems(l, tc.hostname); len(ps) != 0 {
				t.Errorf("problems: %v", ps)
			}
			sent := host
			if tc.hostname == "" {
				sent = frontDNS
			}
			for _, p := range frontdoor.ClientPaths() {
				if a := l.Decide(sent, p+"?stream=true"); !a.Forward {
					t.Errorf("%s: %v, want forward", p, a)
				}
				if a := l.Decide(strings.ToUpper(sent), strings.ToUpper(p)); a.Forward {
					t.Errorf("%s upper-cased is forwarded", p)
				}
				if a := l.Decide("other.example.edu", p); tc.hostname != "" && a.Status != frontdoor.WrongHostStatus {
					t.Errorf("%s for another host: %v, want %d", p, a, frontdoor.WrongHostStatus)
				}
			}
			for _, p := range []string{"/config/update", "/prompts/test", "/user/update", "/key/generate", "/v1/models/llama3.1:8b",
				"/v1/chat/completions/../../config/update", "/v1/models/", "//v1/models", "/v1/chat%2Fcompletions", "/", "/health"} {
				if a := l.Decide(sent, p); a.Status != frontdoor.DeniedStatus || a.Body != frontdoor.DeniedBody {
					t.Errorf("%s: %v, want %d", p, a, frontdoor.DeniedStatus)
				}
			}
			if tc.args.Access.CertificateARN != "" || tc.args.Access.HostedZoneID != "" {
				redirect := mocktest.Named(t, m, tListener, "chem-gw-http")
				if got := summarize(t, redirect); got.Action != "redirect" {
					t.Errorf("port 80 beside HTTPS: %+v, want the redirect only", got)
				}
			}
		})
	}
}

// TestLoadBalancerAttributes checks both ALBs' scheme, placement and the attributes they share,
// with deletion protection on and off.
func TestLoadBalancerAttributes(t *testing.T) {
	for _, tc := range []struct {
		name            string
		args            *GatewayArgs
		frontInternal   bool
		frontSubnets    []string
		deleteProtected bool
	}{
		{"public, protected", validArgs(), false, publicSubnets, true},
		{"public, unprotected", with(func(a *GatewayArgs) { a.DeletionProtection = false }), false, publicSubnets, false},
		{"internal, protected", with(internal(false)), true, privateSubnets, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := mustRun(t, tc.args)
			if n := len(m.ByType(tLB)); n != 2 {
				t.Fatalf("load balancers = %d, want the front and the internal one", n)
			}
			for _, lbc := range []struct {
				child    string
				internal bool
				subnets  []string
				sg       string
				idle     float64
			}{
				{"chem-gw-alb", tc.frontInternal, tc.frontSubnets, mockID("alb-sg"), FrontIdleTimeoutSeconds},
				{"chem-gw-internal", true, privateSubnets, internalSG, InternalIdleTimeoutSeconds},
			} {
				l := mocktest.Named(t, m, tLB, lbc.child)
				want := map[string]any{
					"loadBalancerType": "application", "internal": lbc.internal,
					"dropInvalidHeaderFields": true, "desyncMitigationMode": "strictest",
					"idleTimeout": lbc.idle, "enableDeletionProtection": tc.deleteProtected,
					"enableHttp2": true, "enableWafFailOpen": false,
				}
				for k, v := range want {
					if l[k] != v {
						t.Errorf("%s %s = %v, want %v", lbc.child, k, l[k], v)
					}
				}
				if got := strs(l["subnets"]); !slices.Equal(got, lbc.subnets) {
					t.Errorf("%s subnets = %v, want %v", lbc.child, got, lbc.subnets)
				}
				if got := strs(l["securityGroups"]); !slices.Equal(got, []string{lbc.sg}) {
					t.Errorf("%s securityGroups = %v, want only %s", lbc.child, got, lbc.sg)
				}
				if p, _ := l["namePrefix"].(string); p == "" || len(p) > 6 {
					t.Errorf("%s namePrefix = %q, want 1..6 characters", lbc.child, p)
				}
				if v, set := l["accessLogs"]; set {
					t.Errorf("%s accessLogs = %v, want none (they record every request line)", lbc.child, v)
				}
			}
		})
	}
}

func TestWAFOnlyWhenPublic(t *testing.T) {
	t.Run("public", func(t *testing.T) {
		m, g, _ := mustRun(t, validArgs())
		acl := only(t, m, tWebACL)
		if acl["scope"] != "REGIONAL" || !reflect.DeepEqual(acl["defaultAction"], map[string]any{"allow": map[string]any{}}) {
			t.Errorf("web ACL scope %v, default %v; want REGIONAL, allow", acl["scope"], acl["defaultAction"])
		}
		vis := obj(t, acl["visibilityConfig"], "visibilityConfig")
		if vis["cloudwatchMetricsEnabled"] != true || vis["sampledRequestsEnabled"] != false {
			t.Errorf("web ACL visibility = %v, want metrics on, sampled requests off", vis)
		}
		rules := list(t, acl["rules"], "rules")
		if len(rules) != 1 {
			t.Fatalf("rules = %v, want the rate limit only", rules)
		}
		rule := obj(t, rules[0], "rules[0]")
		want := map[string]any{
			"name": "rate-limit-per-ip", "priority": 0.0,
			"action": map[string]any{"block": map[string]any{}},
			"statement": map[string]any{"rateBasedStatement": map[string]any{
				"aggregateKeyType": "IP", "limit": float64(RateLimitPerIP), "evaluationWindowSec": 300.0,
			}},
			"visibilityConfig": map[string]any{
				"cloudwatchMetricsEnabled": true, "metricName": "chem-gw-waf-rate-limit-per-ip", "sampledRequestsEnabled": false,
			},
		}
		if !reflect.DeepEqual(rule, want) {
			t.Errorf("rule:\n got  %v\n want %v", rule, want)
		}
		assoc := only(t, m, tWebACLAsc)
		if assoc["resourceArn"] != mockArn("lb", "alb") || assoc["webAclArn"] != mockArn("wafv2", "waf") {
			t.Errorf("association = %v, want the web ACL on the front ALB", assoc)
		}
		if g.WebACL == nil || g.WebACLAssociation == nil {
			t.Error("component WebACL fields not set")
		}
	})
	for _, cert := range []bool{true, false} {
		t.Run(fmt.Sprintf("internal, certificate %v", cert), func(t *testing.T) {
			m, g, _ := mustRun(t, with(internal(cert)))
			if n := len(m.ByType(tWebACL)) + len(m.ByType(tWebACLAsc)); n != 0 || g.WebACL != nil {
				t.Errorf("internal gateway has %d WAF resources, want none", n)
			}
		})
	}
}

func TestInternalListenerPerPool(t *testing.T) {
	m, g, _ := mustRun(t, validArgs())
	want := map[string]listenerSummary{
		"chem-gw-pool-gpu": {Port: 21234, Protocol: "HTTP", Action: "forward", Target: gpuTG},
		"chem-gw-pool-cpu": {Port: 25678, Protocol: "HTTP", Action: "forward", Target: cpuTG},
	}
	got := map[string]listenerSummary{}
	for _, r := range m.ByType(tListener) {
		l := mockaws.Plain(r.Inputs)
		if l["loadBalancerArn"] == mockArn("lb", "internal") {
			got[r.Name] = summarize(t, l)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("internal listeners:\n got  %+v\n want %+v", got, want)
	}
	if len(g.PoolListeners) != 2 || g.PoolListeners["gpu"] == nil || g.PoolListeners["cpu"] == nil {
		t.Errorf("PoolListeners = %v, want gpu and cpu", g.PoolListeners)
	}
}

func TestTargetGroup(t *testing.T) {
	m, _, _ := mustRun(t, validArgs())
	tg := only(t, m, tTG)
	want := map[string]any{
		"port": 4000.0, "protocol": "HTTP", "protocolVersion": "HTTP1", "targetType": "instance",
		"loadBalancingAlgorithmType": "least_outstanding_requests", "vpcId": vpcID,
		"deregistrationDelay": 3600.0,
	}
	for k, v := range want {
		if tg[k] != v {
			t.Errorf("%s = %v, want %v", k, tg[k], v)
		}
	}
	hc := obj(t, tg["healthCheck"], "healthCheck")
	if hc["path"] != "/health/liveliness" || hc["matcher"] != "200" || hc["port"] != "traffic-port" || hc["enabled"] != true {
		t.Errorf("healthCheck = %v, want GET /health/liveliness (never /health) answering 200", hc)
	}
	if p, _ := tg["namePrefix"].(string); p == "" || len(p) > 6 {
		t.Errorf("namePrefix = %q, want 1..6 characters", p)
	}
}

// TestLaunchTemplate checks the hardening the gateway gets from the shared nodegroup package.
func TestLaunchTemplate(t *testing.T) {
	m, g, _ := mustRun(t, validArgs())
	lt := only(t, m, tLT)
	want := mockaws.CannedAMI(catalog.CPUAMIParameter)
	if lt["imageId"] != want || g.AMIID != want || g.AMIParameter != catalog.CPUAMIParameter {
		t.Errorf("imageId = %v (component %s from %s), want %s from the Ubuntu 24.04 parameter", lt["imageId"], g.AMIID, g.AMIParameter, want)
	}
	if lt["instanceType"] != "t3.large" || lt["updateDefaultVersion"] != true {
		t.Errorf("instanceType %v, updateDefaultVersion %v; want t3.large, true", lt["instanceType"], lt["updateDefaultVersion"])
	}
	md := obj(t, lt["metadataOptions"], "metadataOptions")
	wantMD := map[string]any{"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1.0, "instanceMetadataTags": "enabled"}
	if !reflect.DeepEqual(md, wantMD) {
		t.Errorf("metadataOptions = %v, want %v", md, wantMD)
	}
	if mon := obj(t, lt["monitoring"], "monitoring"); mon["enabled"] != true {
		t.Errorf("monitoring = %v, want enabled", mon)
	}
	nics := list(t, lt["networkInterfaces"], "networkInterfaces")
	nic := obj(t, nics[0], "networkInterfaces[0]")
	if len(nics) != 1 || nic["associatePublicIpAddress"] != "false" || !slices.Equal(strs(nic["securityGroups"]), []string{mockID("sg")}) {
		t.Errorf("network interfaces = %v, want one without a public IP in %s", nics, mockID("sg"))
	}
	bdms := list(t, lt["blockDeviceMappings"], "blockDeviceMappings")
	ebs := obj(t, obj(t, bdms[0], "bdm")["ebs"], "ebs")
	wantEBS := map[string]any{"volumeSize": float64(RootVolumeGiB), "volumeType": "gp3", "encrypted": "true", "kmsKeyId": keyArn, "deleteOnTermination": "true"}
	if len(bdms) != 1 || !reflect.DeepEqual(ebs, wantEBS) {
		t.Errorf("root volume = %v, want %v", ebs, wantEBS)
	}
	if prof := obj(t, lt["iamInstanceProfile"], "iamInstanceProfile"); prof["arn"] != mockArn("iam", "profile") {
		t.Errorf("iamInstanceProfile = %v, want %s", prof, mockArn("iam", "profile"))
	}
	wantTags := map[string]any{"Name": "chem-gateway", "Department": "chem", "llm-sandbox:tier": "gateway", "CostCentre": "CC-1234"}
	specs := list(t, lt["tagSpecifications"], "tagSpecifications")
	for _, s := range specs {
		spec := obj(t, s, "tagSpecification")
		if !reflect.DeepEqual(spec["tags"], wantTags) {
			t.Errorf("%v tags = %v, want %v", spec["resourceType"], spec["tags"], wantTags)
		}
	}
	if len(specs) != 2 {
		t.Errorf("tagSpecifications = %v, want instance and volume", specs)
	}
}

// cloudConfig decodes the launch template's user data: the document and the node config.
func cloudConfig(t *testing.T, m *mockaws.Monitor) (string, node.Config) {
	t.Helper()
	raw, ok := only(t, m, tLT)["userData"].(string)
	if !ok {
		t.Fatal("userData is not a plain string")
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
		t.Fatalf("user data is not YAML: %v", err)
	}
	for _, f := range cc.WriteFiles {
		if f.Path == node.ConfigPath {
			var cfg node.Config
			dec := json.NewDecoder(strings.NewReader(f.Content))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cfg); err != nil {
				t.Fatalf("node.json is not a node config: %v\n%s", err, f.Content)
			}
			return doc, cfg
		}
	}
	t.Fatalf("user data writes no %s", node.ConfigPath)
	return "", node.Config{}
}

func TestUserDataCarriesNodeConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    *GatewayArgs
		workers int
	}{
		{"t3.large", validArgs(), 2},
		{"m7i.2xlarge", with(func(a *GatewayArgs) { a.InstanceType = "m7i.2xlarge" }), 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := mustRun(t, tc.args)
			doc, cfg := cloudConfig(t, m)
			want := node.Config{
				// Pool is the gateway's Pool dimension of the in-flight metric, which no model
				// pool may take.
				Role: node.RoleLiteLLM, Department: "chem", Pool: llmmetrics.PoolGateway, Region: region,
				Lifecycle: node.Lifecycle{Hook: "llm-sandbox-launch", HeartbeatSeconds: 600, TerminateHook: "llm-sandbox-terminate", DrainSeconds: 3600},
				LiteLLM: &node.LiteLLMConfig{
					// LiteLLM on loopback behind the agent's accounting proxy, which owns the
					// target group's port.
					Port: 4000, BackendPort: 4001, Workers: tc.workers, MasterKeySecretArn: secretArn,
					// Pools in name order, each pool's models in its order, each at the pool's
					// listener on the internal ALB, with the catalog's kind and tools and the
					// pool's context capped at the model's (phi3:mini's 4,096).
					Models: []node.LiteLLMModel{
						{Name: "qwen2.5:1.5b", APIBase: "http://" + internalDNS + ":25678", Tools: true},
						{Name: "nomic-embed-text", APIBase: "http://" + internalDNS + ":25678", Embedding: true},
						{Name: "llama3.1:8b", APIBase: "http://" + internalDNS + ":21234", Tools: true, ContextLength: 8192},
						{Name: "phi3:mini", APIBase: "http://" + internalDNS + ":21234", ContextLength: 4096},
					},
					RequestTimeoutSeconds: 3600, KeepAliveSeconds: 960, NumRetries: 1,
					// Teams in name order, each with its models and per-key limits; the table
					// is the department's.
					KeyRegistry: &node.KeyRegistry{Table: "llm-sandbox-chem-keys", Teams: []node.LiteLLMTeam{
						{Name: "staff", Models: []string{"phi3:mini", "llama3.1:8b"}, RequestsPerMinute: 60, TokensPerMinute: 100000, ParallelPerKey: 2},
						{Name: "students", Models: []string{"qwen2.5:1.5b"}, RequestsPerMinute: 10, TokensPerMinute: 20000, ParallelPerKey: 1},
					}},
					// Usage counts published every minute.
					Usage: &node.LiteLLMUsage{FlushSeconds: 60},
				},
			}
			if !reflect.DeepEqual(cfg, want) {
				gotJSON, _ := json.MarshalIndent(cfg, "", " ")
				wantJSON, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("node.json:\n got  %s\n want %s", gotJSON, wantJSON)
			}
			if cfg.Lifecycle.AutoScalingGroup != "" {
				t.Errorf("node.json names the group %q; the agent reads it from IMDS tags", cfg.Lifecycle.AutoScalingGroup)
			}
			if strings.Contains(doc, "sk-") || strings.Contains(strings.ToLower(doc), "master_key") {
				t.Errorf("user data carries something like a master key value:\n%s", doc)
			}
			if !strings.Contains(doc, agentURL) || !strings.Contains(doc, agentSHA) {
				t.Errorf("user data does not fetch %s checked against %s", agentURL, agentSHA)
			}
		})
	}
}

func TestRole(t *testing.T) {
	m, _, _ := mustRun(t, validArgs())
	trust := mocktest.Policy(t, only(t, m, tRole)["assumeRolePolicy"])
	if len(trust) != 1 || !reflect.DeepEqual(trust[0].Principal, mocktest.Principal{"Service": "ec2.amazonaws.com"}) || !slices.Equal(strs(trust[0].Action), []string{"sts:AssumeRole"}) {
		t.Errorf("trust policy = %+v, want only EC2 to assume the role", trust)
	}
	if att := only(t, m, tAttachment); att["policyArn"] != "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" || att["role"] != roleName {
		t.Errorf("attachment = %v, want AmazonSSMManagedInstanceCore on %s", att, roleName)
	}
	rp := mocktest.Named(t, m, tRolePolicy, "chem-gw-node")
	if rp["role"] != roleName {
		t.Errorf("inline policy on %v, want %s", rp["role"], roleName)
	}

	// Every statement: Sid -> action, resource, condition.
	type grant struct {
		Action, Resource string
		Condition        map[string]map[string]any
	}
	got := map[string]grant{}
	for _, st := range mocktest.Policy(t, rp["policy"]) {
		if st.Effect != "Allow" || len(strs(st.Action)) != 1 || len(strs(st.Resource)) != 1 {
			t.Errorf("statement %+v: want one allowed action on one resource", st)
			continue
		}
		got[st.Sid] = grant{strs(st.Action)[0], strs(st.Resource)[0], st.Condition}
	}
	want := map[string]grant{
		"CompleteLaunchLifecycleAction": {"autoscaling:CompleteLifecycleAction", "*",
			map[string]map[string]any{"StringEquals": {"aws:ResourceTag/Department": "chem", "aws:ResourceTag/llm-sandbox:tier": "gateway"}}},
		"ReadArtifacts":             {"s3:GetObject", bucketArn + "/*", nil},
		"DecryptArtifactsThroughS3": {"kms:Decrypt", keyArn, map[string]map[string]any{"StringEquals": {"kms:ViaService": "s3.ca-central-1.amazonaws.com"}}},
		"ReadSecret":                {"secretsmanager:GetSecretValue", secretArn, nil},
		"DecryptSecretThroughSecretsManager": {"kms:Decrypt", keyArn,
			map[string]map[string]any{"StringEquals": {"kms:ViaService": "secretsmanager.ca-central-1.amazonaws.com"}}},
		// The agent's in-flight count, into the agent's namespace only.
		"PutAgentMetrics": {"cloudwatch:PutMetricData", "*", map[string]map[string]any{"StringEquals": {"cloudwatch:namespace": llmmetrics.Namespace}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("node policy:\n got  %+v\n want %+v", got, want)
	}
	if prof := only(t, m, tProfile); prof["role"] != roleName {
		t.Errorf("instance profile role = %v, want %s", prof["role"], roleName)
	}
}

func TestGroup(t *testing.T) {
	m, g, _ := mustRun(t, validArgs())
	rs := m.ByType(tASG)
	if len(rs) != 1 {
		t.Fatalf("groups = %d, want 1", len(rs))
	}
	asg := mockaws.Plain(rs[0].Inputs)
	if !slices.Equal(strs(asg["vpcZoneIdentifiers"]), privateSubnets) {
		t.Errorf("vpcZoneIdentifiers = %v, want the private subnets %v", asg["vpcZoneIdentifiers"], privateSubnets)
	}
	if asg["minSize"] != 2.0 || asg["maxSize"] != 4.0 || asg["healthCheckType"] != "ELB" || asg["healthCheckGracePeriod"] != 0.0 {
		t.Errorf("min %v max %v health %v grace %v; want 2, 4, ELB, 0", asg["minSize"], asg["maxSize"], asg["healthCheckType"], asg["healthCheckGracePeriod"])
	}
	if !slices.Contains(rs[0].IgnoreChanges, "desiredCapacity") {
		t.Errorf("ignoreChanges = %v, want desiredCapacity", rs[0].IgnoreChanges)
	}
	if tgs := strs(asg["targetGroupArns"]); !slices.Equal(tgs, []string{mockArn("lb", "tg")}) {
		t.Errorf("targetGroupArns = %v, want LiteLLM's %s", tgs, mockArn("lb", "tg"))
	}
	if lt := obj(t, asg["launchTemplate"], "launchTemplate"); lt["id"] != mockID("lt") || lt["version"] != "1" {
		t.Errorf("launchTemplate = %v, want %s pinned to version 1", lt, mockID("lt"))
	}
	hooks := list(t, asg["initialLifecycleHooks"], "initialLifecycleHooks")
	wantHook := map[string]any{"name": "llm-sandbox-launch", "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING", "defaultResult": "ABANDON", "heartbeatTimeout": 600.0}
	// The terminating hook: LiteLLM's target group delay (3600 s) plus the 120 s margin.
	wantTerminate := map[string]any{"name": "llm-sandbox-terminate", "lifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "defaultResult": "CONTINUE", "heartbeatTimeout": 3720.0}
	if len(hooks) != 2 || !reflect.DeepEqual(hooks[0], wantHook) || !reflect.DeepEqual(hooks[1], wantTerminate) || g.LaunchHookName != "llm-sandbox-launch" {
		t.Errorf("lifecycle hooks = %v, want [%v %v]", hooks, wantHook, wantTerminate)
	}
	ir := obj(t, asg["instanceRefresh"], "instanceRefresh")
	wantIR := map[string]any{"strategy": "Rolling", "preferences": map[string]any{
		"minHealthyPercentage": 100.0, "maxHealthyPercentage": 200.0, "autoRollback": true, "skipMatching": true,
	}}
	if !reflect.DeepEqual(ir, wantIR) {
		t.Errorf("instanceRefresh = %v, want %v (launch before terminate)", ir, wantIR)
	}
	if asg["waitForCapacityTimeout"] != "20m" {
		t.Errorf("waitForCapacityTimeout = %v, want 20m (heartbeat + 10 minutes)", asg["waitForCapacityTimeout"])
	}
	tags := map[string][2]any{}
	for _, tg := range list(t, asg["tags"], "tags") {
		o := obj(t, tg, "tag")
		tags[o["key"].(string)] = [2]any{o["value"], o["propagateAtLaunch"]}
	}
	wantTags := map[string][2]any{"Name": {"chem-gateway", true}, "Department": {"chem", true}, "llm-sandbox:tier": {"gateway", true}, "CostCentre": {"CC-1234", false}}
	if !reflect.DeepEqual(tags, wantTags) {
		t.Errorf("group tags = %v, want %v", tags, wantTags)
	}

	p := only(t, m, tPolicy)
	ttc := obj(t, p["targetTrackingConfiguration"], "targetTrackingConfiguration")
	pm := obj(t, ttc["predefinedMetricSpecification"], "predefinedMetricSpecification")
	if p["autoscalingGroupName"] != groupName || pm["predefinedMetricType"] != "ASGAverageCPUUtilization" || ttc["targetValue"] != 60.0 {
		t.Errorf("scaling policy = %v, want CPU target tracking at 60 on %s", p, groupName)
	}
}

// chainRule is one security-group rule as the chain reads: traffic from, to, on a port.
type chainRule struct {
	Direction, From, To string
	Port                float64
}

// ruleTable reads every recorded rule, naming groups by their tier.
func ruleTable(t *testing.T, m *mockaws.Monitor) []chainRule {
	t.Helper()
	groups := map[string]string{
		mockID("alb-sg"): "front-alb", mockID("sg"): "gateway", internalSG: "internal-alb",
		gpuSG: "pool-gpu", cpuSG: "pool-cpu",
	}
	var out []chainRule
	for _, typ := range []string{tIngress, tEgress} {
		for _, r := range m.ByType(typ) {
			in := mockaws.Plain(r.Inputs)
			if in["ipProtocol"] != "tcp" || in["fromPort"] != in["toPort"] {
				t.Errorf("%s: protocol %v ports %v..%v, want TCP on one port", r.Name, in["ipProtocol"], in["fromPort"], in["toPort"])
			}
			for _, k := range []string{"cidrIpv6", "prefixListId"} {
				if v, set := in[k]; set {
					t.Errorf("%s: %s = %v, want none", r.Name, k, v)
				}
			}
			own := groups[in["securityGroupId"].(string)]
			other, _ := in["cidrIpv4"].(string)
			if ref, ok := in["referencedSecurityGroupId"].(string); ok {
				if other != "" {
					t.Errorf("%s: both a CIDR and a group", r.Name)
				}
				other = groups[ref]
			}
			if own == "" || other == "" {
				t.Errorf("%s: unknown group or peer in %v", r.Name, in)
			}
			if typ == tIngress {
				out = append(out, chainRule{"in", other, own, in["fromPort"].(float64)})
			} else {
				out = append(out, chainRule{"out", own, other, in["fromPort"].(float64)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

// TestSecurityGroupChain checks every rule the gateway adds, exactly: clients → front ALB →
// gateway → internal ALB → pools, and 443 out of the gateway; nothing else.
func TestSecurityGroupChain(t *testing.T) {
	chain := func(extra ...chainRule) []chainRule {
		rules := append([]chainRule{
			{"out", "front-alb", "gateway", 4000},
			{"in", "front-alb", "gateway", 4000},
			{"out", "gateway", "internal-alb", 21234},
			{"out", "gateway", "internal-alb", 25678},
			{"out", "gateway", "0.0.0.0/0", 443},
			{"out", "gateway", "0.0.0.0/0", 80},
			{"in", "gateway", "internal-alb", 21234},
			{"in", "gateway", "internal-alb", 25678},
			{"out", "internal-alb", "pool-gpu", 11434},
			{"out", "internal-alb", "pool-cpu", 11434},
		}, extra...)
		sort.Slice(rules, func(i, j int) bool { return fmt.Sprint(rules[i]) < fmt.Sprint(rules[j]) })
		return rules
	}
	for _, tc := range []struct {
		name string
		args *GatewayArgs
		want []chainRule
	}{
		{"public: 443 and 80 from the allowed ranges only", validArgs(), chain(
			chainRule{"in", "142.103.0.0/16", "front-alb", 443}, chainRule{"in", "206.12.0.0/16", "front-alb", 443},
			chainRule{"in", "142.103.0.0/16", "front-alb", 80}, chainRule{"in", "206.12.0.0/16", "front-alb", 80},
		)},
		{"internal with a certificate: allowed ranges and the VPC", with(internal(true)), chain(
			chainRule{"in", "192.168.10.0/24", "front-alb", 443}, chainRule{"in", vpcCIDR, "front-alb", 443},
			chainRule{"in", "192.168.10.0/24", "front-alb", 80}, chainRule{"in", vpcCIDR, "front-alb", 80},
		)},
		{"internal without a certificate: port 80 only", with(internal(false)), chain(
			chainRule{"in", "192.168.10.0/24", "front-alb", 80}, chainRule{"in", vpcCIDR, "front-alb", 80},
		)},
		{"internal, VPC range listed too: one rule per range", with(func(a *GatewayArgs) {
			a.Access = Access{Mode: ModeInternal, AllowedCIDRs: []string{vpcCIDR}, PlainHTTP: true}
		}), chain(chainRule{"in", vpcCIDR, "front-alb", 80})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, g, _ := mustRun(t, tc.args)
			got := ruleTable(t, m)
			if !slices.Equal(got, tc.want) {
				t.Errorf("rules:\n got  %v\n want %v", got, tc.want)
			}
			if len(g.IngressRules)+len(g.EgressRules) != len(tc.want) {
				t.Errorf("component rules = %d + %d, want %d", len(g.IngressRules), len(g.EgressRules), len(tc.want))
			}
			// Both groups the gateway creates carry no inline rules: inline lists would
			// remove the rule resources on the next update.
			for _, r := range m.ByType(tSG) {
				sg := mockaws.Plain(r.Inputs)
				if _, set := sg["ingress"]; set {
					t.Errorf("%s has inline ingress %v", r.Name, sg["ingress"])
				}
				if _, set := sg["egress"]; set {
					t.Errorf("%s has inline egress %v", r.Name, sg["egress"])
				}
				if sg["vpcId"] != vpcID || sg["revokeRulesOnDelete"] != true {
					t.Errorf("%s = %v, want in %s, revoking rules on delete", r.Name, sg, vpcID)
				}
			}
		})
	}
}

// TestAllowAnywhere checks that 0.0.0.0/0 reaches the front ALB only when AllowAnywhere says
// so; otherwise the only open range is the gateway's HTTPS egress.
func TestAllowAnywhere(t *testing.T) {
	anywhere := func(m *mockaws.Monitor) []string {
		var names []string
		for _, typ := range []string{tIngress, tEgress} {
			for _, r := range m.ByType(typ) {
				if mockaws.Plain(r.Inputs)["cidrIpv4"] == "0.0.0.0/0" {
					names = append(names, r.Name)
				}
			}
		}
		sort.Strings(names)
		return names
	}
	m, _, _ := mustRun(t, validArgs())
	if got := anywhere(m); !slices.Equal(got, []string{"chem-gw-nodes-out-http", "chem-gw-nodes-out-https"}) {
		t.Errorf("rules open to 0.0.0.0/0 = %v, want only the gateway's HTTPS and apt egress", got)
	}
	m, _, _ = mustRun(t, with(func(a *GatewayArgs) {
		a.Access.AllowedCIDRs, a.Access.AllowAnywhere = []string{"0.0.0.0/0"}, true
	}))
	want := []string{"chem-gw-alb-in-http-0-0-0-0-0", "chem-gw-alb-in-https-0-0-0-0-0", "chem-gw-nodes-out-http", "chem-gw-nodes-out-https"}
	if got := anywhere(m); !slices.Equal(got, want) {
		t.Errorf("rules open to 0.0.0.0/0 with AllowAnywhere = %v, want %v", got, want)
	}
	_, _, _, err := run(t, with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = []string{"0.0.0.0/0"} }))
	if err == nil || !strings.Contains(err.Error(), "Access.AllowedCIDRs[0]:") || !strings.Contains(err.Error(), "AllowAnywhere") {
		t.Errorf("0.0.0.0/0 without AllowAnywhere: error %v, want one naming Access.AllowedCIDRs[0] and AllowAnywhere", err)
	}
}

// TestTimeoutChain checks that each link of the chain outlasts the one before it.
func TestTimeoutChain(t *testing.T) {
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"front idle timeout is well above the ALB default of 60 s", FrontIdleTimeoutSeconds >= 600},
		{"front idle timeout holds a non-streaming 8192-token answer at 10 tokens/s", FrontIdleTimeoutSeconds >= 8192/10},
		{"LiteLLM keep-alive > front idle timeout", KeepAliveSeconds > FrontIdleTimeoutSeconds},
		{"LiteLLM request timeout >= front idle timeout", RequestTimeoutSeconds >= FrontIdleTimeoutSeconds},
		{"LiteLLM request timeout >= the longest pool generation", RequestTimeoutSeconds >= nodegroup.DeregistrationDelaySeconds(1<<20)},
		{"internal idle timeout >= front idle timeout", InternalIdleTimeoutSeconds >= FrontIdleTimeoutSeconds},
		{"gateway deregistration >= every pool's", DeregistrationDelaySeconds >= nodegroup.DeregistrationDelaySeconds(1<<20)},
		{"ALB idle timeouts within AWS's 1..4000 s", FrontIdleTimeoutSeconds <= 4000 && InternalIdleTimeoutSeconds <= 4000},
		{"deregistration within AWS's 0..3600 s", DeregistrationDelaySeconds <= 3600},
	} {
		if !c.ok {
			t.Errorf("timeout chain broken: %s (front idle %d, keep-alive %d, request %d, internal idle %d, deregistration %d)",
				c.what, FrontIdleTimeoutSeconds, KeepAliveSeconds, RequestTimeoutSeconds, InternalIdleTimeoutSeconds, DeregistrationDelaySeconds)
		}
	}
}

func TestOutputs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     *GatewayArgs
		endpoint string
	}{
		{"public", validArgs(), "https://" + frontDNS},
		{"internal with a certificate", with(internal(true)), "https://internal-" + frontDNS},
		{"internal without a certificate", with(internal(false)), "http://internal-" + frontDNS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, got := mustRun(t, tc.args)
			want := outputs{tc.endpoint, groupName, mockArn("lb", "alb"), mockArn("lb", "internal")}
			if got != want {
				t.Errorf("outputs:\n got  %+v\n want %+v", got, want)
			}
		})
	}
}

// TestHostedZone checks the DNS record and, without a certificate, the certificate the gateway
// requests: validated by DNS in the zone, and used by the HTTPS listener only once issued.
func TestHostedZone(t *testing.T) {
	managedArn := mockArn("acm", "cert")
	for _, tc := range []struct {
		name     string
		args     *GatewayArgs
		managed  bool
		listener string
	}{
		{"public, no certificate: requested", with(func(a *GatewayArgs) { zoned(a); a.Access.CertificateARN = "" }), true, managedArn},
		{"public with a certificate: only the record", with(zoned), false, certArn},
		{"internal, no certificate: requested, HTTPS", with(func(a *GatewayArgs) { internal(false)(a); zoned(a) }), true, managedArn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, g, got := mustRun(t, tc.args)
			wantDNS := frontDNS
			if tc.args.Access.Mode == ModeInternal {
				wantDNS = "internal-" + frontDNS
			}
			rec := mocktest.Named(t, m, tRecord, "chem-gw-dns")
			wantRec := map[string]any{"zoneId": zoneID, "name": host, "type": "A", "aliases": []any{
				map[string]any{"name": wantDNS, "zoneId": mockaws.CannedELBZoneID, "evaluateTargetHealth": false},
			}}
			if !reflect.DeepEqual(rec, wantRec) {
				t.Errorf("DNS record:\n got  %v\n want %v", rec, wantRec)
			}
			if got.EndpointURL != "https://"+host {
				t.Errorf("endpoint %q, want https://%s", got.EndpointURL, host)
			}
			https := summarize(t, mocktest.Named(t, m, tListener, "chem-gw-https"))
			if https.Cert != tc.listener || https.Protocol != "HTTPS" {
				t.Errorf("HTTPS listener: %s with certificate %q, want HTTPS with %q", https.Protocol, https.Cert, tc.listener)
			}

			certs, valids := m.ByType(tCert), m.ByType(tCertValid)
			if !tc.managed {
				if len(certs)+len(valids) != 0 || g.Certificate != nil || len(m.ByType(tRecord)) != 1 {
					t.Errorf("with a certificate ARN: %d certificates, %d validations, %d records; want 0, 0, 1",
						len(certs), len(valids), len(m.ByType(tRecord)))
				}
				return
			}
			cert := mocktest.Named(t, m, tCert, "chem-gw-cert")
			if cert["domainName"] != host || cert["validationMethod"] != "DNS" || cert["subjectAlternativeNames"] != nil {
				t.Errorf("certificate %v: want %s, DNS validation, no other names", cert, host)
			}
			v := mocktest.Named(t, m, tRecord, "chem-gw-cert-validation")
			name, _ := v["name"].(string)
			if v["zoneId"] != zoneID || v["type"] != "CNAME" || !strings.HasPrefix(name, "_") || !strings.HasSuffix(name, "."+host+".") ||
				len(v["records"].([]any)) != 1 || v["ttl"] != float64(ValidationRecordTTLSeconds) || v["allowOverwrite"] != true {
				t.Errorf("validation record %v: want ACM's CNAME for %s in %s, TTL %d, overwriting", v, host, zoneID, ValidationRecordTTLSeconds)
			}
			issued := mocktest.Named(t, m, tCertValid, "chem-gw-cert-issued")
			want := map[string]any{"certificateArn": managedArn, "validationRecordFqdns": []any{strings.TrimSuffix(name, ".")}}
			if !reflect.DeepEqual(issued, want) {
				t.Errorf("certificate validation:\n got  %v\n want %v", issued, want)
			}
			if g.Certificate == nil || g.CertificateValidation == nil || g.CertificateValidationRecord == nil || g.DNSRecord == nil {
				t.Error("the component does not expose the certificate, its validation and the records")
			}
		})
	}
}

// TestChildNamesAndParents checks the exact set of children and that each one's parent is the
// component.
func TestChildNamesAndParents(t *testing.T) {
	common := []string{
		tSG + " chem-gw-alb-sg", tSG + " chem-gw-sg",
		tEgress + " chem-gw-alb-out-litellm", tIngress + " chem-gw-nodes-in-litellm",
		tEgress + " chem-gw-nodes-out-https", tEgress + " chem-gw-nodes-out-http",
		tEgress + " chem-gw-nodes-out-pool-cpu", tEgress + " chem-gw-nodes-out-pool-gpu",
		tIngress + " chem-gw-internal-in-pool-cpu", tIngress + " chem-gw-internal-in-pool-gpu",
		tEgress + " chem-gw-internal-out-pool-cpu", tEgress + " chem-gw-internal-out-pool-gpu",
		tTG + " chem-gw-tg", tLB + " chem-gw-alb", tListener + " chem-gw-http",
		tLB + " chem-gw-internal", tListener + " chem-gw-pool-cpu", tListener + " chem-gw-pool-gpu",
		tRole + " chem-gw-role", tAttachment + " chem-gw-ssm", tRolePolicy + " chem-gw-node", tRolePolicy + " chem-gw-key-registry", tProfile + " chem-gw-profile",
		tLT + " chem-gw-lt", tASG + " chem-gw-asg", tPolicy + " chem-gw-cpu-tracking",
		tRule + " chem-gw-front-v1", tRule + " chem-gw-front-unversioned", tRule + " chem-gw-front-health",
	}
	for _, tc := range []struct {
		name  string
		args  *GatewayArgs
		extra []string
	}{
		{"public", validArgs(), []string{
			tListener + " chem-gw-https", tWebACL + " chem-gw-waf", tWebACLAsc + " chem-gw-waf-alb",
			tIngress + " chem-gw-alb-in-https-142-103-0-0-16", tIngress + " chem-gw-alb-in-https-206-12-0-0-16",
			tIngress + " chem-gw-alb-in-http-142-103-0-0-16", tIngress + " chem-gw-alb-in-http-206-12-0-0-16",
		}},
		{"internal without a certificate", with(internal(false)), []string{
			tIngress + " chem-gw-alb-in-http-192-168-10-0-24", tIngress + " chem-gw-alb-in-http-10-20-0-0-16",
		}},
		{"internal with a hosted zone", with(func(a *GatewayArgs) { internal(false)(a); zoned(a) }), []string{
			tListener + " chem-gw-https", tRecord + " chem-gw-dns",
			tRule + " chem-gw-front-deny", tRule + " chem-gw-front-wrong-host",
			tCert + " chem-gw-cert", tRecord + " chem-gw-cert-validation", tCertValid + " chem-gw-cert-issued",
			tIngress + " chem-gw-alb-in-https-192-168-10-0-24", tIngress + " chem-gw-alb-in-https-10-20-0-0-16",
			tIngress + " chem-gw-alb-in-http-192-168-10-0-24", tIngress + " chem-gw-alb-in-http-10-20-0-0-16",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, _ := mustRun(t, tc.args)
			mocktest.Children(t, m, tComponent, "chem-gw", append(append([]string{}, common...), tc.extra...))
		})
	}
}

// TestInvalidArgs checks that each bad argument is refused with an error naming its field,
// before anything (not even the component) is registered.
func TestInvalidArgs(t *testing.T) {
	pool := func(name string, edit func(*PoolRoute)) func(*GatewayArgs) {
		return func(a *GatewayArgs) {
			r := a.Pools[name]
			edit(&r)
			a.Pools[name] = r
		}
	}
	tests := []struct {
		name  string
		args  *GatewayArgs
		field string
	}{
		{"nil args", nil, "GatewayArgs"},
		{"empty department", with(func(a *GatewayArgs) { a.Department = "" }), "Department"},
		{"uppercase department", with(func(a *GatewayArgs) { a.Department = "Chem" }), "Department"},
		{"malformed region", with(func(a *GatewayArgs) { a.Region = "Canada Central" }), "Region"},
		{"no access mode", with(func(a *GatewayArgs) { a.Access.Mode = "" }), "Access.Mode"},
		{"unknown access mode", with(func(a *GatewayArgs) { a.Access.Mode = "private" }), "Access.Mode"},
		{"public without a certificate", with(func(a *GatewayArgs) { a.Access.CertificateARN = "" }), "Access.CertificateARN"},
		{"malformed certificate", with(func(a *GatewayArgs) { a.Access.CertificateARN = "arn:aws:iam::123456789012:server-certificate/x" }), "Access.CertificateARN"},
		{"certificate in another region", with(func(a *GatewayArgs) {
			a.Access.CertificateARN = strings.Replace(certArn, region, "us-east-1", 1)
		}), "Access.CertificateARN"},
		{"hosted zone without a hostname", with(func(a *GatewayArgs) { a.Access.HostedZoneID = zoneID }), "Access.Hostname"},
		{"malformed hosted zone", with(func(a *GatewayArgs) { zoned(a); a.Access.HostedZoneID = "/hostedzone/" + zoneID }), "Access.HostedZoneID"},
		{"malformed hostname", with(func(a *GatewayArgs) { zoned(a); a.Access.Hostname = "LLM.chem.example.edu" }), "Access.Hostname"},
		{"public with PlainHTTP", with(func(a *GatewayArgs) { a.Access.PlainHTTP = true }), "Access.PlainHTTP"},
		{"internal with a certificate and PlainHTTP", with(func(a *GatewayArgs) { internal(true)(a); a.Access.PlainHTTP = true }), "Access.PlainHTTP"},
		{"internal with a hosted zone and PlainHTTP", with(func(a *GatewayArgs) { internal(false)(a); zoned(a); a.Access.PlainHTTP = true }), "Access.PlainHTTP"},
		{"internal without a certificate or PlainHTTP", with(func(a *GatewayArgs) { internal(false)(a); a.Access.PlainHTTP = false }), "Access.PlainHTTP"},
		{"public without CIDRs", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = nil }), "Access.AllowedCIDRs"},
		{"not a CIDR", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = []string{"142.103.0.0/16", "campus"} }), "Access.AllowedCIDRs[1]"},
		{"IPv6 CIDR", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = []string{"2001:db8::/32"} }), "Access.AllowedCIDRs[0]"},
		{"host bits set", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = []string{"142.103.1.0/16"} }), "Access.AllowedCIDRs[0]"},
		{"CIDR twice", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = []string{"142.103.0.0/16", "142.103.0.0/16"} }), "Access.AllowedCIDRs[1]"},
		{"anywhere without AllowAnywhere", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = []string{"0.0.0.0/0"} }), "Access.AllowedCIDRs[0]"},
		{"halves of the internet without AllowAnywhere", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = []string{"0.0.0.0/1", "128.0.0.0/1"} }), "Access.AllowedCIDRs[0]"},
		{"two /8s without AllowAnywhere", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = []string{"11.0.0.0/8", "12.0.0.0/8"} }), "Access.AllowedCIDRs"},
		{"more ranges than the front group holds", with(func(a *GatewayArgs) { a.Access.AllowedCIDRs = clientRanges(31) }), "Access.AllowedCIDRs"},
		{"internal: ranges and the VPC's beyond the quota", with(func(a *GatewayArgs) {
			a.Access = Access{Mode: ModeInternal, AllowedCIDRs: clientRanges(60), PlainHTTP: true}
		}), "Access.AllowedCIDRs"},
		{"tag value with a control character", with(func(a *GatewayArgs) { a.Tags = map[string]string{"Owner": "ling\tit"} }), `Tags["Owner"]`},
		{"too many tags", with(func(a *GatewayArgs) { a.Tags = manyTags(49) }), "Tags"},
		{"internal with a bad VPC CIDR", with(func(a *GatewayArgs) { a.Access.Mode, a.VpcCIDR = ModeInternal, "10.20.0.0" }), "VpcCIDR"},
		{"not a catalog type", with(func(a *GatewayArgs) { a.InstanceType = "x9.huge" }), "InstanceType"},
		{"GPU type", with(func(a *GatewayArgs) { a.InstanceType = "g5.xlarge" }), "InstanceType"},
		{"malformed type", with(func(a *GatewayArgs) { a.InstanceType = "t3 large" }), "InstanceType"},
		{"zero min", with(func(a *GatewayArgs) { a.MinSize = 0 }), "MinSize"},
		{"max below min", with(func(a *GatewayArgs) { a.MinSize, a.MaxSize = 3, 2 }), "MaxSize"},
		{"no pools", with(func(a *GatewayArgs) { a.Pools = nil }), "Pools"},
		{"bad pool name", with(func(a *GatewayArgs) { a.Pools["Big_GPU"] = a.Pools["gpu"]; delete(a.Pools, "gpu") }), `Pools["Big_GPU"]`},
		{"pool named as the gateway", with(func(a *GatewayArgs) { a.Pools["gateway"] = a.Pools["gpu"]; delete(a.Pools, "gpu") }), `Pools["gateway"]`},
		{"listener port 0", with(pool("gpu", func(r *PoolRoute) { r.ListenerPort = 0 })), `Pools["gpu"].ListenerPort`},
		{"negative context length", with(pool("gpu", func(r *PoolRoute) { r.ContextLength = -1 })), `Pools["gpu"].ContextLength`},
		{"listener port too high", with(pool("gpu", func(r *PoolRoute) { r.ListenerPort = 70000 })), `Pools["gpu"].ListenerPort`},
		{"duplicate listener ports", with(pool("gpu", func(r *PoolRoute) { r.ListenerPort = 25678 })), `Pools["gpu"].ListenerPort`},
		{"nil target group", with(pool("cpu", func(r *PoolRoute) { r.TargetGroupArn = nil })), `Pools["cpu"].TargetGroupArn`},
		{"nil pool security group", with(pool("cpu", func(r *PoolRoute) { r.SecurityGroupID = nil })), `Pools["cpu"].SecurityGroupID`},
		{"pool without models", with(pool("cpu", func(r *PoolRoute) { r.Models = nil })), `Pools["cpu"].Models`},
		{"model twice", with(pool("gpu", func(r *PoolRoute) { r.Models = []string{"phi3:mini", "phi3:mini"} })), `Pools["gpu"].Models[1]`},
		{"model in two pools", with(pool("cpu", func(r *PoolRoute) { r.Models = []string{"llama3.1:8b"} })), `Pools["gpu"].Models[0]`},
		{"model with a carriage return", with(pool("gpu", func(r *PoolRoute) { r.Models = []string{"phi3:mini\r"} })), `Pools["gpu"].Models[0]`},
		{"model with a path", with(pool("gpu", func(r *PoolRoute) { r.Models = []string{"../llama"} })), `Pools["gpu"].Models[0]`},
		{"bad agent hash", with(func(a *GatewayArgs) { a.AgentSHA256 = strings.ToUpper(agentSHA) }), "AgentSHA256"},
		{"nil VPC", with(func(a *GatewayArgs) { a.VpcID = nil }), "VpcID"},
		{"public without public subnets", with(func(a *GatewayArgs) { a.PublicSubnetIDs = nil }), "PublicSubnetIDs"},
		{"nil private subnets", with(func(a *GatewayArgs) { a.PrivateSubnetIDs = nil }), "PrivateSubnetIDs"},
		{"nil internal ALB group", with(func(a *GatewayArgs) { a.InternalALBSecurityGroupID = nil }), "InternalALBSecurityGroupID"},
		{"nil master key secret", with(func(a *GatewayArgs) { a.MasterKeySecretArn = nil }), "MasterKeySecretArn"},
		{"nil key registry", with(func(a *GatewayArgs) { a.KeyRegistryTableArn = nil }), "KeyRegistryTableArn"},
		{"bad team name", with(func(a *GatewayArgs) { a.Teams["Staff_1"] = a.Teams["staff"] }), `Teams["Staff_1"]`},
		{"team model not served", with(func(a *GatewayArgs) {
			a.Teams["staff"] = Team{Models: []string{"mistral:7b"}, RequestsPerMinute: 1, TokensPerMinute: 1, ParallelPerKey: 1}
		}), `Teams["staff"].Models[0]`},
		{"team without models", with(func(a *GatewayArgs) {
			a.Teams["staff"] = Team{RequestsPerMinute: 1, TokensPerMinute: 1, ParallelPerKey: 1}
		}), `Teams["staff"].Models`},
		{"team without a limit", with(func(a *GatewayArgs) {
			a.Teams["staff"] = Team{Models: []string{"phi3:mini"}, RequestsPerMinute: 1, TokensPerMinute: 1}
		}), `Teams["staff"].ParallelPerKey`},
		{"nil agent URL", with(func(a *GatewayArgs) { a.AgentURL = nil }), "AgentURL"},
		{"nil bucket", with(func(a *GatewayArgs) { a.ArtifactsBucketArn = nil }), "ArtifactsBucketArn"},
		{"nil key", with(func(a *GatewayArgs) { a.KMSKeyArn = nil }), "KMSKeyArn"},
		{"Name tag", with(func(a *GatewayArgs) { a.Tags = map[string]string{"Name": "x"} }), `Tags["Name"]`},
		{"other department tag", with(func(a *GatewayArgs) { a.Tags = map[string]string{"Department": "physics"} }), `Tags["Department"]`},
		{"other tier tag", with(func(a *GatewayArgs) { a.Tags = map[string]string{"llm-sandbox:tier": "pool"} }), `Tags["llm-sandbox:tier"]`},
		{"aws: tag", with(func(a *GatewayArgs) { a.Tags = map[string]string{"aws:owner": "me"} }), `Tags["aws:owner"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, g, _, err := run(t, tt.args)
			mocktest.Refused(t, m, err, `gateway "chem-gw"`, tt.field)
			if g != nil {
				t.Error("NewGateway returned a gateway with its error")
			}
		})
	}
}

func TestInvalidArgsAllReported(t *testing.T) {
	_, _, _, err := run(t, &GatewayArgs{Department: "chem", Region: region, Access: Access{Mode: ModePublic}, InstanceType: "t3.large", MinSize: 1, MaxSize: 1})
	mocktest.ReportsAll(t, err, "Access.CertificateARN", "Access.AllowedCIDRs", "Pools", "AgentSHA256",
		"VpcID", "PublicSubnetIDs", "PrivateSubnetIDs", "InternalALBSecurityGroupID", "MasterKeySecretArn", "AgentURL", "ArtifactsBucketArn", "KMSKeyArn")
}

// clientRanges returns n distinct /24s.
func clientRanges(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("142.103.%d.0/24", i))
	}
	return out
}

func manyTags(n int) map[string]string {
	tags := map[string]string{}
	for i := range n {
		tags[fmt.Sprintf("Tag%02d", i)] = "v"
	}
	return tags
}

// The client-range budget the stack file and the gateway enforce is what the front group
// really takes: at the budget, the front group holds exactly the quota of inbound rules.
func TestClientRangeBudgetFillsTheFrontGroupQuota(t *testing.T) {
	for _, tc := range []struct {
		name  string
		https bool
		edit  func(*GatewayArgs, int)
		extra int // client ranges the gateway adds itself
	}{
		{"public over HTTPS", true, func(a *GatewayArgs, n int) { a.Access.AllowedCIDRs = clientRanges(n) }, 0},
		{"internal over HTTP, with the VPC's range", false, func(a *GatewayArgs, n int) {
			a.Access = Access{Mode: ModeInternal, AllowedCIDRs: clientRanges(n), PlainHTTP: true}
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := rules.SecurityGroupRuleQuota / rules.ClientRangeRules(tc.https)
			m, _, _, err := run(t, with(func(a *GatewayArgs) { tc.edit(a, budget-tc.extra) }))
			if err != nil {
				t.Fatal(err)
			}
			front, ok := m.ByName("aws:ec2/securityGroup:SecurityGroup", "chem-gw-alb-sg")
			if !ok {
				t.Fatal("no front security group")
			}
			inbound := 0
			for _, r := range m.ByType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") {
				if mockaws.Plain(r.Inputs)["securityGroupId"] == front.ID {
					inbound++
				}
			}
			if inbound != rules.SecurityGroupRuleQuota {
				t.Errorf("%d client ranges give the front group %d inbound rules, want the quota %d", budget, inbound, rules.SecurityGroupRuleQuota)
			}
		})
	}
}

// The gateway nodes may read one registry record at a time, by key id, and decrypt it through
// DynamoDB only: no write, no scan, no query, and no direct use of the department key; and
// publish usage metrics to the usage namespace only.
func TestKeyRegistryReadOnly(t *testing.T) {
	m, g, _ := mustRun(t, validArgs())
	rp := mocktest.Named(t, m, tRolePolicy, "chem-gw-key-registry")
	if rp["role"] != roleName || g.KeyRegistryPolicy == nil {
		t.Errorf("key registry policy on %v (struct field set: %t), want %s", rp["role"], g.KeyRegistryPolicy != nil, roleName)
	}
	type grant struct {
		Actions, Resources []string
		Condition          map[string]map[string]any
	}
	got := map[string]grant{}
	for _, st := range mocktest.Policy(t, rp["policy"]) {
		if st.Effect != "Allow" {
			t.Errorf("statement %s: effect %s", st.Sid, st.Effect)
		}
		got[st.Sid] = grant{strs(st.Action), strs(st.Resource), st.Condition}
	}
	want := map[string]grant{
		"ReadKeyRegistry": {[]string{"dynamodb:GetItem"}, []string{tableArn}, nil},
		"DecryptKeyRegistryThroughDynamoDB": {[]string{"kms:Decrypt", "kms:DescribeKey"}, []string{keyArn},
			map[string]map[string]any{"StringEquals": {"kms:ViaService": "dynamodb.ca-central-1.amazonaws.com"}}},
		"PublishUsageMetrics": {[]string{"cloudwatch:PutMetricData"}, []string{"*"},
			map[string]map[string]any{"StringEquals": {"cloudwatch:namespace": "LLMSandbox/Usage"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("key registry policy:\n got  %+v\n want %+v", got, want)
	}
}

// With MirrorBucket the node config names the pinned wheelhouse in the bucket, and validates;
// without a pinned wheelhouse the component refuses, naming the field.
func TestMirrorBucket(t *testing.T) {
	const bucket = "llm-chem-artifacts"
	w := versions.Wheelhouse
	m, _, _ := mustRun(t, with(func(a *GatewayArgs) { a.MirrorBucket, a.Wheelhouse = pulumi.String(bucket), &w }))
	_, cfg := cloudConfig(t, m)
	want := node.Artifact{URL: "s3://" + bucket + "/mirror/litellm/wheelhouse-" + w.SHA256 + ".tar.zst", SHA256: w.SHA256}
	if cfg.LiteLLM.Wheelhouse == nil || *cfg.LiteLLM.Wheelhouse != want {
		t.Errorf("wheelhouse %+v, want %+v", cfg.LiteLLM.Wheelhouse, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the mirrored node config does not validate: %v", err)
	}
	m, _, _ = mustRun(t, validArgs())
	if _, cfg := cloudConfig(t, m); cfg.LiteLLM.Wheelhouse != nil {
		t.Errorf("without MirrorBucket the node config names a wheelhouse: %+v", cfg.LiteLLM.Wheelhouse)
	}
	if _, _, _, err := run(t, with(func(a *GatewayArgs) { a.MirrorBucket = pulumi.String(bucket) })); err == nil || !strings.Contains(err.Error(), "Wheelhouse: must be a pinned wheelhouse") {
		t.Errorf("MirrorBucket without Wheelhouse: err = %v", err)
	}
}
