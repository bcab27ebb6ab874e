package privacy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/policy"
	"github.com/llm-sandbox/llm-sandbox/program"
)

var (
	chemOnce sync.Once
	chemPlan *program.Plan
	chemErr  error
)

// chemistry returns a fresh copy of the chemistry example's plan (rendered once), for a test
// to change.
func chemistry(t *testing.T) *program.Plan {
	t.Helper()
	chemOnce.Do(func() {
		spec, err := config.Load("../..", "chemistry")
		if err != nil {
			chemErr = err
			return
		}
		chemPlan, chemErr = program.PlanStack(spec, "../..")
	})
	if chemErr != nil {
		t.Fatal(chemErr)
	}
	raw, err := json.Marshal(chemPlan.Resources)
	if err != nil {
		t.Fatal(err)
	}
	cp := *chemPlan
	cp.Resources = nil
	if err := json.Unmarshal(raw, &cp.Resources); err != nil {
		t.Fatal(err)
	}
	return &cp
}

func resource(t *testing.T, p *program.Plan, typ, name string) program.PlannedResource {
	t.Helper()
	for _, r := range p.Resources {
		if r.Type == typ && r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s %s in the plan", typ, name)
	return program.PlannedResource{}
}

func report(t *testing.T, p *program.Plan) (*Report, string) {
	t.Helper()
	r, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	return r, b.String()
}

func dataOf(t *testing.T, r *Report, prefix string) Data {
	t.Helper()
	for _, d := range r.Data {
		if strings.HasPrefix(d.Kind, prefix) {
			return d
		}
	}
	t.Fatalf("no data kind %q", prefix)
	return Data{}
}

func TestPrivacyChemistryReport(t *testing.T) {
	r, md := report(t, chemistry(t))
	if os.Getenv("PRIVACY_PRINT") != "" {
		t.Log(md)
	}
	if len(r.FailedSettings()) != 0 || len(r.Findings) != 0 {
		t.Errorf("failed settings %+v, findings %+v", r.FailedSettings(), r.Findings)
	}
	// The settings come from the rendered LiteLLM config and Ollama environment.
	want := map[string]string{
		"litellm_settings.turn_off_message_logging":    "true",
		"general_settings.disable_spend_logs":          "true",
		"general_settings.store_prompts_in_spend_logs": "false",
		"general_settings.disable_error_logs":          "true",
		"OLLAMA_DEBUG":                                 "0",
		"OLLAMA_DEBUG_LOG_REQUESTS":                    "unset",
	}
	for _, s := range r.Settings {
		if v, ok := want[s.Name]; ok {
			if s.Value != v {
				t.Errorf("%s = %s, want %s", s.Name, s.Value, v)
			}
			delete(want, s.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("settings not reported: %v", want)
	}
	prompts := dataOf(t, r, "Prompts")
	if len(prompts.Stores) != 0 {
		t.Errorf("prompts stored: %+v", prompts.Stores)
	}
	// The client hop is TLS 1.3; the hops inside the VPC and the redirecting port 80 are named
	// as plain HTTP.
	var plain []string
	for _, h := range r.PlainHops() {
		plain = append(plain, h.Resource)
	}
	if strings.Join(plain, " ") != "chemistry-gateway-http chemistry-gateway-tg chemistry-gateway-pool-gpu chemistry-gpu-tg" {
		t.Errorf("plain hops %v", plain)
	}
	keys := dataOf(t, r, "API keys")
	var master Store
	for _, st := range keys.Stores {
		if strings.Contains(st.Where, "litellm-master-key") {
			master = st
		}
	}
	if master.Encryption != "customer-managed KMS key chemistry-keys-key" ||
		!strings.Contains(strings.Join(master.Readers, "; "), "IAM role chemistry-gateway-role (inline policy chemistry-gateway-node)") ||
		strings.Contains(strings.Join(master.Readers, "; "), "chemistry-gpu-role") {
		t.Errorf("master key store %+v", keys.Stores)
	}
	// The rate-limit cache holds counters per key id and team: metadata, encrypted with the
	// department key, read by the gateway nodes only.
	cache := false
	for _, st := range dataOf(t, r, "Request metadata (addresses, ports, byte counts, times)").Stores {
		if strings.HasPrefix(st.Where, "ElastiCache group chemistry-limits") {
			cache = st.Encryption == "customer-managed KMS key chemistry-keys-key at rest, TLS in transit"
		}
	}
	if !cache {
		t.Errorf("the rate-limit cache is not reported as a metadata store encrypted with the department key")
	}
	// The key registry is an API-key store: hashes and owner labels, purged past expiry, read
	// by the gateway nodes' own grant.
	registry := false
	for _, st := range keys.Stores {
		if strings.HasPrefix(st.Where, "DynamoDB table llm-sandbox-chemistry-keys (the key registry") {
			registry = strings.Contains(st.Where, "owner label") && st.Retention == "each record until 90 days past its key's expiry (DynamoDB time to live)" &&
				st.Encryption == "customer-managed KMS key chemistry-keys-key" &&
				strings.Contains(strings.Join(st.Readers, "; "), "IAM role chemistry-gateway-role (inline policy chemistry-gateway-key-registry)")
		}
	}
	if !registry {
		t.Errorf("no key registry store as wanted in %+v", keys.Stores)
	}
	// The usage metrics are a store of counts per team and key id, never of text.
	used := dataOf(t, r, "Usage records")
	if len(used.Stores) != 1 || !strings.HasPrefix(used.Stores[0].Where, "CloudWatch metrics in namespace LLMSandbox/Usage") ||
		!strings.Contains(used.Stores[0].Where, "counts only") || !strings.HasPrefix(used.Stores[0].Retention, "15 months") ||
		len(used.Passes) != 1 || !strings.Contains(used.Passes[0], "over 60 s") {
		t.Errorf("usage records %+v", used)
	}
	meta := dataOf(t, r, "Request metadata")
	if meta.Stores[0].Retention != "90 days" || meta.Stores[0].Encryption != "customer-managed KMS key chemistry-keys-key" {
		t.Errorf("flow logs %+v", meta.Stores[0])
	}
	for _, s := range []string{"# Privacy-impact report: chemistry", "all 11 settings", "**no (plain HTTP)**", "`turn_off_message_logging`"} {
		if !strings.Contains(md, s) && !strings.Contains(md, strings.Trim(s, "`")) {
			t.Errorf("markdown lacks %q", s)
		}
	}
	// Every rule a statement cites is a rule of package policy.
	ids := map[string]bool{}
	for _, rule := range policy.Rules() {
		ids[rule.ID] = true
	}
	for _, d := range r.Data {
		for _, id := range d.Rules {
			if !ids[id] {
				t.Errorf("%s cites unknown rule %q", d.Kind, id)
			}
		}
	}
}

func TestPrivacyReportFollowsPlainHTTP(t *testing.T) {
	p := chemistry(t)
	for i, r := range p.Resources {
		if r.Name == "chemistry-gateway-https" {
			p.Resources[i].Inputs["protocol"] = "HTTP"
			delete(p.Resources[i].Inputs, "sslPolicy")
		}
	}
	r, md := report(t, p)
	found := false
	for _, h := range r.PlainHops() {
		found = found || (h.Resource == "chemistry-gateway-https" && h.From == "clients")
	}
	if !found || !strings.Contains(md, "clients → internet-facing load balancer chemistry-gateway-alb (port 443)") {
		t.Errorf("the client hop is not named plain HTTP:\n%s", md)
	}
}

// Per example stack, what docs/security.md states: clients reach the front load balancer over
// TLS, except in a stack that chose plain HTTP (only dev), and through it only LiteLLM.
func TestPrivacyReportClientHopPerStack(t *testing.T) {
	for _, stack := range []string{"chemistry", "physics", "linguistics", "dev"} {
		spec, err := config.Load("../..", stack)
		if err != nil {
			t.Fatal(err)
		}
		p, err := program.PlanStack(spec, "../..")
		if err != nil {
			t.Fatal(err)
		}
		r, _ := report(t, p)
		var served, plain, litellm bool
		for i, h := range r.Hops {
			if h.From != "clients" || strings.Contains(h.Note, "redirects to") {
				continue
			}
			served = true
			plain = plain || !h.Encrypted
			litellm = litellm || (i+1 < len(r.Hops) && strings.Contains(r.Hops[i+1].To, "gateway nodes"))
		}
		if !served || plain != spec.Access.PlainHTTP || !litellm {
			t.Errorf("%s: client hop served %v, plain %v (stack plainHttp %v), then LiteLLM %v; hops %+v",
				stack, served, plain, spec.Access.PlainHTTP, litellm, r.Hops)
		}
		if (stack == "dev") != spec.Access.PlainHTTP {
			t.Errorf("%s: plainHttp %v; only dev may keep plain HTTP", stack, spec.Access.PlainHTTP)
		}
	}
}

func TestPrivacyReportFollowsFlowLogRetention(t *testing.T) {
	p := chemistry(t)
	resource(t, p, typeLogGroup, "chemistry-network-flow-logs").Inputs["retentionInDays"] = 365.0
	r, md := report(t, p)
	if got := dataOf(t, r, "Request metadata").Stores[0].Retention; got != "365 days" || !strings.Contains(md, "| 365 days |") {
		t.Errorf("retention %q", got)
	}
}

func TestPrivacyReportFollowsLoggingSettings(t *testing.T) {
	p := chemistry(t)
	resource(t, p, typeLB, "chemistry-gateway-alb").Inputs["accessLogs"] = map[string]any{"enabled": true, "bucket": "chem-alb-logs"}
	obj(resource(t, p, typeWebACL, "chemistry-gateway-waf").Inputs["visibilityConfig"])["sampledRequestsEnabled"] = true
	r, md := report(t, p)
	if len(r.FailedSettings()) != 2 || !strings.Contains(md, "**Prompts may be stored**: 2 of 11") {
		t.Errorf("failed settings %+v", r.FailedSettings())
	}
	if !strings.Contains(md, "access logs of load balancer chemistry-gateway-alb in S3 bucket chem-alb-logs") {
		t.Errorf("access logs not reported as a store of request metadata:\n%s", md)
	}
}

func TestPrivacyReportFollowsTheNodeConfig(t *testing.T) {
	p := chemistry(t)
	lt := resource(t, p, typeLaunchTmpl, "chemistry-gateway-lt")
	raw, _ := base64.StdEncoding.DecodeString(str(lt.Inputs["userData"]))
	// A gateway node config without models cannot be rendered: the report refuses rather than
	// reporting settings it did not read.
	broken := strings.Replace(string(raw), `"models": [`, `"modelz": [`, 1)
	lt.Inputs["userData"] = base64.StdEncoding.EncodeToString([]byte(broken))
	if _, err := New(p); err == nil || !strings.Contains(err.Error(), "launch template chemistry-gateway-lt") {
		t.Fatalf("err = %v", err)
	}
	lt.Inputs["userData"] = base64.StdEncoding.EncodeToString([]byte("#cloud-config\nruncmd: []\n"))
	if _, err := New(p); err == nil || !strings.Contains(err.Error(), "writes no /etc/llm-sandbox/node.json") {
		t.Fatalf("err = %v", err)
	}
}

func TestPrivacyJSON(t *testing.T) {
	r, _ := report(t, chemistry(t))
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Stack != "chemistry" || len(back.Data) != len(r.Data) || len(back.Hops) != len(r.Hops) || back.Findings == nil {
		t.Errorf("round trip %+v", back)
	}
}
