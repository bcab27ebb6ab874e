package policy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/config"
)

// The fixtures are offline plans of two example stacks (`sandboxctl plan <stack> --format
// json`): chemistry (public, WAF, one on-demand pool) and linguistics (public, a spot pool with
// a mixed-instances policy and a warm pool). Each test breaks one thing in a copy. That every
// rule passes the current plan of every example stack is tested in package program, which
// renders them.
func loadPlan(t *testing.T, stack string) *Plan {
	t.Helper()
	data, err := os.ReadFile("testdata/plan-" + stack + ".json")
	if err != nil {
		t.Fatal(err)
	}
	p := &Plan{}
	if err := json.Unmarshal(data, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// res returns the resource of a type and name, failing the test when there is none.
func res(t *testing.T, p *Plan, typ, name string) *Resource {
	t.Helper()
	for i := range p.Resources {
		if p.Resources[i].Type == typ && p.Resources[i].Name == name {
			return &p.Resources[i]
		}
	}
	t.Fatalf("no %s %s in the plan", typ, name)
	return nil
}

// editText replaces old by new in a string input, failing when old is not there.
func editText(t *testing.T, r *Resource, key, old, new string) {
	t.Helper()
	s := str(r.Inputs[key])
	if !strings.Contains(s, old) {
		t.Fatalf("%s %s: %q not in %s", r.Type, r.Name, old, key)
	}
	r.Inputs[key] = strings.Replace(s, old, new, 1)
}

// editUserData replaces every old by new in a launch template's decoded user data.
func editUserData(t *testing.T, r *Resource, old, new string) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(str(r.Inputs["userData"]))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), old) {
		t.Fatalf("%s: %q not in the user data", r.Name, old)
	}
	r.Inputs["userData"] = base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(string(raw), old, new)))
}

func remove(p *Plan, typ, name string) {
	var keep []Resource
	for _, r := range p.Resources {
		if r.Type != typ || r.Name != name {
			keep = append(keep, r)
		}
	}
	p.Resources = keep
}

const (
	gwLT   = "chemistry-gateway-lt"
	gpuLT  = "chemistry-gpu-lt"
	gpuASG = "chemistry-gpu-asg"
	alb    = "chemistry-gateway-alb"
)

// ruleCase breaks one thing in a fixture so that rule fires with a message containing want.
type ruleCase struct {
	rule   string
	stack  string
	mutate func(*testing.T, *Plan)
	want   string
}

func setKey(typ, name, key string, v any) func(*testing.T, *Plan) {
	return func(t *testing.T, p *Plan) { res(t, p, typ, name).Inputs[key] = v }
}

// setIn sets the input at a path of keys and list indices.
func setIn(typ, name string, v any, path ...string) func(*testing.T, *Plan) {
	return func(t *testing.T, p *Plan) {
		var cur any = res(t, p, typ, name).Inputs
		for _, k := range path[:len(path)-1] {
			if l, ok := cur.([]any); ok {
				i, err := strconv.Atoi(k)
				if err != nil || i >= len(l) {
					t.Fatalf("%s %s: no element %s", typ, name, k)
				}
				cur = l[i]
				continue
			}
			cur = obj(cur)[k]
			if cur == nil {
				t.Fatalf("%s %s: no %s", typ, name, k)
			}
		}
		m := obj(cur)
		if m == nil {
			t.Fatalf("%s %s: %v is not a mapping", typ, name, path)
		}
		m[path[len(path)-1]] = v
	}
}

func text(typ, name, key, old, new string) func(*testing.T, *Plan) {
	return func(t *testing.T, p *Plan) { editText(t, res(t, p, typ, name), key, old, new) }
}

func userData(lt, old, new string) func(*testing.T, *Plan) {
	return func(t *testing.T, p *Plan) { editUserData(t, res(t, p, typeLaunchTmpl, lt), old, new) }
}

var ruleCases = []ruleCase{
	{"no-open-ingress", "chemistry", setKey(typeIngressRule, "chemistry-gateway-alb-in-https-142-103-0-0-16", "cidrIpv4", "0.0.0.0/0"), "admits 0.0.0.0/0 to ports 443-443"},
	{"ollama-only-from-internal-alb", "chemistry", func(t *testing.T, p *Plan) {
		obj(list(res(t, p, typeSecurityGroup, "chemistry-gpu-sg").Inputs["ingress"])[0])["securityGroups"] = []any{"chemistry-gateway-sg-id"}
	}, "admits security group chemistry-gateway-sg-id to Ollama's port 11434"},
	{"egress-web-only", "chemistry", func(t *testing.T, p *Plan) {
		r := res(t, p, typeEgressRule, "chemistry-gateway-nodes-out-http")
		r.Inputs["fromPort"], r.Inputs["toPort"] = 0.0, 65535.0
	}, "sends to 0.0.0.0/0 on ports 0-65535"},
	{"egress-web-only", "chemistry", setIn(typeSecurityGroup, "chemistry-gpu-sg", "-1", "egress", "0", "protocol"), "sends to 0.0.0.0/0 on ports 0-65535"},
	{"sg-descriptions", "chemistry", setKey(typeIngressRule, "chemistry-gateway-nodes-in-litellm", "description", ""), "no description"},
	{"default-sg-closed", "chemistry", setKey(typeDefaultSG, "chemistry-network-default-sg", "ingress", []any{map[string]any{"protocol": "-1", "self": true}}), "has rules"},
	{"default-sg-closed", "chemistry", func(t *testing.T, p *Plan) { remove(p, typeDefaultSG, "chemistry-network-default-sg") }, "no DefaultSecurityGroup"},
	{"airgap-no-internet-route", "chemistry", airGapped(addRoute("leak", map[string]any{"routeTableId": privRTA, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": chemIGW})), "routes 0.0.0.0/0 to internet gateway chemistry-network-igw-id"},
	{"airgap-no-internet-route", "chemistry", airGapped(func(t *testing.T, p *Plan) { remove(p, typeVPCEndpoint, "chemistry-network-endpoint-monitoring") }), "no interface endpoint for com.amazonaws.ca-central-1.monitoring"},
	{"no-auto-public-ip-subnets", "chemistry", setKey(typeSubnet, "chemistry-network-public-ca-central-1a", "mapPublicIpOnLaunch", true), "mapPublicIpOnLaunch is true"},
	{"instances-in-private-subnets", "chemistry", setKey(typeASG, gpuASG, "vpcZoneIdentifiers", []any{"chemistry-network-public-ca-central-1a-id", "chemistry-network-private-ca-central-1b-id"}), "launches into chemistry-network-public-ca-central-1a-id"},
	{"vpc-flow-logs", "chemistry", func(t *testing.T, p *Plan) { remove(p, typeFlowLog, "chemistry-network-flow-logs") }, "no flow log"},
	{"vpc-flow-logs", "chemistry", setKey(typeFlowLog, "chemistry-network-flow-logs", "trafficType", "REJECT"), `trafficType "REJECT"`},
	{"log-groups-encrypted", "chemistry", setKey(typeLogGroup, "chemistry-network-flow-logs", "kmsKeyId", ""), `kmsKeyId ""`},
	{"log-retention", "chemistry", setKey(typeLogGroup, "chemistry-network-flow-logs", "retentionInDays", 0.0), "retentionInDays 0"},
	{"log-retention", "chemistry", setKey(typeLogGroup, "chemistry-network-flow-logs", "retentionInDays", 365.0), "retentionInDays 365"},
	{"tls13-listeners", "chemistry", setKey(typeListener, "chemistry-gateway-https", "sslPolicy", "ELBSecurityPolicy-2016-08"), `sslPolicy "ELBSecurityPolicy-2016-08"`},
	{"https-only", "chemistry", setKey(typeListener, "chemistry-gateway-http", "defaultActions", []any{map[string]any{"type": "forward", "targetGroupArn": "arn:aws:lb:ca-central-1:123456789012:chemistry-gateway-tg-id"}}), "neither serves nor redirects to HTTPS"},
	{"lb-drop-invalid-headers", "chemistry", setKey(typeLoadBalancer, "chemistry-gateway-internal", "dropInvalidHeaderFields", false), "dropInvalidHeaderFields is not true"},
	{"lb-desync-strictest", "chemistry", setKey(typeLoadBalancer, alb, "desyncMitigationMode", "defensive"), `desyncMitigationMode "defensive"`},
	{"lb-multi-az", "chemistry", setKey(typeLoadBalancer, alb, "subnets", []any{"chemistry-network-public-ca-central-1a-id"}), "1 subnets"},
	{"deletion-protection", "chemistry", setKey(typeLoadBalancer, alb, "enableDeletionProtection", false), "enableDeletionProtection is not true"},
	{"deletion-protection", "chemistry", setKey(typeBucket, "chemistry-artifacts-bucket", "forceDestroy", true), "forceDestroy is true"},
	{"waf-on-public-lb", "chemistry", func(t *testing.T, p *Plan) { remove(p, typeWebACLAssoc, "chemistry-gateway-waf-alb") }, "without a WAF web ACL"},
	{"waf-fail-closed", "chemistry", setKey(typeLoadBalancer, alb, "enableWafFailOpen", true), "enableWafFailOpen is true"},
	{"waf-rate-limit", "chemistry", setKey(typeWebACL, "chemistry-gateway-waf", "rules", []any{}), "no rule blocks with a rate-based statement"},
	{"waf-no-sampled-requests", "chemistry", setIn(typeWebACL, "chemistry-gateway-waf", true, "visibilityConfig", "sampledRequestsEnabled"), "sampledRequestsEnabled is true"},
	{"health-checks", "chemistry", setIn(typeTargetGroup, "chemistry-gateway-tg", "/health", "healthCheck", "path"), `path "/health"`},
	{"health-checks", "chemistry", setIn(typeTargetGroup, "chemistry-gpu-tg", false, "healthCheck", "enabled"), "want enabled with a path"},
	{"no-admin-paths-forwarded", "chemistry", setKey(typeListener, "chemistry-gateway-https", "defaultActions", []any{map[string]any{"type": "forward", "targetGroupArn": "arn:aws:lb:ca-central-1:123456789012:chemistry-gateway-tg-id"}}), "the default action forwards every path no rule matches"},
	{"no-admin-paths-forwarded", "chemistry", setIn(typeListenerRule, "chemistry-gateway-front-health", []any{"/health/liveliness", "/config/update"}, "conditions", "1", "pathPattern", "values"), `forwards "/config/update", which is not a client path`},
	{"no-admin-paths-forwarded", "linguistics", setIn(typeListenerRule, "linguistics-gateway-front-v1", []any{"/v1/*"}, "conditions", "1", "pathPattern", "values"), `forwards path pattern "/v1/*"`},
	{"no-admin-paths-forwarded", "chemistry", func(t *testing.T, p *Plan) {
		p.Spec = &config.Spec{Access: config.Access{Mode: config.AccessPublic, Hostname: "llm.chem.example.edu"}}
		r := res(t, p, typeListenerRule, "chemistry-gateway-front-v1")
		r.Inputs["conditions"] = list(r.Inputs["conditions"])[1:] // the path condition alone
	}, `rule chemistry-gateway-front-v1 forwards for hosts []; want exactly the stack's hostname "llm.chem.example.edu"`},
	{"plain-http-opt-in", "chemistry", setKey(typeListener, "chemistry-gateway-https", "protocol", "HTTP"), "serves plain HTTP on port 443 without access.plainHttp: true"},
	{"plain-http", "chemistry", func(t *testing.T, p *Plan) {
		p.Spec = &config.Spec{Access: config.Access{Mode: config.AccessInternal, PlainHTTP: true}}
		res(t, p, typeListener, "chemistry-gateway-https").Inputs["protocol"] = "HTTP"
	}, "serves plain HTTP on port 443 (access.plainHttp: true)"},
	{"least-outstanding-requests", "chemistry", setKey(typeTargetGroup, "chemistry-gpu-tg", "loadBalancingAlgorithmType", "round_robin"), `"round_robin"`},
	{"imdsv2-only", "chemistry", setIn(typeLaunchTmpl, gpuLT, "optional", "metadataOptions", "httpTokens"), `httpTokens "optional"`},
	{"imds-hop-limit", "chemistry", setIn(typeLaunchTmpl, gwLT, 2.0, "metadataOptions", "httpPutResponseHopLimit"), "httpPutResponseHopLimit 2"},
	{"no-public-ip", "chemistry", setIn(typeLaunchTmpl, gpuLT, "true", "networkInterfaces", "0", "associatePublicIpAddress"), `associatePublicIpAddress "true"`},
	{"ebs-encrypted", "chemistry", setIn(typeLaunchTmpl, gpuLT, "arn:aws:kms:ca-central-1:123456789012:key/someone-elses", "blockDeviceMappings", "0", "ebs", "kmsKeyId"), "want \"true\" with the department key"},
	{"ebs-encrypted", "chemistry", setIn(typeLaunchTmpl, gwLT, "false", "blockDeviceMappings", "0", "ebs", "encrypted"), `encrypted "false"`},
	{"pool-volume-size", "chemistry", setIn(typeLaunchTmpl, gpuLT, 50.0, "blockDeviceMappings", "0", "ebs", "volumeSize"), "gp3 of 50 GiB"},
	{"ami-pinned", "chemistry", setKey(typeLaunchTmpl, gpuLT, "imageId", "resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"), `imageId "resolve:ssm:`},
	{"detailed-monitoring", "chemistry", setIn(typeLaunchTmpl, gwLT, false, "monitoring", "enabled"), "monitoring.enabled is not true"},
	{"launch-template-version", "chemistry", setIn(typeASG, gpuASG, "$Latest", "launchTemplate", "version"), `version "$Latest"`},
	{"launch-template-version", "linguistics", setIn(typeASG, "linguistics-batch-asg", "$Default", "mixedInstancesPolicy", "launchTemplate", "launchTemplateSpecification", "version"), `version "$Default"`},
	{"launch-template-version", "chemistry", setIn(typeASG, gpuASG, "lt-0123456789abcdef0", "launchTemplate", "id"), "not a launch template of the plan"},
	{"elb-health-check", "chemistry", setKey(typeASG, gpuASG, "healthCheckType", "EC2"), `healthCheckType "EC2"`},
	{"asg-multi-az", "chemistry", setKey(typeASG, gpuASG, "vpcZoneIdentifiers", []any{"chemistry-network-private-ca-central-1a-id"}), "1 subnets"},
	{"launch-hook-abandon", "chemistry", setIn(typeASG, gpuASG, "CONTINUE", "initialLifecycleHooks", "0", "defaultResult"), `defaultResult "CONTINUE"`},
	{"launch-hook-abandon", "chemistry", setKey(typeASG, gpuASG, "initialLifecycleHooks", []any{}), "no autoscaling:EC2_INSTANCE_LAUNCHING lifecycle hook"},
	{"launch-hook-abandon", "chemistry", setIn(typeASG, gpuASG, 7201.0, "initialLifecycleHooks", "0", "heartbeatTimeout"), "heartbeatTimeout 7201"},
	{"terminating-hook", "chemistry", setKey(typeASG, gpuASG, "initialLifecycleHooks", []any{}), "no autoscaling:EC2_INSTANCE_TERMINATING lifecycle hook"},
	{"terminating-hook", "chemistry", setIn(typeASG, gpuASG, 819.0, "initialLifecycleHooks", "1", "heartbeatTimeout"), "heartbeatTimeout 819 is shorter than target group arn:aws:lb:ca-central-1:123456789012:chemistry-gpu-tg-id's deregistration delay 820"},
	{"terminating-hook", "chemistry", func(t *testing.T, p *Plan) {
		editUserData(t, res(t, p, typeLaunchTmpl, gpuLT), `"terminateHook": "llm-sandbox-terminate"`, `"terminateHook": "llm-sandbox-other"`)
	}, `node config drains 820 s for terminating hook "llm-sandbox-other"`},
	{"terminating-hook", "chemistry", func(t *testing.T, p *Plan) {
		editUserData(t, res(t, p, typeLaunchTmpl, gwLT), `"drainSeconds": 3600`, `"drainSeconds": 4000`)
	}, "node config drains 4000 s"},
	{"terminating-hook", "linguistics", setIn(typeASG, "linguistics-batch-asg", "autoscaling:EC2_INSTANCE_LAUNCHING", "initialLifecycleHooks", "1", "lifecycleTransition"), "no autoscaling:EC2_INSTANCE_TERMINATING lifecycle hook"},
	{"instance-refresh-keeps-capacity", "chemistry", setIn(typeASG, gpuASG, 90.0, "instanceRefresh", "preferences", "minHealthyPercentage"), "minHealthyPercentage 90"},
	{"node-config-rendered", "chemistry", setKey(typeLaunchTmpl, gwLT, "userData", base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hello\n"))), "not a #cloud-config document"},
	{"node-config-rendered", "chemistry", userData(gwLT, "/etc/llm-sandbox/node.json", "/etc/llm-sandbox/other.json"), "writes no /etc/llm-sandbox/node.json"},
	{"node-config-hook-matches", "chemistry", setIn(typeASG, gpuASG, "another-hook", "initialLifecycleHooks", "0", "name"), `group chemistry-gpu-asg's launch hook is "another-hook"`},
	{"node-config-hook-matches", "chemistry", userData(gpuLT, `"heartbeatSeconds": 1800`, `"heartbeatSeconds": 600`), "(heartbeat 600 s)"},
	{"no-secret-in-user-data", "chemistry", userData(gwLT, `"workers": 2,`, `"workers": 2, "masterKey": "sk-AbCdEfGhIjKlMnOpQrStUv",`), "user data holds"},
	{"no-secret-in-user-data", "chemistry", userData(gpuLT, "set -eu", "set -eu\n      export AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP"), `user data holds "AKIAABCD…"`},
	{"no-secret-in-user-data", "chemistry", userData(gpuLT, "set -eu", "set -eu\n      curl --header 'X-aws-ec2-metadata-token: AQAEAbCdEf0123' http://169.254.169.254/"), `user data holds "token: A…"`},
	{"no-prompt-logging", "chemistry", userData(gpuLT, `"parallel": 4,`, `"parallel": 4, "debugLogRequests": true,`), "node config sets ollama.debugLogRequests"},
	{"no-prompt-logging", "chemistry", userData(gpuLT, "set -eu", "set -eu\n      echo OLLAMA_DEBUG=1 >> /etc/environment"), "user data sets OLLAMA_DEBUG"},
	{"pinned-versions", "chemistry", userData(gpuLT, "0.35.1", "0.34.9"), "must be 0.35.0 or later, which fixes CVE-2026-103663 (got 0.34.9)"},
	{"pinned-versions", "chemistry", userData(gpuLT, `"version": "0.35.1"`, `"version": "0.36.0"`), `is not the release of version 0.36.0`},
	{"pinned-versions", "chemistry", userData(gpuLT, `"version": "0.35.1"`, `"version": "latest"`), `must be an Ollama release X.Y.Z such as 0.35.1 (got "latest")`},
	{"downloads-verified", "chemistry", userData(gpuLT, `"sha256": "9fcd79ac4575b2bd31b992eee18b1000c8ad126b451627c8f8cd091714cfbb10"`, `"sha256": ""`), "ollama.release has no pinned sha256"},
	{"downloads-verified", "chemistry", userData(gpuLT, `"url": "https://github.com`, `"url": "http://github.com`), `ollama.release.url "http://github.com`},
	{"downloads-verified", "chemistry", userData(gwLT, "sha256sum --check --status -", "true"), "does not check the agent"},
	{"iam-no-wildcard-actions", "chemistry", text(typeRolePolicy, "chemistry-gpu-node", "policy", `"Action":"s3:GetObject"`, `"Action":"s3:*"`), `allows action "s3:*"`},
	{"iam-no-public-principal", "chemistry", text(typeBucketPolicy, "chemistry-artifacts-policy", "policy", `,"Condition":{"StringEquals":{"aws:SourceVpce":"chemistry-network-s3-id"}}`, ``), `AllowReadThroughVpcEndpoint allows Principal "*"`},
	{"iam-no-public-principal", "chemistry", text(typeKMSKey, "chemistry-keys-key", "policy", `"Principal":{"AWS":["arn:aws:iam::123456789012:root"]}`, `"Principal":{"AWS":"*"}`), `EnableIAMUserPermissions allows Principal "*"`},
	{"iam-wildcard-resource-conditioned", "chemistry", text(typeRolePolicy, "chemistry-gpu-node", "policy", `,"Condition":{"StringEquals":{"aws:ResourceTag/Department":"chemistry","aws:ResourceTag/Pool":"gpu"}}`, ``), `CompleteLaunchLifecycleAction allows Resource "*" with no condition`},
	{"iam-trust-services-only", "chemistry", text(typeRole, "chemistry-gpu-role", "assumeRolePolicy", `{"Service":"ec2.amazonaws.com"}`, `{"AWS":"arn:aws:iam::210987654321:root"}`), "trusts AWS principals"},
	{"iam-managed-policies-allowed", "chemistry", setKey(typeRolePolicyAttach, "chemistry-gpu-ssm", "policyArn", "arn:aws:iam::aws:policy/AdministratorAccess"), "attaches arn:aws:iam::aws:policy/AdministratorAccess"},
	{"kms-rotation", "chemistry", setKey(typeKMSKey, "chemistry-keys-key", "enableKeyRotation", false), "enableKeyRotation is not true"},
	{"kms-deletion-window", "chemistry", setKey(typeKMSKey, "chemistry-keys-key", "deletionWindowInDays", 7.0), "deletionWindowInDays 7"},
	{"kms-admin-root-only", "chemistry", text(typeKMSKey, "chemistry-keys-key", "policy", `"arn:aws:iam::123456789012:root"`, `"arn:aws:iam::123456789012:role/ops"`), "grants kms:* to arn:aws:iam::123456789012:role/ops"},
	{"secret-department-key", "chemistry", setKey(typeSecret, "chemistry-keys-master-key", "kmsKeyId", ""), `kmsKeyId ""`},
	{"secret-recovery-window", "chemistry", setKey(typeSecret, "chemistry-keys-master-key", "recoveryWindowInDays", 0.0), "recoveryWindowInDays 0"},
	{"no-secret-in-plain", "chemistry", setKey("aws:secretsmanager/secretVersion:SecretVersion", "chemistry-keys-master-key-value", "secretString", "sk-AbCdEfGhIjKlMnOpQrStUv"), "input secretString holds what looks like an API key"},
	{"s3-public-access-blocked", "chemistry", setKey(typeBucketPAB, "chemistry-artifacts-public-access-block", "blockPublicPolicy", false), "blockPublicPolicy is not true"},
	{"s3-public-access-blocked", "chemistry", func(t *testing.T, p *Plan) { remove(p, typeBucketPAB, "chemistry-artifacts-public-access-block") }, "no public access block"},
	{"s3-department-key", "chemistry", setIn(typeBucketSSE, "chemistry-artifacts-encryption", "AES256", "rules", "0", "applyServerSideEncryptionByDefault", "sseAlgorithm"), "default encryption AES256"},
	{"s3-versioning", "chemistry", setIn(typeBucketVersion, "chemistry-artifacts-versioning", "Suspended", "versioningConfiguration", "status"), `versioning status "Suspended"`},
	{"s3-tls-only", "chemistry", text(typeBucketPolicy, "chemistry-artifacts-policy", "policy", `"Effect":"Deny"`, `"Effect":"Allow"`), "no bucket policy statement denies"},
	{"s3-acls-disabled", "chemistry", setIn(typeBucketOwnership, "chemistry-artifacts-ownership", "ObjectWriter", "rule", "objectOwnership"), `objectOwnership "ObjectWriter"`},
	{"s3-reads-through-vpc-endpoint", "chemistry", text(typeBucketPolicy, "chemistry-artifacts-policy", "policy", `"aws:SourceVpce":"chemistry-network-s3-id"`, `"aws:SourceVpce":"vpce-0someoneelse"`), `with aws:SourceVpce "vpce-0someoneelse"`},
	{"pinned-ollama", "chemistry", userData(gpuLT, `"sha256": "9fcd79ac4575b2bd31b992eee18b1000c8ad126b451627c8f8cd091714cfbb10"`, `"sha256": ""`), "sandboxctl pin ollama 0.35.1"},
	{"no-egress-80", "chemistry", func(t *testing.T, p *Plan) {
		sg := res(t, p, typeSecurityGroup, "chemistry-gpu-sg")
		sg.Inputs["egress"] = append(list(sg.Inputs["egress"]), map[string]any{
			"cidrBlocks": []any{"0.0.0.0/0"}, "description": "HTTP", "fromPort": 80.0, "protocol": "tcp", "toPort": 80.0})
	}, "on port 80 from chemistry-gpu-sg-id, used by [ollama]"},
	{"no-egress-80", "chemistry", setIn(typeLaunchTmpl, gpuLT, []any{"chemistry-gateway-sg-id"}, "networkInterfaces", "0", "securityGroups"), "on port 80 from chemistry-gateway-sg-id"},
	{"no-egress-80", "chemistry", func(t *testing.T, p *Plan) {
		r := res(t, p, typeEgressRule, "chemistry-gateway-nodes-out-http")
		r.Inputs["securityGroupId"] = "chemistry-gateway-alb-sg-id"
	}, "from chemistry-gateway-alb-sg-id, used by []"},
	{"artifacts-access-logs", "chemistry", func(t *testing.T, p *Plan) { remove(p, typeBucketLogging, "chemistry-artifacts-access-logging") }, "no server access logging"},
	{"artifacts-access-logs", "chemistry", setKey(typeBucketLogging, "chemistry-artifacts-access-logging", "targetBucket", "llm-chemistry-20260101000000000000000001"), "want a separate bucket"},
	{"artifacts-access-logs", "chemistry", setIn(typeBucketSSE, "chemistry-artifacts-logs-encryption", "aws:kms", "rules", "0", "applyServerSideEncryptionByDefault", "sseAlgorithm"), `log bucket default encryption "aws:kms"`},
	{"artifacts-access-logs", "chemistry", setKey(typeBucket, "chemistry-artifacts-logs-bucket", "forceDestroy", true), "log bucket forceDestroy true"},
	{"artifacts-access-logs", "chemistry", text(typeBucketPolicy, "chemistry-artifacts-logs-policy", "policy", `"aws:SourceArn":"arn:aws:s3:::llm-chemistry-`, `"aws:SourceArn":"arn:aws:s3:::other-`), "conditions aws:SourceArn"},
	{"artifacts-access-logs", "chemistry", text(typeBucketPolicy, "chemistry-artifacts-logs-policy", "policy", `"Principal":{"Service":"logging.s3.amazonaws.com"}`, `"Principal":{"AWS":"arn:aws:iam::123456789012:root"}`), "a log bucket admits only the service logging.s3.amazonaws.com"},
	{"artifacts-access-logs", "chemistry", text(typeBucketPolicy, "chemistry-artifacts-logs-policy", "policy", `"Action":"s3:PutObject"`, `"Action":"s3:Put*"`), "want only s3:PutObject"},
	{"artifacts-access-logs", "chemistry", func(t *testing.T, p *Plan) { remove(p, typeBucketPolicy, "chemistry-artifacts-logs-policy") }, "no policy admitting the S3 logging service"},
	{"artifacts-access-logs", "chemistry", setIn(typeBucketLifecycle, "chemistry-artifacts-logs-lifecycle", 30.0, "rules", "0", "expiration", "days"), "expire after 30 days, the flow logs after 90"},
	{"artifacts-access-logs", "chemistry", setIn(typeBucketLifecycle, "chemistry-artifacts-logs-lifecycle", "Disabled", "rules", "0", "status"), "no enabled lifecycle rule"},
	{"alarms-present", "chemistry", func(t *testing.T, p *Plan) { remove(p, typeAlarm, "chemistry-observability-pool-gpu-no-healthy-node") }, "no no-healthy-node alarm (tagged Pool=gpu"},
	{"alarms-present", "linguistics", func(t *testing.T, p *Plan) { remove(p, typeAlarm, "linguistics-observability-gateway-pending-node") }, "no pending-node alarm (tagged llm-sandbox:tier=gateway"},
	{"alarms-present", "chemistry", setIn(typeAlarm, "chemistry-observability-gateway-5xx-rate", []any{}, "alarmActions"), "want the department's alarm topic"},
	{"alarms-present", "chemistry", setIn(typeAlarm, "chemistry-observability-pool-gpu-response-time", "gpu2", "tags", "Pool"), "no response-time alarm (tagged Pool=gpu"},
	{"alarms-present", "chemistry", setIn(typeAlarm, "chemistry-observability-pool-gpu-response-time", false, "actionsEnabled"), "actionsEnabled false"},
	{"alarms-present", "chemistry", func(t *testing.T, p *Plan) {
		remove(p, typeAlarm, "chemistry-observability-pool-gpu-in-flight-above-capacity")
	}, "no in-flight-above-capacity alarm (tagged Pool=gpu, llm-sandbox:alarm=in-flight-above-capacity); every pool has one"},
	{"alarms-present", "linguistics", setIn(typeAlarm, "linguistics-observability-pool-chat-in-flight-above-capacity", 60.0, "threshold"), "has threshold 60; want the pool's parallel 6"},
	{"alarms-present", "chemistry", setIn(typeAlarm, "chemistry-observability-pool-gpu-in-flight-above-capacity", "embed", "dimensions", "Pool"), "watches LLMSandbox InFlightRequests with Pool=embed"},
	{"sns-encrypted", "chemistry", setIn(typeTopic, "chemistry-observability-alarms", "alias/aws/sns", "kmsMasterKeyId"), `kmsMasterKeyId "alias/aws/sns"; want the department key`},
	{"sns-encrypted", "linguistics", func(t *testing.T, p *Plan) {
		delete(res(t, p, typeTopic, "linguistics-observability-alarms").Inputs, "kmsMasterKeyId")
	}, `kmsMasterKeyId ""`},
	{"dynamodb-department-key", "chemistry", setIn(typeDynamoTable, "chemistry-keys-registry", "", "serverSideEncryption", "kmsKeyArn"), `with key ""`},
	{"dynamodb-department-key", "linguistics", setIn(typeDynamoTable, "linguistics-keys-registry", false, "serverSideEncryption", "enabled"), "serverSideEncryption enabled false"},
	{"dynamodb-point-in-time-recovery", "chemistry", setIn(typeDynamoTable, "chemistry-keys-registry", false, "pointInTimeRecovery", "enabled"), "pointInTimeRecovery.enabled is not true"},
	{"dynamodb-deletion-protection", "chemistry", setKey(typeDynamoTable, "chemistry-keys-registry", "deletionProtectionEnabled", false), "deletionProtectionEnabled is not true"},
	{"key-registry-read-only", "chemistry", text(typeRolePolicy, "chemistry-gateway-key-registry", "policy", `["dynamodb:GetItem"]`, `["dynamodb:GetItem","dynamodb:PutItem"]`), `allows "dynamodb:PutItem"`},
	{"key-registry-read-only", "chemistry", text(typeRolePolicy, "chemistry-gateway-key-registry", "policy", `["dynamodb:GetItem"]`, `"dynamodb:Scan"`), `allows "dynamodb:Scan"`},
	{"cache-encrypted-in-transit", "chemistry", setKey(typeCacheGroup, "chemistry-cache-group", "transitEncryptionMode", "preferred"), `transitEncryptionMode "preferred"`},
	{"cache-encrypted-in-transit", "linguistics", setKey(typeCacheGroup, "linguistics-cache-group", "transitEncryptionEnabled", false), "transitEncryptionEnabled false"},
	{"cache-encrypted-at-rest-with-department-key", "chemistry", setKey(typeCacheGroup, "chemistry-cache-group", "kmsKeyId", ""), `with kmsKeyId ""`},
	{"cache-encrypted-at-rest-with-department-key", "chemistry", setKey(typeCacheGroup, "chemistry-cache-group", "atRestEncryptionEnabled", false), "atRestEncryptionEnabled false"},
	{"cache-auth-token", "chemistry", func(t *testing.T, p *Plan) {
		delete(res(t, p, typeCacheGroup, "chemistry-cache-group").Inputs, "authToken")
	}, "no authToken"},
	{"cache-auth-token", "chemistry", setKey(typeCacheGroup, "chemistry-cache-group", "authToken", "AbCdEfGhIjKlMnOpQrStUv0123456789"), "not marked secret"},
	{"cache-not-public", "chemistry", setKey(typeIngressRule, "chemistry-gateway-cache-in-nodes", "referencedSecurityGroupId", "chemistry-gpu-sg-id"), "admits security group chemistry-gpu-sg-id to the rate-limit cache's group chemistry-cache-sg-id"},
	{"cache-not-public", "chemistry", func(t *testing.T, p *Plan) {
		r := res(t, p, typeIngressRule, "chemistry-gateway-cache-in-nodes")
		delete(r.Inputs, "referencedSecurityGroupId")
		r.Inputs["cidrIpv4"] = "10.0.0.0/16"
	}, "admits 10.0.0.0/16 to the rate-limit cache's group"},
	{"cache-not-public", "chemistry", setKey(typeCacheSubnets, "chemistry-cache-subnets", "subnetIds", []any{"chemistry-network-public-ca-central-1a-id"}), "places the cache in chemistry-network-public-ca-central-1a-id, a subnet routed to the internet gateway"},
	{"cache-not-public", "chemistry", setKey(typeCacheGroup, "chemistry-cache-group", "securityGroupIds", []any{}), "no securityGroupIds"},
}

func TestFixturesPass(t *testing.T) {
	for _, stack := range []string{"chemistry", "linguistics"} {
		if fs := Check(loadPlan(t, stack)); len(fs) != 0 {
			t.Errorf("%s: findings on an unmodified plan:\n%v", stack, fs)
		}
	}
}

// Each rule fires on the mistake it exists for.
func TestEachRuleFires(t *testing.T) {
	for _, c := range ruleCases {
		t.Run(c.rule, func(t *testing.T) {
			p := loadPlan(t, c.stack)
			c.mutate(t, p)
			fs := Check(p)
			found := false
			for _, f := range fs {
				if f.Rule == c.rule && strings.Contains(f.Message, c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("want a %s finding containing %q, got %v", c.rule, c.want, fs)
			}
		})
	}
}

func TestEveryRuleHasACase(t *testing.T) {
	cased := map[string]bool{}
	for _, c := range ruleCases {
		cased[c.rule] = true
	}
	for _, r := range Rules() {
		if !cased[r.ID] {
			t.Errorf("rule %s has no case with a plan that breaks it", r.ID)
		}
	}
}

var (
	ruleID    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	controlID = regexp.MustCompile(`^(CKV2?_AWS_\d+|AVD-AWS-\d{4}|[A-Z][A-Za-z0-9]*\.\d+)$`)
)

func TestRulesAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Rules() {
		if !ruleID.MatchString(r.ID) || seen[r.ID] {
			t.Errorf("rule id %q: not kebab-case or repeated", r.ID)
		}
		seen[r.ID] = true
		if r.Severity != Error && r.Severity != Warning {
			t.Errorf("%s: severity %q", r.ID, r.Severity)
		}
		if r.Rationale == "" || strings.Contains(r.Rationale, "\n") || r.check == nil {
			t.Errorf("%s: want a one-line rationale and a check", r.ID)
		}
		for _, c := range r.Controls {
			if !controlID.MatchString(c) {
				t.Errorf("%s: control id %q is not a Checkov, Trivy or Security Hub id", r.ID, c)
			}
		}
	}
	if len(Rules()) < 40 {
		t.Errorf("%d rules", len(Rules()))
	}
}

// allowAnywhere opens only 443/80 on the internet-facing load balancer, nothing else.
func TestAllowAnywhereOpensOnlyTheWebPorts(t *testing.T) {
	p := loadPlan(t, "chemistry")
	p.Spec = &config.Spec{Access: config.Access{Mode: config.AccessPublic, AllowAnywhere: true}}
	res(t, p, typeIngressRule, "chemistry-gateway-alb-in-https-142-103-0-0-16").Inputs["cidrIpv4"] = "0.0.0.0/0"
	if fs := Check(p); len(fs) != 0 {
		t.Errorf("443 from anywhere with allowAnywhere: %v", fs)
	}
	res(t, p, typeIngressRule, "chemistry-gateway-internal-in-pool-gpu").Inputs["cidrIpv4"] = "0.0.0.0/0"
	fs := Check(p)
	if len(fs) != 1 || fs[0].Rule != "no-open-ingress" {
		t.Errorf("0.0.0.0/0 on the internal load balancer: %v", fs)
	}
}

// A stack that turns deletion protection off is not held to it.
func TestDeletionProtectionFollowsTheStack(t *testing.T) {
	p := loadPlan(t, "chemistry")
	res(t, p, typeLoadBalancer, alb).Inputs["enableDeletionProtection"] = false
	p.Spec = &config.Spec{Gateway: config.Gateway{DeletionProtection: false}}
	if fs := Check(p); len(fs) != 0 {
		t.Errorf("deletionProtection: false: %v", fs)
	}
	p.Spec.Gateway.DeletionProtection = true
	if fs := Check(p); len(fs) != 1 || fs[0].Rule != "deletion-protection" {
		t.Errorf("deletionProtection: true: %v", fs)
	}
}

// A plain HTTP client listener is an error without the stack's opt-in and a warning, on every
// run, with it; the redirect-only port 80 beside HTTPS is neither.
func TestPlainHTTPFollowsTheOptIn(t *testing.T) {
	p := loadPlan(t, "chemistry")
	p.Spec = &config.Spec{Access: config.Access{Mode: config.AccessInternal, PlainHTTP: true}}
	if fs := Check(p); len(fs) != 0 {
		t.Fatalf("HTTPS with a redirect on 80: %v", fs)
	}
	// The front balancer made internal, as plain HTTP is only for internal stacks.
	res(t, p, typeLoadBalancer, alb).Inputs["internal"] = true
	res(t, p, typeListener, "chemistry-gateway-https").Inputs["protocol"] = "HTTP"
	fs := Check(p)
	if len(fs) != 1 || fs[0].Rule != "plain-http" || fs[0].Severity != Warning || Failed(fs) {
		t.Errorf("opted in: %v, want the plain-http warning alone", fs)
	}
	p.Spec.Access.PlainHTTP = false
	fs = Check(p)
	if !slices.ContainsFunc(fs, func(f Finding) bool { return f.Rule == "plain-http-opt-in" && f.Fails() }) ||
		slices.ContainsFunc(fs, func(f Finding) bool { return f.Rule == "plain-http" }) {
		t.Errorf("not opted in: %v, want plain-http-opt-in failing and no plain-http warning", fs)
	}
}

// Errors fail a run unless waived; warnings never do.
func TestSeverityAndWaivers(t *testing.T) {
	p := loadPlan(t, "chemistry")
	res(t, p, typeKMSKey, "chemistry-keys-key").Inputs["deletionWindowInDays"] = 7.0
	fs := Check(p)
	if len(fs) != 1 || fs[0].Severity != Warning || Failed(fs) {
		t.Fatalf("a warning alone: %v, failed %v", fs, Failed(fs))
	}
	res(t, p, typeKMSKey, "chemistry-keys-key").Inputs["enableKeyRotation"] = false
	fs = Check(p)
	if !Failed(fs) {
		t.Fatalf("an error does not fail: %v", fs)
	}
	fs = Waive(fs, map[string]string{"kms-rotation": "rotation handled by the key's owner (ops, until 2027-01)"})
	if Failed(fs) {
		t.Errorf("a waived error still fails: %v", fs)
	}
	for _, f := range fs {
		if f.Rule == "kms-rotation" && !strings.Contains(f.String(), "(waived: rotation handled") {
			t.Errorf("waived finding reads %q", f)
		}
	}
}

func TestRuleIDs(t *testing.T) {
	ids := RuleIDs()
	if len(ids) != len(Rules()) || ids[0] != Rules()[0].ID {
		t.Errorf("RuleIDs %v", ids)
	}
}

// An allow-list is judged by the addresses it covers together, not by its spelling: ranges
// that each look narrow but together admit more than a /8 are as open as 0.0.0.0/0, and only
// allowAnywhere excuses them, on the web ports of the internet-facing load balancer.
func TestOpenIngressJudgesTheAddressSpaceCovered(t *testing.T) {
	const (
		https    = "chemistry-gateway-alb-in-https-142-103-0-0-16"
		front    = "chemistry-gateway-alb-sg-id"
		internal = "chemistry-internal-alb-sg-id"
	)
	withRanges := func(allowAnywhere bool, sg string, cidrs ...string) *Plan {
		p := loadPlan(t, "chemistry")
		p.Spec = &config.Spec{
			Access:  config.Access{Mode: config.AccessPublic, AllowAnywhere: allowAnywhere},
			Network: config.Network{CIDR: netip.MustParsePrefix("10.20.0.0/16")},
		}
		// The front group's other 443 range would add its own /16 to the list under test.
		remove(p, typeIngressRule, "chemistry-gateway-alb-in-https-206-87-0-0-16")
		first := res(t, p, typeIngressRule, https)
		first.Inputs["securityGroupId"] = sg
		first.Inputs["cidrIpv4"] = cidrs[0]
		for i, c := range cidrs[1:] {
			r := *first
			r.Name, r.ID = fmt.Sprintf("front-443-%d", i), fmt.Sprintf("r1-%d", i)
			r.Inputs = maps.Clone(first.Inputs)
			r.Inputs["cidrIpv4"] = c
			p.Resources = append(p.Resources, r)
		}
		return p
	}
	eights := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%d.0.0.0/8", 11+i))
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		plan     *Plan
		findings int
	}{
		{"halves of the internet", withRanges(false, front, "0.0.0.0/1", "128.0.0.0/1"), 1},
		{"two /8s together", withRanges(false, front, eights(2)...), 2},
		{"one /8", withRanges(false, front, eights(1)...), 0},
		{"a /8 and the VPC's own range", withRanges(false, front, "11.0.0.0/8", "10.20.0.0/16"), 0},
		{"halves with allowAnywhere on the front", withRanges(true, front, "0.0.0.0/1", "128.0.0.0/1"), 0},
		{"halves with allowAnywhere on the internal balancer", withRanges(true, internal, "0.0.0.0/1", "128.0.0.0/1"), 1},
	} {
		fs := Check(tc.plan)
		if len(fs) != tc.findings {
			t.Errorf("%s: %d findings %v, want %d", tc.name, len(fs), fs, tc.findings)
		}
		for _, f := range fs {
			if f.Rule != "no-open-ingress" {
				t.Errorf("%s: finding of rule %s", tc.name, f.Rule)
			}
		}
	}
}
