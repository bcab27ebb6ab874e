// Package privacy generates a stack's privacy-impact report from its offline plan and the node
// configs the plan's launch templates carry: which data passes where, where it is stored, for
// how long, encrypted with which key, who can read it, which network hops are plain HTTP, and
// which settings keep prompts out of every log and store. Every statement is derived from a
// planned resource or a rendered setting, and names the policy rules that back it.
package privacy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/policy"
	"github.com/llm-sandbox/llm-sandbox/program"
)

// Report is a stack's privacy-impact report.
type Report struct {
	Stack      string `json:"stack"`
	Department string `json:"department"`
	Region     string `json:"region"`
	// Data is one entry per kind of data: prompts and completions, API keys, request metadata,
	// models, node software, logs, usage records.
	Data []Data `json:"data"`
	// Hops are the network paths a request takes, each encrypted or named as plain HTTP.
	Hops []Hop `json:"hops"`
	// Settings are the settings that keep prompt text out of logs and stores, as rendered.
	Settings []Setting `json:"settings"`
	// Findings are the policy rules' findings over the same plan (none for a compliant stack).
	Findings []policy.Finding `json:"findings"`
}

// Data says where one kind of data goes.
type Data struct {
	Kind string `json:"kind"`
	// Passes lists where the data travels.
	Passes []string `json:"passes"`
	// Stores lists where it is kept; empty means nowhere.
	Stores []Store `json:"stores"`
	// NeverIn lists where it is kept out of, by which setting.
	NeverIn []string `json:"neverIn,omitempty"`
	// Rules are the policy rules that back the statements.
	Rules []string `json:"rules,omitempty"`
}

// Store is one place data is kept.
type Store struct {
	// Where names the store and its planned resource.
	Where string `json:"where"`
	// Retention says for how long.
	Retention string `json:"retention"`
	// Encryption says how, and with which key.
	Encryption string `json:"encryption"`
	// Readers are the principals that can read it, from the plan's policies.
	Readers []string `json:"readers"`
}

// Hop is one network path of a request.
type Hop struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Protocol  string `json:"protocol"`
	Port      int    `json:"port"`
	Encrypted bool   `json:"encrypted"`
	// Note says what else matters (a redirect, the TLS policy).
	Note     string `json:"note,omitempty"`
	Resource string `json:"resource"`
}

// Setting is one rendered setting that keeps prompts out of a log or store.
type Setting struct {
	// Component is where it applies: LiteLLM, Ollama, a load balancer, the WAF.
	Component string `json:"component"`
	// Name and Value are as rendered; Want is the value that keeps prompts out.
	Name  string `json:"name"`
	Value string `json:"value"`
	Want  string `json:"want"`
	// Source is the file or resource it was read from.
	Source string `json:"source"`
	// OK is Value == Want.
	OK bool `json:"ok"`
}

const (
	typeLaunchTmpl   = "aws:ec2/launchTemplate:LaunchTemplate"
	typeLB           = "aws:lb/loadBalancer:LoadBalancer"
	typeListener     = "aws:lb/listener:Listener"
	typeListenerRule = "aws:lb/listenerRule:ListenerRule"
	typeTG           = "aws:lb/targetGroup:TargetGroup"
	typeSecret       = "aws:secretsmanager/secret:Secret"
	typeKMSKey       = "aws:kms/key:Key"
	typeLogGroup     = "aws:cloudwatch/logGroup:LogGroup"
	typeFlowLog      = "aws:ec2/flowLog:FlowLog"
	typeRolePolicy   = "aws:iam/rolePolicy:RolePolicy"
	typeRole         = "aws:iam/role:Role"
	typeBucket       = "aws:s3/bucketV2:BucketV2"
	typeBucketSSE    = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
	typeBucketVer    = "aws:s3/bucketVersioningV2:BucketVersioningV2"
	typeWebACL       = "aws:wafv2/webAcl:WebAcl"
	typeWAFLogging   = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
	typeTable        = "aws:dynamodb/table:Table"
)

// generator holds the plan and what has been derived from it.
type generator struct {
	plan     *program.Plan
	byName   map[string]program.PlannedResource
	keyNames map[string]string // KMS key ARN or id → logical name
	nodes    map[string]*node.Config
	errs     []string
}

// New builds the report of plan. It fails if a launch template's node config cannot be read or
// rendered: a report that skipped a node would claim too little.
func New(plan *program.Plan) (*Report, error) {
	g := &generator{plan: plan, byName: map[string]program.PlannedResource{}, keyNames: map[string]string{}, nodes: map[string]*node.Config{}}
	for _, r := range plan.Resources {
		g.byName[r.Type+" "+r.Name] = r
		if r.Type == typeKMSKey {
			g.keyNames[r.ARN] = r.Name
			g.keyNames[r.ID] = r.Name
		}
	}
	for _, lt := range g.byType(typeLaunchTmpl) {
		cfg, err := NodeConfig(str(lt.Inputs["userData"]))
		if err != nil {
			g.errs = append(g.errs, fmt.Sprintf("launch template %s: %v", lt.Name, err))
			continue
		}
		g.nodes[lt.Name] = cfg
	}
	r := &Report{Stack: plan.Stack, Department: plan.Department, Region: plan.Region}
	r.Hops = g.hops()
	r.Settings = g.settings()
	r.Data = []Data{g.prompts(r.Hops, r.Settings), g.apiKeys(), g.metadata(), g.models(), g.software(), g.logs(), g.usage(r.Settings)}
	if len(g.errs) > 0 {
		return nil, fmt.Errorf("privacy report of %s: %s", plan.Stack, strings.Join(g.errs, "; "))
	}
	r.Findings = plan.Check()
	if r.Findings == nil {
		r.Findings = []policy.Finding{}
	}
	return r, nil
}

// NodeConfig reads the node config out of a launch template's user data (base64 cloud-config
// whose write_files holds node.ConfigPath).
func NodeConfig(userData string) (*node.Config, error) {
	raw, err := base64.StdEncoding.DecodeString(userData)
	if err != nil {
		return nil, fmt.Errorf("user data is not base64: %w", err)
	}
	var doc struct {
		WriteFiles []struct {
			Path    string `yaml:"path"`
			Content string `yaml:"content"`
		} `yaml:"write_files"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("user data is not a cloud-config document: %w", err)
	}
	for _, f := range doc.WriteFiles {
		if f.Path != node.ConfigPath {
			continue
		}
		var cfg node.Config
		if err := json.Unmarshal([]byte(f.Content), &cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", node.ConfigPath, err)
		}
		return &cfg, nil
	}
	return nil, fmt.Errorf("user data writes no %s", node.ConfigPath)
}

func (g *generator) byType(typ string) []program.PlannedResource { return g.plan.ByType(typ) }

// find returns the resource of typ whose ARN or ID is ref.
func (g *generator) find(typ, ref string) (program.PlannedResource, bool) {
	for _, r := range g.byType(typ) {
		if ref != "" && (r.ARN == ref || r.ID == ref) {
			return r, true
		}
	}
	return program.PlannedResource{}, false
}

// keyName names a KMS key reference by its logical name, or says it is not a key of the plan.
func (g *generator) keyName(ref string) string {
	if n, ok := g.keyNames[ref]; ok {
		return "customer-managed KMS key " + n
	}
	if ref == "" {
		return "an AWS-owned key (no customer-managed key set)"
	}
	return "KMS key " + ref + " (not in this stack)"
}

// hops follows each listener to its target groups.
func (g *generator) hops() []Hop {
	var out []Hop
	for _, l := range g.byType(typeListener) {
		lb, _ := g.find(typeLB, str(l.Inputs["loadBalancerArn"]))
		facing := "internal"
		if internal, _ := lb.Inputs["internal"].(bool); !internal {
			facing = "internet-facing"
		}
		port, _ := num(l.Inputs["port"])
		proto := str(l.Inputs["protocol"])
		from := "clients"
		if facing == "internal" && g.forwardsTo(l, 11434) {
			from = "gateway nodes (LiteLLM)"
		}
		h := Hop{From: from, To: fmt.Sprintf("%s load balancer %s", facing, lb.Name), Protocol: proto, Port: int(port),
			Encrypted: proto == "HTTPS", Resource: l.Name}
		if facing == "internal" {
			h.Note = "inside the VPC"
		}
		for _, a := range list(l.Inputs["defaultActions"]) {
			if rd := obj(obj(a)["redirect"]); rd != nil {
				h.Note = fmt.Sprintf("redirects to %s:%s; a request sent here travels in plain text before the redirect", str(rd["protocol"]), str(rd["port"]))
			}
		}
		if h.Encrypted {
			h.Note = "TLS policy " + str(l.Inputs["sslPolicy"])
		}
		rules := g.rulesOf(l)
		if len(rules) > 0 {
			h.Note += "; forwards only the paths its rules name, the load balancer answers every other request itself"
		}
		out = append(out, h)
		seen := map[string]bool{}
		for _, a := range append(list(l.Inputs["defaultActions"]), rules...) {
			tg, ok := g.find(typeTG, str(obj(a)["targetGroupArn"]))
			if !ok || seen[tg.Name] {
				continue
			}
			seen[tg.Name] = true
			tport, _ := num(tg.Inputs["port"])
			tproto := str(tg.Inputs["protocol"])
			out = append(out, Hop{From: "load balancer " + lb.Name, To: targetName(tg), Protocol: tproto, Port: int(tport),
				Encrypted: tproto == "HTTPS", Resource: tg.Name, Note: "inside the VPC, between security groups that admit only this path"})
		}
	}
	return out
}

// rulesOf returns the actions of the listener rules attached to a listener: where its rules
// forward, beside its default action.
func (g *generator) rulesOf(l program.PlannedResource) []any {
	var out []any
	for _, r := range g.byType(typeListenerRule) {
		if l.ARN != "" && str(r.Inputs["listenerArn"]) == l.ARN {
			out = append(out, list(r.Inputs["actions"])...)
		}
	}
	return out
}

func (g *generator) forwardsTo(l program.PlannedResource, port float64) bool {
	for _, a := range list(l.Inputs["defaultActions"]) {
		if tg, ok := g.find(typeTG, str(obj(a)["targetGroupArn"])); ok {
			if p, _ := num(tg.Inputs["port"]); p == port {
				return true
			}
		}
	}
	return false
}

func targetName(tg program.PlannedResource) string {
	port, _ := num(tg.Inputs["port"])
	switch port {
	case 11434:
		return "pool nodes (Ollama) of target group " + tg.Name
	case 4000:
		return "gateway nodes (LiteLLM) of target group " + tg.Name
	}
	return "targets of " + tg.Name
}

// settings reads the rendered settings that keep prompts out of logs and stores.
func (g *generator) settings() []Setting {
	var out []Setting
	add := func(component, name, value, want, source string) {
		out = append(out, Setting{Component: component, Name: name, Value: value, Want: want, Source: source, OK: value == want})
	}
	for _, lt := range slices.Sorted(maps.Keys(g.nodes)) {
		cfg := g.nodes[lt]
		switch {
		case cfg.LiteLLM != nil:
			rendered, err := node.RenderLiteLLMConfig(cfg.LiteLLM)
			if err != nil {
				g.errs = append(g.errs, fmt.Sprintf("launch template %s: %v", lt, err))
				continue
			}
			var doc map[string]any
			if err := yaml.Unmarshal(rendered, &doc); err != nil {
				g.errs = append(g.errs, fmt.Sprintf("launch template %s: rendered config.yaml: %v", lt, err))
				continue
			}
			src := "LiteLLM config.yaml rendered from the node config of " + lt
			for _, s := range []struct{ section, name, want string }{
				{"litellm_settings", "turn_off_message_logging", "true"},
				{"general_settings", "disable_spend_logs", "true"},
				{"general_settings", "store_prompts_in_spend_logs", "false"},
				{"general_settings", "disable_error_logs", "true"},
			} {
				add("LiteLLM ("+cfg.Pool+")", s.section+"."+s.name, valueOr(obj(doc[s.section])[s.name], "unset"), s.want, src)
			}
		case cfg.Ollama != nil:
			env := map[string]string{}
			for _, v := range node.OllamaEnv(cfg.Ollama) {
				env[v.Name] = v.Value
			}
			src := "Ollama environment rendered from the node config of " + lt
			add("Ollama ("+cfg.Pool+")", "OLLAMA_DEBUG", valueOr(env["OLLAMA_DEBUG"], "unset"), "0", src)
			add("Ollama ("+cfg.Pool+")", "OLLAMA_DEBUG_LOG_REQUESTS", valueOr(env["OLLAMA_DEBUG_LOG_REQUESTS"], "unset"), "unset", src)
			add("Ollama ("+cfg.Pool+")", "OLLAMA_NO_CLOUD", valueOr(env["OLLAMA_NO_CLOUD"], "unset"), "1", src)
		}
	}
	for _, lb := range g.byType(typeLB) {
		enabled, _ := obj(lb.Inputs["accessLogs"])["enabled"].(bool)
		add("load balancer "+lb.Name, "accessLogs.enabled", fmt.Sprint(enabled), "false", "plan: "+lb.Name)
	}
	for _, acl := range g.byType(typeWebACL) {
		sampled, _ := obj(acl.Inputs["visibilityConfig"])["sampledRequestsEnabled"].(bool)
		for _, rule := range list(acl.Inputs["rules"]) {
			if s, _ := obj(obj(rule)["visibilityConfig"])["sampledRequestsEnabled"].(bool); s {
				sampled = true
			}
		}
		add("WAF "+acl.Name, "sampledRequestsEnabled", fmt.Sprint(sampled), "false", "plan: "+acl.Name)
		logged := false
		for _, lc := range g.byType(typeWAFLogging) {
			if str(lc.Inputs["resourceArn"]) == acl.ARN {
				logged = true
			}
		}
		add("WAF "+acl.Name, "logging configuration", fmt.Sprint(logged), "false", "plan: "+acl.Name)
	}
	return out
}

func (g *generator) prompts(hops []Hop, settings []Setting) Data {
	d := Data{Kind: "Prompts and completions", Rules: []string{"tls13-listeners", "https-only", "ollama-only-from-internal-alb", "no-public-ip", "no-prompt-logging"}}
	for _, h := range hops {
		enc := "encrypted (TLS)"
		if !h.Encrypted {
			enc = "PLAIN HTTP"
		}
		d.Passes = append(d.Passes, fmt.Sprintf("%s → %s: %s port %d, %s", h.From, h.To, h.Protocol, h.Port, enc))
	}
	for _, s := range settings {
		if s.OK {
			d.NeverIn = append(d.NeverIn, fmt.Sprintf("%s: %s = %s (%s)", s.Component, s.Name, s.Value, s.Source))
		} else {
			d.Stores = append(d.Stores, Store{Where: fmt.Sprintf("%s: %s = %s (want %s)", s.Component, s.Name, s.Value, s.Want),
				Retention: "as that log or store keeps it", Encryption: "as that store is encrypted", Readers: []string{"whoever can read that log or store"}})
		}
	}
	for _, t := range g.byType(typeTable) {
		if isKeyRegistry(t) {
			continue // API keys, below
		}
		d.Stores = append(d.Stores, Store{Where: "DynamoDB table " + t.Name + " (check what it holds)", Retention: "until deleted",
			Encryption: g.keyName(str(obj(t.Inputs["serverSideEncryption"])["kmsKeyArn"])), Readers: g.readers("dynamodb:", t.ARN)})
	}
	return d
}

// isKeyRegistry reports whether a DynamoDB table is a department's key registry: its name and
// its partition key are the registry's.
func isKeyRegistry(t program.PlannedResource) bool {
	name := str(t.Inputs["name"])
	return strings.HasPrefix(name, "llm-sandbox-") && strings.HasSuffix(name, "-keys") &&
		str(t.Inputs["hashKey"]) == keyregistry.AttrKeyID
}

func (g *generator) apiKeys() Data {
	d := Data{Kind: "API keys", Passes: []string{"Authorization header of each request, on the hops above"},
		NeverIn: []string{"user data and node configs (they carry only the secret's ARN)", "Pulumi outputs and state in plain text (the value is a Pulumi secret)"},
		Rules:   []string{"no-secret-in-plain", "tls13-listeners"}}
	for _, s := range g.byType(typeSecret) {
		window, _ := num(s.Inputs["recoveryWindowInDays"])
		d.Stores = append(d.Stores, Store{
			Where:      fmt.Sprintf("Secrets Manager secret %s (%s)", str(s.Inputs["name"]), s.Name),
			Retention:  fmt.Sprintf("until the stack is destroyed, then %g days' recovery window", window),
			Encryption: g.keyName(str(s.Inputs["kmsKeyId"])),
			Readers:    append(g.readers("secretsmanager:GetSecretValue", s.ARN), g.keyReaders(str(s.Inputs["kmsKeyId"]))...),
		})
	}
	for _, t := range g.byType(typeTable) {
		if !isKeyRegistry(t) {
			continue
		}
		retention := "until the stack is destroyed"
		if ttl := obj(t.Inputs["ttl"]); ttl["enabled"] == true && str(ttl["attributeName"]) == keyregistry.AttrPurge {
			retention = fmt.Sprintf("each record until %g days past its key's expiry (DynamoDB time to live)", keyregistry.PurgeAfter.Hours()/24)
		}
		key := str(obj(t.Inputs["serverSideEncryption"])["kmsKeyArn"])
		d.Stores = append(d.Stores, Store{
			Where:      "DynamoDB table " + str(t.Inputs["name"]) + " (the key registry: the SHA-256 of each personal key, never the key; key id, team, the owner label the department chose, which is personal data when it names a person; issue, expiry and revocation times)",
			Retention:  retention,
			Encryption: g.keyName(key),
			Readers:    append(append(g.readers("dynamodb:", t.ARN), "IAM principals the department allows to issue and list keys (docs/keys.md)"), g.keyReaders(key)...),
		})
	}
	for _, lt := range slices.Sorted(maps.Keys(g.nodes)) {
		if g.nodes[lt].LiteLLM != nil {
			d.Stores = append(d.Stores, Store{Where: "gateway nodes of " + lt + ": " + node.LiteLLMEnvFile + " (root-only)", Retention: "while the node runs",
				Encryption: g.volumeEncryption(lt), Readers: []string{"root on the node; operators through SSM sessions"}})
		}
	}
	return d
}

func (g *generator) metadata() Data {
	d := Data{Kind: "Request metadata (addresses, ports, byte counts, times)", Passes: []string{"every hop above"},
		NeverIn: []string{"request bodies: flow logs record connections, not content"}, Rules: []string{"vpc-flow-logs", "log-retention", "log-groups-encrypted"}}
	for _, fl := range g.byType(typeFlowLog) {
		lg, _ := g.find(typeLogGroup, str(fl.Inputs["logDestination"]))
		days, _ := num(lg.Inputs["retentionInDays"])
		retention := fmt.Sprintf("%g days", days)
		if days == 0 {
			retention = "never expires"
		}
		d.Stores = append(d.Stores, Store{Where: fmt.Sprintf("VPC flow logs (%s traffic) in CloudWatch log group %s", str(fl.Inputs["trafficType"]), lg.Name),
			Retention: retention, Encryption: g.keyName(str(lg.Inputs["kmsKeyId"])),
			Readers: append([]string{"IAM principals of the account allowed logs:GetLogEvents (no role in the plan is granted it)"}, g.keyReaders(str(lg.Inputs["kmsKeyId"]))...)})
	}
	for _, lb := range g.byType(typeLB) {
		al := obj(lb.Inputs["accessLogs"])
		if on, _ := al["enabled"].(bool); on {
			d.Stores = append(d.Stores, Store{Where: "access logs of load balancer " + lb.Name + " in S3 bucket " + str(al["bucket"]) + " (client addresses, request lines and paths, user agents)",
				Retention: "as that bucket's lifecycle keeps them", Encryption: "as that bucket is encrypted", Readers: []string{"whoever can read that bucket"}})
		}
	}
	for _, c := range g.byType("aws:elasticache/replicationGroup:ReplicationGroup") {
		d.Stores = append(d.Stores, Store{Where: "ElastiCache group " + str(c.Inputs["replicationGroupId"]) + " (the gateway's rate-limit counters: requests, tokens and requests in flight of each key id and team in the current minute; never a prompt, a completion or a key)",
			Retention: "each counter for its 60 s window; no snapshots", Encryption: g.keyName(str(c.Inputs["kmsKeyId"])) + " at rest, TLS in transit",
			Readers: []string{"the gateway nodes (the only group its security group admits, with the AUTH token from Secrets Manager)"}})
	}
	for _, acl := range g.byType(typeWebACL) {
		d.Stores = append(d.Stores, Store{Where: "CloudWatch metrics of WAF " + acl.Name + " (counts only)", Retention: "15 months (CloudWatch metric retention)",
			Encryption: "AWS-managed", Readers: []string{"IAM principals of the account allowed cloudwatch:GetMetricData"}})
	}
	return d
}

func (g *generator) models() Data {
	d := Data{Kind: "Models (weights)", Rules: []string{"ebs-encrypted", "imdsv2-only"}}
	for _, lt := range slices.Sorted(maps.Keys(g.nodes)) {
		cfg := g.nodes[lt]
		if cfg.Ollama == nil {
			continue
		}
		var tags []string
		for _, m := range cfg.Ollama.Models {
			tags = append(tags, m.Name)
			if m.Source != nil {
				d.Passes = append(d.Passes, m.Name+": "+m.Source.URL+" → pool nodes")
			}
		}
		if len(d.Passes) == 0 || len(tags) > 0 {
			d.Passes = append(d.Passes, "Ollama registry (or the department's bucket) → pool nodes of "+lt+": "+strings.Join(tags, ", "))
		}
		d.Stores = append(d.Stores, Store{Where: "root volumes of the pool nodes of " + lt, Retention: "while the node runs (deleted on termination)",
			Encryption: g.volumeEncryption(lt), Readers: []string{"processes on the node; operators through SSM sessions"}})
	}
	return d
}

func (g *generator) software() Data {
	d := Data{Kind: "Node software (agent, Ollama, LiteLLM)", Passes: []string{"artifacts bucket → nodes through the VPC's S3 gateway endpoint", "pinned upstream releases → nodes (checked by SHA-256)"},
		Rules: []string{"no-public-ip"}}
	for _, b := range g.byType(typeBucket) {
		key, versioned := "", "unversioned"
		for _, sse := range g.byType(typeBucketSSE) {
			if str(sse.Inputs["bucket"]) == strings.TrimPrefix(b.ARN, "arn:aws:s3:::") {
				for _, rule := range list(sse.Inputs["rules"]) {
					key = str(obj(obj(rule)["applyServerSideEncryptionByDefault"])["kmsMasterKeyId"])
				}
			}
		}
		for _, v := range g.byType(typeBucketVer) {
			if str(v.Inputs["bucket"]) == strings.TrimPrefix(b.ARN, "arn:aws:s3:::") {
				versioned = "versioning " + str(obj(v.Inputs["versioningConfiguration"])["status"])
			}
		}
		d.Stores = append(d.Stores, Store{Where: "S3 bucket " + b.Name + " (" + versioned + ")", Retention: "until the stack is destroyed",
			Encryption: g.keyName(key), Readers: g.readers("s3:GetObject", b.ARN+"/*")})
	}
	return d
}

func (g *generator) logs() Data {
	d := Data{Kind: "Logs of the nodes (start-up, errors)", Passes: []string{"nowhere: they stay on the node"},
		NeverIn: []string{"prompt text (see the settings)"}}
	groups := g.byType(typeLogGroup)
	var names []string
	for _, lg := range groups {
		names = append(names, lg.Name)
	}
	for _, lt := range slices.Sorted(maps.Keys(g.nodes)) {
		d.Stores = append(d.Stores, Store{Where: "systemd journal on the nodes of " + lt, Retention: "while the node runs (its root volume is deleted on termination)",
			Encryption: g.volumeEncryption(lt), Readers: []string{"root on the node; operators through SSM sessions"}})
	}
	d.NeverIn = append(d.NeverIn, fmt.Sprintf("CloudWatch Logs: the plan's only log groups are %s", strings.Join(names, ", ")))
	return d
}

func (g *generator) usage(settings []Setting) Data {
	d := Data{Kind: "Usage records", Rules: []string{}}
	for _, s := range settings {
		if strings.HasSuffix(s.Name, "disable_spend_logs") {
			if s.OK {
				d.NeverIn = append(d.NeverIn, fmt.Sprintf("LiteLLM spend logs: %s = %s, and the gateway has no database", s.Name, s.Value))
			} else {
				d.Stores = append(d.Stores, Store{Where: "LiteLLM spend logs (" + s.Name + " = " + s.Value + ")", Retention: "as the database keeps them",
					Encryption: "as the database is encrypted", Readers: []string{"whoever can read the database"}})
			}
		}
	}
	d.Passes = []string{"none: no per-request record leaves the gateway"}
	for _, lt := range slices.Sorted(maps.Keys(g.nodes)) {
		c := g.nodes[lt]
		if c.LiteLLM == nil || c.LiteLLM.Usage == nil {
			continue
		}
		d.Passes = []string{fmt.Sprintf("counts per team and key id, summed by each gateway worker over %d s, from the gateway nodes to CloudWatch (PutMetricData over TLS)", c.LiteLLM.Usage.FlushSeconds)}
		d.Stores = append(d.Stores, Store{
			Where: fmt.Sprintf("CloudWatch metrics in namespace %s, published by the gateway nodes of %s: requests, prompt and completion tokens, errors and 429s per department, team and key id (counts only: no text, no address, no owner label)", usage.Namespace, lt),
			// CloudWatch's retention schedule (CloudWatch User Guide, "Metrics retention").
			Retention:  "15 months, coarsening with age (1-minute data for 15 days, 5-minute for 63 days, hourly for 455 days); cannot be deleted earlier",
			Encryption: "CloudWatch's own encryption at rest (AWS-managed)",
			Readers:    []string{"IAM principals of the account allowed cloudwatch:GetMetricData or ListMetrics (docs/keys.md gives a reader's policy)"},
		})
	}
	return d
}

// volumeEncryption describes a launch template's volumes' encryption.
func (g *generator) volumeEncryption(lt string) string {
	r := g.byName[typeLaunchTmpl+" "+lt]
	var parts []string
	for _, b := range list(r.Inputs["blockDeviceMappings"]) {
		ebs := obj(obj(b)["ebs"])
		if str(ebs["encrypted"]) != "true" {
			parts = append(parts, str(obj(b)["deviceName"])+" UNENCRYPTED")
			continue
		}
		parts = append(parts, str(obj(b)["deviceName"])+" encrypted with "+g.keyName(str(ebs["kmsKeyId"])))
	}
	if len(parts) == 0 {
		return "the AMI's defaults (no block device mapping)"
	}
	return strings.Join(parts, "; ")
}

// readers lists the roles whose inline policies allow an action (by prefix) on resource.
func (g *generator) readers(action, resource string) []string {
	var out []string
	for _, rp := range g.byType(typeRolePolicy) {
		var doc struct {
			Statement []struct {
				Effect   string
				Action   any
				Resource any
			}
		}
		if err := json.Unmarshal([]byte(str(rp.Inputs["policy"])), &doc); err != nil {
			continue
		}
		for _, s := range doc.Statement {
			if s.Effect != "Allow" {
				continue
			}
			if matchAny(s.Action, func(a string) bool { return strings.HasPrefix(a, action) || a == "*" }) &&
				matchAny(s.Resource, func(r string) bool { return r == resource || r == "*" }) {
				out = append(out, fmt.Sprintf("IAM role %s (inline policy %s)", g.roleName(str(rp.Inputs["role"])), rp.Name))
			}
		}
	}
	if len(out) == 0 {
		out = []string{"no role in the plan"}
	}
	return out
}

// keyReaders lists who the key policy lets decrypt with the key.
func (g *generator) keyReaders(ref string) []string {
	k, ok := g.find(typeKMSKey, ref)
	if !ok {
		return nil
	}
	var doc struct {
		Statement []struct {
			Sid       string
			Effect    string
			Principal map[string]any
			Action    any
		}
	}
	if err := json.Unmarshal([]byte(str(k.Inputs["policy"])), &doc); err != nil {
		return nil
	}
	var out []string
	for _, s := range doc.Statement {
		if s.Effect != "Allow" || !matchAny(s.Action, func(a string) bool { return a == "kms:*" || strings.HasPrefix(a, "kms:Decrypt") }) {
			continue
		}
		for kind, p := range s.Principal {
			var ps []string
			switch v := p.(type) {
			case string:
				ps = []string{v}
			case []any:
				for _, e := range v {
					ps = append(ps, fmt.Sprint(e))
				}
			}
			for _, pr := range ps {
				if strings.HasSuffix(pr, ":root") {
					pr = "any IAM principal of account " + strings.Split(pr, ":")[4] + " that IAM allows"
				}
				if kind == "Service" {
					pr = "the service " + pr
				}
				out = append(out, fmt.Sprintf("decrypt through key %s: %s (statement %s)", k.Name, pr, s.Sid))
			}
		}
	}
	return out
}

func (g *generator) roleName(physical string) string {
	for _, r := range g.byType(typeRole) {
		if strings.HasPrefix(physical, r.Name+"-") || physical == r.ID {
			return r.Name
		}
	}
	return physical
}

func matchAny(v any, f func(string) bool) bool {
	switch t := v.(type) {
	case string:
		return f(t)
	case []any:
		for _, e := range t {
			if s, ok := e.(string); ok && f(s) {
				return true
			}
		}
	}
	return false
}

func valueOr(v any, def string) string {
	if v == nil {
		return def
	}
	if s, ok := v.(string); ok && s == "" {
		return def
	}
	return fmt.Sprint(v)
}

func str(v any) string { s, _ := v.(string); return s }

func num(v any) (float64, bool) { f, ok := v.(float64); return f, ok }

func list(v any) []any { l, _ := v.([]any); return l }

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
