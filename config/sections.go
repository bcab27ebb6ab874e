package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// The keys of each section, in the order the docs list them.
var (
	networkKeys  = []string{"cidr", "azCount", "nat"}
	accessKeys   = []string{"mode", "certificateArn", "allowedCidrs", "allowAnywhere", "hostname", "hostedZoneId", "plainHttp"}
	poolKeys     = []string{"instanceType", "minSize", "maxSize", "models", "parallel", "contextLength", "spot", "warmPool", "schedule"}
	scheduleKeys = []string{"timezone", "days", "start", "stop"}
	gatewayKeys  = []string{"instanceType", "minSize", "maxSize", "deletionProtection"}
	alertsKeys   = []string{"emails"}
	artifactKeys = []string{"mirror"}
)

// Limits on sizes, chosen so that a typo (maxSize: 200) is caught rather than deployed.
const (
	maxPoolSize    = 20
	maxParallel    = 64
	minContext     = 512
	maxGatewaySize = 10
)

func (p *parser) region(region string) {
	switch {
	case region == "":
		p.add("aws:region", "required key is missing (the AWS region, e.g. ca-central-1)")
	default:
		if msg := rules.Region(region); msg != "" {
			p.add("aws:region", "%s", msg)
		}
	}
}

func (p *parser) department(n *yaml.Node) string {
	const path = "department"
	if n == nil {
		p.add(path, "required key is missing (a lowercase DNS label, e.g. chemistry)")
		return ""
	}
	d := n.Value
	if msg := DepartmentProblem(d); msg != "" {
		p.add(path, "%s", msg)
	}
	return d
}

// DepartmentProblem says what is wrong with d as a department name (rules.Department), or
// returns "" when d is one. A name that passes is also a safe stack and file name.
func DepartmentProblem(d string) string { return rules.Department(d) }

func (p *parser) network(n *yaml.Node) Network {
	const path = "network"
	net := Network{AZCount: DefaultAZCount, NAT: DefaultNAT}
	if n == nil {
		p.add(path, "required key is missing (needs at least cidr, e.g. cidr: 10.20.0.0/16)")
		return net
	}
	f := p.fields(n, path, networkKeys)
	if c, ok := f["cidr"]; !ok {
		if n.Kind == yaml.MappingNode {
			p.add(joinPath(path, "cidr"), "required key is missing (an IPv4 range /16 to /22, e.g. 10.20.0.0/16)")
		}
	} else if pfx, ok := p.prefix(c, joinPath(path, "cidr")); ok {
		net.CIDR = pfx
		for _, msg := range []string{rules.VPCSize(pfx), rules.PrivateRange(pfx)} {
			if msg != "" {
				p.add(joinPath(path, "cidr"), "%s", msg)
			}
		}
	}
	if v, ok := p.integer(f["azCount"], joinPath(path, "azCount"), DefaultAZCount); ok {
		net.AZCount = v
		if v != 2 && v != 3 {
			p.add(joinPath(path, "azCount"), "must be 2 or 3 (got %d)", v)
		}
	}
	if v, ok := f["nat"]; ok {
		if s, ok := p.str(v, joinPath(path, "nat")); ok {
			switch NATStrategy(s) {
			case NATSingle, NATPerAZ, NATNone:
				net.NAT = NATStrategy(s)
			default:
				p.add(joinPath(path, "nat"), "must be single, perAz or none (got %q)", s)
			}
		}
	}
	return net
}

func (p *parser) access(n *yaml.Node, region string) Access {
	const path = "access"
	acc := Access{Mode: DefaultAccessMode}
	f := p.fields(n, path, accessKeys)
	if v, ok := f["mode"]; ok {
		if s, ok := p.str(v, joinPath(path, "mode")); ok {
			switch AccessMode(s) {
			case AccessInternal, AccessPublic:
				acc.Mode = AccessMode(s)
			default:
				p.add(joinPath(path, "mode"), "must be internal or public (got %q)", s)
			}
		}
	}
	acc.AllowAnywhere = p.boolean(f["allowAnywhere"], joinPath(path, "allowAnywhere"))
	if v, ok := f["hostname"]; ok {
		if h, ok := p.str(v, joinPath(path, "hostname")); ok {
			acc.Hostname = h
			if msg := rules.Hostname(h); msg != "" {
				p.add(joinPath(path, "hostname"), "%s", msg)
			}
		}
	}

	zonePath := joinPath(path, "hostedZoneId")
	if v, ok := f["hostedZoneId"]; ok {
		if z, ok := p.str(v, zonePath); ok {
			acc.HostedZoneID = z
			switch msg := rules.HostedZoneID(z); {
			case msg != "":
				p.add(zonePath, "%s", msg)
			case acc.Hostname == "" && !hasProblemUnder(p.problems, joinPath(path, "hostname")):
				p.add(zonePath, "needs access.hostname, the name to create in the zone (got no hostname)")
			}
		}
	}

	certPath := joinPath(path, "certificateArn")
	if v, ok := f["certificateArn"]; ok {
		if s, ok := p.str(v, certPath); ok {
			acc.CertificateARN = s
			if msg := rules.ACMCertificateARN(s, region); msg != "" {
				p.add(certPath, "%s", msg)
			}
		}
	} else if acc.Mode == AccessPublic && acc.HostedZoneID == "" {
		p.add(certPath, "required when access.mode is public (the ACM certificate of the HTTPS listener), unless access.hostedZoneId is set for a certificate the program requests")
	}

	p.plainHTTP(&acc, f["plainHttp"], joinPath(path, "plainHttp"))

	cidrPath := joinPath(path, "allowedCidrs")
	var entryPaths []string // of each AllowedCIDRs entry
	if v, ok := f["allowedCidrs"]; ok && !isNull(v) {
		if v.Kind != yaml.SequenceNode {
			p.add(cidrPath, "must be a list of IPv4 CIDRs (got %s)", describe(v))
		} else {
			seen := map[netip.Prefix]string{}
			for i, e := range v.Content {
				ep := fmt.Sprintf("%s[%d]", cidrPath, i)
				pfx, ok := p.prefix(e, ep)
				if !ok {
					continue
				}
				if other, dup := seen[pfx]; dup {
					p.add(ep, "lists %s twice (also %s)", pfx, other)
					continue
				}
				seen[pfx] = ep
				acc.AllowedCIDRs = append(acc.AllowedCIDRs, pfx)
				entryPaths = append(entryPaths, ep)
			}
		}
	}
	if acc.Mode == AccessPublic && len(acc.AllowedCIDRs) == 0 && !hasProblemUnder(p.problems, cidrPath) {
		p.add(cidrPath, "required and non-empty when access.mode is public (the client ranges, e.g. [142.103.0.0/16])")
	}
	p.clientRanges(acc, cidrPath, entryPaths)
	return acc
}

// plainHTTP reads access.plainHttp and checks that the front listener's protocol is a choice:
// HTTPS with a certificate (given or requested), or plain HTTP said in so many words, only
// inside the VPC and never beside a certificate, which would leave one of the two unused.
func (p *parser) plainHTTP(acc *Access, n *yaml.Node, path string) {
	acc.PlainHTTP = p.boolean(n, path)
	https := acc.HTTPS()
	switch {
	case acc.PlainHTTP && acc.Mode == AccessPublic:
		p.add(path, "must not be true when access.mode is public: an internet-facing endpoint is HTTPS only (got true)")
	case acc.PlainHTTP && https:
		p.add(path, "must not be true together with access.certificateArn or access.hostedZoneId: the endpoint is HTTPS with a certificate (got true)")
	case !acc.PlainHTTP && !https && acc.Mode == AccessInternal:
		p.add(path, "an internal endpoint without a certificate would send API keys and prompts in clear: set access.certificateArn (or access.hostname with access.hostedZoneId) for HTTPS, or set access.plainHttp: true to choose plain HTTP inside the VPC (got no certificate and no plainHttp)")
	}
}

// clientRanges checks access.allowedCidrs as the gateway and the policy rule judge them.
// Unless access.allowAnywhere says so, the list must be an allow-list no wider than
// rules.WideAllowList accepts, judged by the address space its ranges cover together, not by
// their spelling. And the front security group must hold its rules: the list, plus the VPC's
// own range when access is internal (counted as one more range even if the list holds it too,
// since the VPC range is parsed apart).
func (p *parser) clientRanges(acc Access, cidrPath string, entryPaths []string) {
	if !acc.AllowAnywhere {
		if i, msg := rules.WideAllowList(acc.AllowedCIDRs); msg != "" {
			at := cidrPath
			if i >= 0 {
				at = entryPaths[i]
			}
			p.add(at, "%s; set access.allowAnywhere: true if that is really meant", msg)
		}
	}
	ranges := len(acc.AllowedCIDRs)
	if acc.Mode == AccessInternal {
		ranges++
	}
	if msg := rules.ClientRanges(ranges, acc.HTTPS()); msg != "" {
		p.add(cidrPath, "%s", msg)
	}
}

// notInCatalog says that name is no catalog entry of its kind: with the entry it most likely
// means when one is close enough to be a typo, and with every entry otherwise.
func notInCatalog(what, name string, known []string) string {
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("unknown %s %q (did you mean %q?)", what, name, s)
	}
	return fmt.Sprintf("unknown %s %q (known: %s)", what, name, strings.Join(known, ", "))
}

func hasProblemUnder(ps Problems, path string) bool {
	for _, pr := range ps {
		if pr.Path == path || strings.HasPrefix(pr.Path, path+"[") || strings.HasPrefix(pr.Path, path+".") {
			return true
		}
	}
	return false
}

func (p *parser) pools(n *yaml.Node) map[string]Pool {
	const path = "pools"
	if n == nil {
		p.add(path, "required key is missing (at least one pool, e.g. gpu: {models: [llama3.1:8b]})")
		return nil
	}
	entries := p.entries(n, path)
	if len(entries) == 0 && !hasProblemUnder(p.problems, path) {
		p.add(path, "must name at least one pool (got none)")
	}
	pools := map[string]Pool{}
	for _, e := range entries {
		name := e[0].Value
		pp := joinPath(path, name)
		if msg := rules.ModelPoolName(name); msg != "" {
			p.add(pp, "%s", msg)
		}
		pools[name] = p.pool(e[1], pp, name)
	}
	// The gateway routes each model name to one pool: a model served by two pools would need a
	// choice between them, which it does not make.
	servedBy := map[string]string{}
	for _, e := range entries {
		name := e[0].Value
		for i, m := range pools[name].Models {
			if other, dup := servedBy[m]; dup && other != name {
				p.add(fmt.Sprintf("%s.models[%d]", joinPath(path, name), i), "%q is also served by pool %q; serve each model from one pool", m, other)
			} else if !dup {
				servedBy[m] = name
			}
		}
	}
	byPort := map[int]string{}
	for _, e := range entries {
		name := e[0].Value
		port := pools[name].ListenerPort()
		if other, ok := byPort[port]; ok {
			p.add(joinPath(path, name), "gets the same internal listener port %d as pool %q; rename one of them", port, other)
		}
		byPort[port] = name
	}
	return pools
}

func (p *parser) pool(n *yaml.Node, path, name string) Pool {
	pool := Pool{
		Name: name, InstanceType: DefaultPoolInstanceType, MinSize: DefaultPoolMinSize,
		MaxSize: DefaultPoolMaxSize, Parallel: DefaultParallel, ContextLength: DefaultContextLength,
	}
	if n.Kind != yaml.MappingNode {
		p.add(path, "must be a mapping of pool settings (got %s)", describe(n))
		return pool
	}
	f := p.fields(n, path, poolKeys)
	at := func(k string) string { return joinPath(path, k) }

	var inst catalog.Instance
	instOK := false
	if v, ok := f["instanceType"]; ok {
		if s, ok := p.str(v, at("instanceType")); ok {
			pool.InstanceType = s
		}
	}
	if inst, instOK = catalog.LookupInstance(pool.InstanceType); !instOK {
		p.add(at("instanceType"), "%s", notInCatalog("instance type", pool.InstanceType, catalog.InstanceTypes()))
	}

	minOK, maxOK := true, true
	pool.MinSize, minOK = p.integer(f["minSize"], at("minSize"), DefaultPoolMinSize)
	pool.MaxSize, maxOK = p.integer(f["maxSize"], at("maxSize"), DefaultPoolMaxSize)
	if minOK {
		p.rangeCheck(at("minSize"), pool.MinSize, 0, maxPoolSize)
	}
	if maxOK {
		p.rangeCheck(at("maxSize"), pool.MaxSize, 1, maxPoolSize)
	}
	if minOK && maxOK && pool.MaxSize < pool.MinSize {
		p.add(at("maxSize"), "must be at least minSize (got %d, minSize %d)", pool.MaxSize, pool.MinSize)
	}

	if v, ok := f["models"]; !ok {
		p.add(at("models"), "required key is missing (the Ollama tags this pool serves, e.g. [llama3.1:8b])")
	} else {
		pool.Models = p.strList(v, at("models"))
		if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			p.add(at("models"), "must list at least one model (got an empty list)")
		}
	}
	seen := map[string]bool{}
	for i, m := range pool.Models {
		mp := fmt.Sprintf("%s[%d]", at("models"), i)
		if seen[m] {
			p.add(mp, "lists %q twice", m)
		}
		seen[m] = true
		if _, ok := catalog.LookupModel(m); !ok {
			p.add(mp, "%s", notInCatalog("model", m, catalog.ModelTags()))
		}
	}

	parOK, ctxOK := true, true
	pool.Parallel, parOK = p.integer(f["parallel"], at("parallel"), DefaultParallel)
	if parOK {
		p.rangeCheck(at("parallel"), pool.Parallel, 1, maxParallel)
	}
	pool.ContextLength, ctxOK = p.integer(f["contextLength"], at("contextLength"), DefaultContextLength)
	if ctxOK {
		p.rangeCheck(at("contextLength"), pool.ContextLength, minContext, 131072)
		for _, tag := range pool.Models {
			// An embedding model runs at its own trained context (Ollama caps it), so a pool's
			// context sized for its chat models does not bind it.
			if m, ok := catalog.LookupModel(tag); ok && !m.Embedding && pool.ContextLength > m.MaxContext {
				p.add(at("contextLength"), "exceeds what %s was trained for (got %d, %s supports %d)", tag, pool.ContextLength, tag, m.MaxContext)
			}
		}
	}

	pool.Spot = p.boolean(f["spot"], at("spot"))
	var warmOK bool
	pool.WarmPool, warmOK = p.integer(f["warmPool"], at("warmPool"), 0)
	if warmOK {
		p.rangeCheck(at("warmPool"), pool.WarmPool, 0, maxPoolSize)
		if pool.Spot && pool.WarmPool > 0 {
			p.add(at("warmPool"), "cannot be used with spot: true, AWS does not allow a warm pool on a spot or mixed-instances group (got warmPool %d)", pool.WarmPool)
		}
	}

	if v, ok := f["schedule"]; ok && !isNull(v) {
		pool.Schedule = p.schedule(v, at("schedule"))
	}
	if minOK && pool.MinSize == 0 && pool.Schedule == nil && !hasProblemUnder(p.problems, at("schedule")) {
		p.add(at("minSize"), "is 0 with no schedule, so the pool would never start a node: target tracking cannot scale out from zero (set minSize >= 1 or add a schedule)")
	}

	if instOK && parOK && ctxOK && len(pool.Models) > 0 {
		p.fit(path, pool, inst)
	}
	return pool
}

// fit checks that every model of the pool fits in the node's memory at once, with its KV cache
// for parallel × contextLength tokens.
func (p *parser) fit(path string, pool Pool, inst catalog.Instance) {
	var need int64
	var parts []string
	for _, tag := range pool.Models {
		m, ok := catalog.LookupModel(tag)
		if !ok {
			return // already reported
		}
		b := m.MemoryBytes(pool.Parallel, pool.ContextLength)
		need += b
		parts = append(parts, fmt.Sprintf("%s %s", tag, gib(b)))
	}
	have := inst.UsableModelMemoryBytes()
	if need <= have {
		return
	}
	where := fmt.Sprintf("%d x %s GPU memory", inst.GPUs, inst.GPUModel)
	if !inst.HasGPU() {
		where = "system memory (a CPU-only type)"
	}
	p.add(joinPath(path, "models"),
		"do not fit on %s at parallel %d x contextLength %d: need %s (%s; weights + KV cache + graph) but %s leaves %s; lower parallel or contextLength, drop a model, or pick a larger instance type",
		pool.InstanceType, pool.Parallel, pool.ContextLength, gib(need), strings.Join(parts, ", "), where, gib(have))
}

func (p *parser) schedule(n *yaml.Node, path string) *Schedule {
	f := p.fields(n, path, scheduleKeys)
	if n.Kind != yaml.MappingNode {
		return nil
	}
	s := &Schedule{}
	at := func(k string) string { return joinPath(path, k) }
	get := func(k, example string) (string, bool) {
		v, ok := f[k]
		if !ok {
			p.add(at(k), "required key is missing (e.g. %s)", example)
			return "", false
		}
		return p.str(v, at(k))
	}
	if tz, ok := get("timezone", "America/Vancouver"); ok {
		s.Timezone = tz
		if msg := rules.TimeZone(tz); msg != "" {
			p.add(at("timezone"), "%s", msg)
		}
	}
	if days, ok := get("days", "MON-FRI"); ok {
		s.Days = days
		if msg := rules.Days(days); msg != "" {
			p.add(at("days"), "%s", msg)
		}
	}
	clock := func(k, example string) (string, bool) {
		v, ok := get(k, example)
		if !ok {
			return v, false
		}
		if msg := rules.Clock(v); msg != "" {
			p.add(at(k), "%s", msg)
			return v, false
		}
		return v, true
	}
	start, startOK := clock("start", `"08:00"`)
	stop, stopOK := clock("stop", `"20:00"`)
	s.Start, s.Stop = start, stop
	if startOK && stopOK && start >= stop {
		p.add(at("stop"), "must be after start on the same day (got start %s, stop %s)", start, stop)
	}
	return s
}

func (p *parser) gateway(n *yaml.Node) Gateway {
	const path = "gateway"
	g := Gateway{
		InstanceType: DefaultGatewayInstanceType, MinSize: DefaultGatewayMinSize, MaxSize: DefaultGatewayMaxSize,
		DeletionProtection: DefaultDeletionProtection,
	}
	f := p.fields(n, path, gatewayKeys)
	at := func(k string) string { return joinPath(path, k) }
	if v, ok := f["deletionProtection"]; ok {
		g.DeletionProtection = p.boolean(v, at("deletionProtection"))
	}
	if v, ok := f["instanceType"]; ok {
		if s, ok := p.str(v, at("instanceType")); ok {
			g.InstanceType = s
		}
	}
	if inst, ok := catalog.LookupInstance(g.InstanceType); !ok {
		p.add(at("instanceType"), "%s", notInCatalog("instance type", g.InstanceType, catalog.InstanceTypes()))
	} else if inst.HasGPU() {
		p.add(at("instanceType"), "must be a CPU instance type, LiteLLM needs no GPU (got %s with %d x %s)", g.InstanceType, inst.GPUs, inst.GPUModel)
	}
	minOK, maxOK := true, true
	g.MinSize, minOK = p.integer(f["minSize"], at("minSize"), DefaultGatewayMinSize)
	g.MaxSize, maxOK = p.integer(f["maxSize"], at("maxSize"), DefaultGatewayMaxSize)
	if minOK {
		p.rangeCheck(at("minSize"), g.MinSize, 1, maxGatewaySize)
	}
	if maxOK {
		p.rangeCheck(at("maxSize"), g.MaxSize, 1, maxGatewaySize)
	}
	if minOK && maxOK && g.MaxSize < g.MinSize {
		p.add(at("maxSize"), "must be at least minSize (got %d, minSize %d)", g.MaxSize, g.MinSize)
	}
	return g
}

func (p *parser) tags(n *yaml.Node) map[string]string {
	const path = "tags"
	tags := map[string]string{}
	entries := p.entries(n, path)
	if msg := rules.TagCount(len(entries), catalog.ProjectTagsPerResource); msg != "" {
		p.add(path, "%s", msg)
	}
	defaults := []string{catalog.TagDepartment, catalog.TagManagedBy, catalog.TagStack}
	for _, e := range entries {
		k, v := e[0].Value, e[1]
		tp := joinPath(path, k)
		switch {
		case slices.Contains(defaults, k):
			p.add(tp, "is set by llm-sandbox on every resource and cannot be overridden (reserved: %s)", strings.Join(catalog.ProjectTagKeys(), ", "))
		case slices.Contains(catalog.ProjectTagKeys(), k):
			p.add(tp, "is set by llm-sandbox on what it names and cannot be overridden (reserved: %s)", strings.Join(catalog.ProjectTagKeys(), ", "))
		default:
			if msg := rules.TagKey(k); msg != "" {
				p.add(tp, "%s", msg)
			}
		}
		if v.Kind != yaml.ScalarNode || isNull(v) {
			p.add(tp, "tag values must be text (got %s)", describe(v))
			continue
		}
		if msg := rules.TagValue(v.Value); msg != "" {
			p.add(tp, "%s", msg)
		}
		tags[k] = v.Value
	}
	return tags
}

func (p *parser) alerts(n *yaml.Node) Alerts {
	const path = "alerts"
	var a Alerts
	f := p.fields(n, path, alertsKeys)
	at := joinPath(path, "emails")
	seen := map[string]int{}
	for i, e := range p.strList(f["emails"], at) {
		ep := fmt.Sprintf("%s[%d]", at, i)
		if msg := rules.Email(e); msg != "" {
			p.add(ep, "%s", msg)
			continue
		}
		// Mailbox domains ignore case, and in practice so do local parts: SNS would send two
		// confirmations to one inbox.
		k := strings.ToLower(e)
		if j, dup := seen[k]; dup {
			p.add(ep, "duplicates %s[%d] (got %q)", at, j, e)
			continue
		}
		seen[k] = i
		a.Emails = append(a.Emails, e)
	}
	return a
}

// artifacts reads the artifacts section. It runs after network and pools: with nat none the
// mirror is implied, and a mirrored stack may serve only models whose manifest is pinned.
func (p *parser) artifacts(n *yaml.Node, spec *Spec) Artifacts {
	const path = "artifacts"
	a := Artifacts{Mirror: spec.Network.NAT == NATNone}
	f := p.fields(n, path, artifactKeys)
	if v, ok := f["mirror"]; ok {
		mirror := p.boolean(v, joinPath(path, "mirror"))
		if !mirror && spec.Network.NAT == NATNone && v.Tag == "!!bool" {
			p.add(joinPath(path, "mirror"), "must be true or absent with network.nat none: nodes without a NAT can fetch "+
				"the Ollama release, the LiteLLM wheelhouse and the models only from the department's bucket (got false)")
		}
		a.Mirror = a.Mirror || mirror
	}
	if !a.Mirror {
		return a
	}
	why := "artifacts.mirror is true"
	if spec.Network.NAT == NATNone {
		why = "network.nat is none"
	}
	for _, pool := range spec.PoolNames() {
		for i, m := range spec.Pools[pool].Models {
			if _, inCatalog := catalog.LookupModel(m); !inCatalog {
				continue // already reported
			}
			if _, ok := versions.ModelPins[m]; !ok {
				p.add(fmt.Sprintf("%s[%d]", joinPath(joinPath("pools", pool), "models"), i), "%s, so nodes load models only from the department's bucket, "+
					"and %q has no pinned manifest to mirror: run `sandboxctl pin model %s` on a machine with internet access "+
					"and commit versions/models_pinned.go (pinned: %s)", why, m, m, pinnedModels())
			}
		}
	}
	return a
}

// pinnedModels lists the pinned models for messages.
func pinnedModels() string {
	if len(versions.ModelPins) == 0 {
		return "none yet"
	}
	names := make([]string, 0, len(versions.ModelPins))
	for n := range versions.ModelPins {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
