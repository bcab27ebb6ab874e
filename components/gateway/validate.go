package gateway

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// Stand-ins for what the node config names but construction only learns later (the internal
// load balancer's DNS name, the secret's ARN), of the same shape, so the config can be checked
// before anything is registered.
const (
	placeholderDNS = "internal-placeholder-0000000000.elb.amazonaws.com"
	// placeholderCacheHost stands in for the cache's endpoint, which is not known yet.
	placeholderCacheHost = "master.placeholder.abcdef.cac1.cache.amazonaws.com"
	placeholderSecret    = "arn:aws:secretsmanager:%s:000000000000:secret:placeholder-AbCdEf"
)

// settings are GatewayArgs validated, with what construction branches on worked out.
type settings struct {
	// https is true with a certificate (given or requested): HTTPS on 443, and port 80 only
	// redirects.
	https bool
	// managedCertificate is true when the gateway requests the certificate itself.
	managedCertificate bool
	// public is true for an internet-facing front ALB with a WAF.
	public bool
	// clientCIDRs are the ranges admitted to the front ALB: AllowedCIDRs, plus VpcCIDR when
	// internal, without duplicates, in order.
	clientCIDRs []netip.Prefix
	// poolNames are the Pools' keys in order.
	poolNames []string
	// workers is LiteLLM's worker count: one per vCPU (catalog.Instance.GatewayWorkers).
	workers int
}

// validate returns every problem with args at once, each naming its field, and otherwise the
// settings construction uses.
func validate(name string, args *GatewayArgs) (*settings, error) {
	c := argcheck.NewChecker("gateway", name)
	if args == nil {
		c.Add("GatewayArgs", "required (got nil)")
		return nil, c.Err()
	}
	s := &settings{}

	c.Department(args.Department)
	c.Region(args.Region)
	if c.InstanceType("InstanceType", args.InstanceType, "t3.large") {
		inst, ok := catalog.LookupInstance(args.InstanceType)
		switch {
		case !ok:
			c.Add("InstanceType", "must be a CPU type of the instance catalog, one of %s (got %q)", strings.Join(cpuTypes(), ", "), args.InstanceType)
		case inst.HasGPU():
			c.Add("InstanceType", "must be a CPU type: LiteLLM needs no GPU (got %q, %d x %s)", args.InstanceType, inst.GPUs, inst.GPUModel)
		default:
			s.workers = inst.GatewayWorkers()
		}
	}
	c.Sizes(args.MinSize, args.MaxSize, 1)

	validateAccess(c, args, s)
	validatePools(c, args, s)

	problems := nodeConfigProblems(nodeConfig(args, s, placeholderDNS, fmt.Sprintf(placeholderSecret, args.Region), placeholderCacheHost, fmt.Sprintf(placeholderSecret, args.Region)))
	if rc := args.RateLimitCache; rc != nil {
		if rc.Port < 1 || rc.Port > 65535 {
			c.Add("RateLimitCache.Port", "must be 1-65535 (got %d)", rc.Port)
		}
		c.Required(map[string]bool{
			"RateLimitCache.Host":               rc.Host == nil,
			"RateLimitCache.AuthTokenSecretArn": rc.AuthTokenSecretArn == nil,
			"RateLimitCache.SecurityGroupID":    rc.SecurityGroupID == nil,
		})
	}
	if args.MirrorBucket != nil && (args.Wheelhouse == nil || !rules.IsSHA256Hex(args.Wheelhouse.SHA256)) {
		c.Add("Wheelhouse", "must be a pinned wheelhouse (versions.Wheelhouse) when MirrorBucket is set: nodes install LiteLLM only from the bucket (got %+v)", args.Wheelhouse)
	}
	c.SHA256("AgentSHA256", args.AgentSHA256)
	required := map[string]bool{
		"VpcID":                      args.VpcID == nil,
		"PrivateSubnetIDs":           args.PrivateSubnetIDs == nil,
		"InternalALBSecurityGroupID": args.InternalALBSecurityGroupID == nil,
		"MasterKeySecretArn":         args.MasterKeySecretArn == nil,
		"KeyRegistryTableArn":        args.KeyRegistryTableArn == nil,
		"AgentURL":                   args.AgentURL == nil,
		"ArtifactsBucketArn":         args.ArtifactsBucketArn == nil,
		"KMSKeyArn":                  args.KMSKeyArn == nil,
	}
	if args.Access.Mode == ModePublic {
		required["PublicSubnetIDs"] = args.PublicSubnetIDs == nil
	}
	c.Required(required)
	id := identity(args.Department)
	c.Tags(args.Tags, id.Kind, id.Name, id.Scope)

	if err := c.Err(); err != nil {
		return nil, err
	}
	// The checks above cover every field the node config takes; this is a backstop so that a
	// config the agent would refuse at boot is refused at deploy time instead.
	for _, p := range problems {
		c.Add("node config", "%s", p)
	}
	if err := c.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// nodeConfigProblems are the node agent's objections to cfg, one per problem, each starting
// with its JSON key.
func nodeConfigProblems(cfg *node.Config) []string {
	err := cfg.Validate()
	if err == nil {
		return nil
	}
	var out []string
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// validateAccess checks Access and VpcCIDR and works out the client ranges.
func validateAccess(c *argcheck.Checker, args *GatewayArgs, s *settings) {
	a := args.Access
	switch a.Mode {
	case ModePublic:
		s.public = true
	case ModeInternal:
	default:
		c.Add("Access.Mode", "must be %q or %q (got %q)", ModeInternal, ModePublic, a.Mode)
	}

	if a.Hostname != "" {
		c.Rule("Access.Hostname", rules.Hostname(a.Hostname))
	}
	if a.HostedZoneID != "" {
		c.Rule("Access.HostedZoneID", rules.HostedZoneID(a.HostedZoneID))
		if a.Hostname == "" {
			c.Add("Access.Hostname", "required with Access.HostedZoneID: the name to create in the zone (got none)")
		}
	}

	if a.CertificateARN == "" {
		switch {
		case a.HostedZoneID != "":
			s.https, s.managedCertificate = true, true
		case s.public:
			c.Add("Access.CertificateARN", "required when Access.Mode is public and Access.HostedZoneID is empty: the ACM certificate of the HTTPS listener (got none)")
		}
	} else if c.Rule("Access.CertificateARN", rules.ACMCertificateARN(a.CertificateARN, args.Region)) {
		s.https = true
	}
	// Plain HTTP is never a fallback: an internal gateway without a certificate says so.
	withCert := a.CertificateARN != "" || a.HostedZoneID != ""
	switch {
	case a.PlainHTTP && s.public:
		c.Add("Access.PlainHTTP", "must be false when Access.Mode is public: an internet-facing endpoint is HTTPS only (got true)")
	case a.PlainHTTP && withCert:
		c.Add("Access.PlainHTTP", "must be false with Access.CertificateARN or Access.HostedZoneID: the endpoint is HTTPS (got true)")
	case !a.PlainHTTP && !withCert && a.Mode == ModeInternal:
		c.Add("Access.PlainHTTP", "required (true) for an internal gateway without Access.CertificateARN or Access.HostedZoneID, which would serve plain HTTP; or give it a certificate (got false)")
	}

	seen := map[netip.Prefix]string{}
	var fields []string // of each s.clientCIDRs entry from AllowedCIDRs
	for i, raw := range a.AllowedCIDRs {
		field := fmt.Sprintf("Access.AllowedCIDRs[%d]", i)
		p, ok := parseCIDR(c, field, raw)
		if !ok {
			continue
		}
		if prev, dup := seen[p]; dup {
			c.Add(field, "lists %s twice (also %s)", p, prev)
			continue
		}
		seen[p] = field
		s.clientCIDRs = append(s.clientCIDRs, p)
		fields = append(fields, field)
	}
	// The list is judged by the address space it covers, not by its spelling: 0.0.0.0/1 and
	// 128.0.0.0/1 open as much as 0.0.0.0/0.
	if !a.AllowAnywhere {
		if i, problem := rules.WideAllowList(s.clientCIDRs); problem != "" {
			field := "Access.AllowedCIDRs"
			if i >= 0 {
				field = fields[i]
			}
			c.Add(field, "%s; set Access.AllowAnywhere to true if that is really meant", problem)
		}
	}
	if s.public && len(a.AllowedCIDRs) == 0 {
		c.Add("Access.AllowedCIDRs", "required and non-empty when Access.Mode is public: the client ranges, e.g. [142.103.0.0/16] (got none)")
	}
	if a.Mode == ModeInternal {
		if p, ok := parseCIDR(c, "VpcCIDR", args.VpcCIDR); ok {
			if _, dup := seen[p]; !dup {
				s.clientCIDRs = append(s.clientCIDRs, p)
			}
		}
	}
	// Each client range takes one inbound rule per client-facing listener on the front group.
	c.Rule("Access.AllowedCIDRs", rules.ClientRanges(len(s.clientCIDRs), s.https))
	sort.Slice(s.clientCIDRs, func(i, j int) bool { return s.clientCIDRs[i].String() < s.clientCIDRs[j].String() })
}

// parseCIDR reads an IPv4 CIDR with its host bits zero (rules.IPv4CIDR).
func parseCIDR(c *argcheck.Checker, field, raw string) (netip.Prefix, bool) {
	p, problem := rules.IPv4CIDR(raw)
	return p, c.Rule(field, problem)
}

// validatePools checks every pool route; listener ports must be unique across pools.
func validatePools(c *argcheck.Checker, args *GatewayArgs, s *settings) {
	if len(args.Pools) == 0 {
		c.Add("Pools", "must route at least one pool (got none)")
	}
	s.poolNames = slices.Sorted(maps.Keys(args.Pools))
	ports := map[int]string{}
	servedBy := map[string]string{}
	for _, pool := range s.poolNames {
		r, f := args.Pools[pool], fmt.Sprintf("Pools[%q]", pool)
		c.Rule(f, rules.ModelPoolName(pool))
		if r.ListenerPort < 1 || r.ListenerPort > 65535 {
			c.Add(f+".ListenerPort", "must be 1..65535 (got %d)", r.ListenerPort)
		} else if other, dup := ports[r.ListenerPort]; dup {
			c.Add(f+".ListenerPort", "%d is also the listener port of pool %q; each pool needs its own", r.ListenerPort, other)
		} else {
			ports[r.ListenerPort] = pool
		}
		if r.TargetGroupArn == nil {
			c.Add(f+".TargetGroupArn", "required (got nil)")
		}
		if r.SecurityGroupID == nil {
			c.Add(f+".SecurityGroupID", "required (got nil)")
		}
		c.Models(f+".Models", r.Models)
		if r.ContextLength < 0 {
			c.Add(f+".ContextLength", "must be 0 (no check) or positive (got %d)", r.ContextLength)
		}
		// LiteLLM gets one entry per model name: a tag served by two pools would need a
		// choice between them, which the gateway does not make.
		for i, m := range r.Models {
			if other, dup := servedBy[m]; dup && other != pool {
				c.Add(fmt.Sprintf("%s.Models[%d]", f, i), "%q is also served by pool %q; serve each model from one pool", m, other)
			} else if !dup {
				servedBy[m] = pool
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(args.Teams)) {
		t, f := args.Teams[name], fmt.Sprintf("Teams[%q]", name)
		c.Rule(f, rules.TeamName(name))
		if len(t.Models) == 0 {
			c.Add(f+".Models", "must list at least one model (got none)")
		}
		for i, m := range t.Models {
			if _, ok := servedBy[m]; !ok {
				c.Add(fmt.Sprintf("%s.Models[%d]", f, i), "%q is not a model of Pools", m)
			}
		}
		for field, v := range map[string]int{"RequestsPerMinute": t.RequestsPerMinute, "TokensPerMinute": t.TokensPerMinute, "ParallelPerKey": t.ParallelPerKey} {
			if v < 1 {
				c.Add(f+"."+field, "must be at least 1 (got %d)", v)
			}
		}
	}
}

// cpuTypes are the instance catalog's CPU types.
func cpuTypes() []string {
	var out []string
	for _, t := range catalog.InstanceTypes() {
		if inst, _ := catalog.LookupInstance(t); !inst.HasGPU() {
			out = append(out, t)
		}
	}
	return out
}
