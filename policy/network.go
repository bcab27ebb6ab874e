package policy

import (
	"fmt"
	"strings"
)

const (
	typeVPC             = "aws:ec2/vpc:Vpc"
	typeDefaultSG       = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
	typeSubnet          = "aws:ec2/subnet:Subnet"
	typeRoute           = "aws:ec2/route:Route"
	typeRTAssociation   = "aws:ec2/routeTableAssociation:RouteTableAssociation"
	typeInternetGateway = "aws:ec2/internetGateway:InternetGateway"
	typeFlowLog         = "aws:ec2/flowLog:FlowLog"
	typeLogGroup        = "aws:cloudwatch/logGroup:LogGroup"
	typeKMSKey          = "aws:kms/key:Key"
)

// departmentKeys returns the ARNs and ids of the plan's KMS keys: the department's own.
func (p *Plan) departmentKeys() map[string]bool {
	keys := map[string]bool{}
	for _, k := range p.byType(typeKMSKey) {
		keys[k.ARN], keys[k.ID] = true, true
	}
	delete(keys, "")
	return keys
}

func checkEgress(p *Plan) []Finding {
	var out []Finding
	for _, e := range p.egresses() {
		if e.cidr != "0.0.0.0/0" && e.cidr != "::/0" {
			continue
		}
		if (e.lo == 443 && e.hi == 443) || (e.lo == 80 && e.hi == 80) {
			continue
		}
		out = append(out, finding(e.from, "sends to %s on ports %d-%d from %s; want only 443 (or 80)", e.cidr, e.lo, e.hi, e.target))
	}
	return out
}

// checkNoEgress80: port 80 to the internet only from groups that LiteLLM gateway nodes alone
// use. They install python3-venv from Ubuntu's archive, which serves only plain HTTP (apt
// checks every package against the archive's signing key); nothing else needs it.
func checkNoEgress80(p *Plan) []Finding {
	roles := map[string][]string{} // security group id -> roles of the nodes that use it
	for _, nc := range p.nodeConfigs() {
		for _, n := range list(nc.lt.Inputs["networkInterfaces"]) {
			for _, sg := range strs(obj(n)["securityGroups"]) {
				roles[sg] = append(roles[sg], str(nc.config["role"]))
			}
		}
		for _, sg := range strs(nc.lt.Inputs["vpcSecurityGroupIds"]) {
			roles[sg] = append(roles[sg], str(nc.config["role"]))
		}
	}
	var out []Finding
	for _, e := range p.egresses() {
		if (e.cidr != "0.0.0.0/0" && e.cidr != "::/0") || e.lo > 80 || e.hi < 80 {
			continue
		}
		users := roles[e.target]
		gatewayOnly := len(users) > 0
		for _, r := range users {
			gatewayOnly = gatewayOnly && r == "litellm"
		}
		if !gatewayOnly {
			out = append(out, finding(e.from, "sends to %s on port 80 from %s, used by %v; only LiteLLM gateway nodes may (Ubuntu's plain-HTTP archive), everything else uses HTTPS", e.cidr, e.target, users))
		}
	}
	return out
}

func checkSGDescriptions(p *Plan) []Finding {
	var out []Finding
	for _, sg := range p.byType(typeSecurityGroup) {
		if str(sg.Inputs["description"]) == "" {
			out = append(out, finding(sg, "no description"))
		}
		for _, dir := range []string{"ingress", "egress"} {
			for i, r := range list(sg.Inputs[dir]) {
				if str(obj(r)["description"]) == "" {
					out = append(out, finding(sg, "%s[%d] has no description", dir, i))
				}
			}
		}
	}
	for _, typ := range []string{typeIngressRule, typeEgressRule, typeSGRule} {
		for _, r := range p.byType(typ) {
			if str(r.Inputs["description"]) == "" {
				out = append(out, finding(r, "no description"))
			}
		}
	}
	return out
}

func checkDefaultSG(p *Plan) []Finding {
	var out []Finding
	managed := map[string]bool{}
	for _, d := range p.byType(typeDefaultSG) {
		managed[str(d.Inputs["vpcId"])] = true
		if len(list(d.Inputs["ingress"])) > 0 || len(list(d.Inputs["egress"])) > 0 {
			out = append(out, finding(d, "has rules (ingress %v, egress %v); want none", d.Inputs["ingress"], d.Inputs["egress"]))
		}
	}
	for _, v := range p.byType(typeVPC) {
		if !managed[v.ID] {
			out = append(out, finding(v, "no DefaultSecurityGroup empties this VPC's default group (AWS's default admits all traffic between its members)"))
		}
	}
	return out
}

func checkSubnetPublicIP(p *Plan) []Finding {
	return p.eachOf(typeSubnet, func(s Resource) string {
		if on, _ := s.Inputs["mapPublicIpOnLaunch"].(bool); on {
			return "mapPublicIpOnLaunch is true"
		}
		return ""
	})
}

// publicSubnets returns the ids of subnets whose route table routes to an internet gateway.
func (p *Plan) publicSubnets() map[string]bool {
	igws := map[string]bool{}
	for _, g := range p.byType(typeInternetGateway) {
		igws[g.ID] = true
	}
	tables := map[string]bool{}
	for _, r := range p.byType(typeRoute) {
		if igws[str(r.Inputs["gatewayId"])] {
			tables[str(r.Inputs["routeTableId"])] = true
		}
	}
	subnets := map[string]bool{}
	for _, a := range p.byType(typeRTAssociation) {
		if tables[str(a.Inputs["routeTableId"])] {
			subnets[str(a.Inputs["subnetId"])] = true
		}
	}
	return subnets
}

func checkPrivateSubnets(p *Plan) []Finding {
	var out []Finding
	public := p.publicSubnets()
	for _, g := range p.byType(typeASG) {
		for _, s := range strs(g.Inputs["vpcZoneIdentifiers"]) {
			if public[s] {
				out = append(out, finding(g, "launches into %s, a subnet routed to the internet gateway", s))
			}
		}
	}
	return out
}

func checkFlowLogs(p *Plan) []Finding {
	var out []Finding
	logged := map[string]bool{}
	for _, f := range p.byType(typeFlowLog) {
		if t := str(f.Inputs["trafficType"]); t != "ALL" {
			out = append(out, finding(f, "trafficType %q; want ALL", t))
			continue
		}
		logged[str(f.Inputs["vpcId"])] = true
	}
	for _, v := range p.byType(typeVPC) {
		if !logged[v.ID] {
			out = append(out, finding(v, "no flow log records all of this VPC's traffic"))
		}
	}
	return out
}

func checkLogGroupKey(p *Plan) []Finding {
	keys := p.departmentKeys()
	return p.eachOf(typeLogGroup, func(g Resource) string {
		if k := str(g.Inputs["kmsKeyId"]); !keys[k] {
			return fmt.Sprintf("kmsKeyId %q; want the department key", k)
		}
		return ""
	})
}

// maxLogRetentionDays is the retention docs/security.md states for request metadata.
const maxLogRetentionDays = 90

func checkLogRetention(p *Plan) []Finding {
	return p.eachOf(typeLogGroup, func(g Resource) string {
		if d, _ := num(g.Inputs["retentionInDays"]); d < 1 || d > maxLogRetentionDays {
			return fmt.Sprintf("retentionInDays %d; want 1 to %d (0 keeps events forever)", d, maxLogRetentionDays)
		}
		return ""
	})
}

// isHTTPS reports whether a listener serves HTTPS or redirects everything to HTTPS.
func isHTTPS(l Resource) bool {
	if str(l.Inputs["protocol"]) == "HTTPS" {
		return true
	}
	actions := list(l.Inputs["defaultActions"])
	for _, a := range actions {
		if !strings.EqualFold(str(obj(obj(a)["redirect"])["protocol"]), "HTTPS") {
			return false
		}
	}
	return len(actions) > 0
}
