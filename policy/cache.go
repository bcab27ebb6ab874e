package policy

import "fmt"

const (
	typeCacheGroup   = "aws:elasticache/replicationGroup:ReplicationGroup"
	typeCacheSubnets = "aws:elasticache/subnetGroup:SubnetGroup"
)

// The rate-limit cache holds counters keyed by a key's hash; these rules keep it as closed as
// the rest of the department's data: TLS only, encrypted with the department key, a token
// required, reachable from the gateway nodes only.

func checkCacheTransit(p *Plan) []Finding {
	return p.eachOf(typeCacheGroup, func(g Resource) string {
		on, _ := g.Inputs["transitEncryptionEnabled"].(bool)
		if mode := str(g.Inputs["transitEncryptionMode"]); !on || mode != "required" {
			return fmt.Sprintf("transitEncryptionEnabled %v, transitEncryptionMode %q; want true and \"required\" (\"preferred\" still accepts plain connections)", g.Inputs["transitEncryptionEnabled"], mode)
		}
		return ""
	})
}

func checkCacheAtRest(p *Plan) []Finding {
	keys := p.departmentKeys()
	return p.eachOf(typeCacheGroup, func(g Resource) string {
		on, _ := g.Inputs["atRestEncryptionEnabled"].(bool)
		if k := str(g.Inputs["kmsKeyId"]); !on || !keys[k] {
			return fmt.Sprintf("atRestEncryptionEnabled %v with kmsKeyId %q; want true with the department key", g.Inputs["atRestEncryptionEnabled"], k)
		}
		return ""
	})
}

// checkCacheAuth: an AUTH token is required. In a plan the token reads as a masked secret;
// a plain string there is the token itself, in the clear in the state.
func checkCacheAuth(p *Plan) []Finding {
	return p.eachOf(typeCacheGroup, func(g Resource) string {
		switch t, set := g.Inputs["authToken"]; {
		case !set || t == nil || str(t) == "":
			return "no authToken; want one, so that reaching the port is not enough to read or reset the counters"
		case str(t) != secretMask:
			return "authToken is not marked secret: the token would be in the state in the clear"
		}
		return ""
	})
}

// checkCacheNotPublic: the cache's subnets have no route to the internet gateway, and its
// security groups admit nothing but the groups of the gateway's (LiteLLM) nodes.
func checkCacheNotPublic(p *Plan) []Finding {
	var out []Finding
	public := p.publicSubnets()
	subnetGroups := map[string]Resource{}
	for _, s := range p.byType(typeCacheSubnets) {
		subnetGroups[str(s.Inputs["name"])] = s
		for _, id := range strs(s.Inputs["subnetIds"]) {
			if public[id] {
				out = append(out, finding(s, "places the cache in %s, a subnet routed to the internet gateway", id))
			}
		}
	}
	gatewaySGs := map[string]bool{}
	for _, nc := range p.nodeConfigs() {
		if str(nc.config["role"]) != "litellm" {
			continue
		}
		for _, n := range list(nc.lt.Inputs["networkInterfaces"]) {
			for _, sg := range strs(obj(n)["securityGroups"]) {
				gatewaySGs[sg] = true
			}
		}
		for _, sg := range strs(nc.lt.Inputs["vpcSecurityGroupIds"]) {
			gatewaySGs[sg] = true
		}
	}
	cacheSGs := map[string]bool{}
	for _, g := range p.byType(typeCacheGroup) {
		if _, ok := subnetGroups[str(g.Inputs["subnetGroupName"])]; !ok {
			out = append(out, finding(g, "subnetGroupName %q is not a subnet group of the plan; want the cache's own, in the private subnets", str(g.Inputs["subnetGroupName"])))
		}
		sgs := strs(g.Inputs["securityGroupIds"])
		if len(sgs) == 0 {
			out = append(out, finding(g, "no securityGroupIds; want the cache's own group (the VPC's default group is not the cache's to open)"))
		}
		for _, sg := range sgs {
			cacheSGs[sg] = true
		}
	}
	for _, in := range p.ingresses() {
		if !cacheSGs[in.target] || (in.sourceSG != "" && gatewaySGs[in.sourceSG]) {
			continue
		}
		src := in.cidr
		if src == "" {
			src = "security group " + in.sourceSG
		}
		out = append(out, finding(in.from, "admits %s to the rate-limit cache's group %s; only the gateway nodes' group may", src, in.target))
	}
	return out
}

// secretMask is how a secret input reads in a plan (Resource.Inputs).
const secretMask = "[secret]"
