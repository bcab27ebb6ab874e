package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/endpoints"
)

const (
	typeNATGateway = "aws:ec2/natGateway:NatGateway"
	typeRouteTable = "aws:ec2/routeTable:RouteTable"
)

// airGapped reports whether the stack says network.nat: none.
func (p *Plan) airGapped() bool {
	return p.Spec != nil && p.Spec.Network.NAT == config.NATNone
}

// nodeSubnets returns the subnets an air-gapped stack must keep off the internet: those its
// nodes launch into (autoscaling groups), its caches sit in (ElastiCache subnet groups) and its
// internal load balancers use. Public subnets that hold only the internet-facing load balancer
// (or, in an internal stack, nothing) may keep their route to the internet gateway.
func (p *Plan) nodeSubnets() map[string]bool {
	subnets := map[string]bool{}
	for _, g := range p.byType(typeASG) {
		for _, s := range strs(g.Inputs["vpcZoneIdentifiers"]) {
			subnets[s] = true
		}
	}
	for _, g := range p.byType(typeCacheSubnets) {
		for _, s := range strs(g.Inputs["subnetIds"]) {
			subnets[s] = true
		}
	}
	for _, lb := range p.byType(typeLoadBalancer) {
		if internetFacing(lb) {
			continue
		}
		for _, s := range strs(lb.Inputs["subnets"]) {
			subnets[s] = true
		}
		for _, m := range list(lb.Inputs["subnetMappings"]) {
			subnets[str(obj(m)["subnetId"])] = true
		}
	}
	delete(subnets, "")
	return subnets
}

// internetTarget says where a route goes when that is the internet (an internet gateway, a
// NAT gateway or an egress-only internet gateway), "" otherwise. route is a Route's inputs or
// one inline route of a RouteTable; igws are the plan's internet gateway ids.
func internetTarget(route map[string]any, igws map[string]bool) string {
	if g := str(route["gatewayId"]); igws[g] || strings.HasPrefix(g, "igw-") {
		return "internet gateway " + g
	}
	if n := str(route["natGatewayId"]); n != "" {
		return "NAT gateway " + n
	}
	if e := str(route["egressOnlyGatewayId"]); e != "" {
		return "egress-only internet gateway " + e
	}
	return ""
}

// routeDestination is a route's destination as a Route or an inline route spells it.
func routeDestination(route map[string]any) string {
	for _, k := range []string{"destinationCidrBlock", "cidrBlock", "destinationIpv6CidrBlock", "ipv6CidrBlock", "destinationPrefixListId"} {
		if d := str(route[k]); d != "" {
			return d
		}
	}
	return "?"
}

// endpointService splits a VPC endpoint service name com.amazonaws.<region>.<service> into its
// region and service; ok is false for any other name.
func endpointService(name string) (region, service string, ok bool) {
	rest, ok := strings.CutPrefix(name, "com.amazonaws.")
	if !ok {
		return "", "", false
	}
	region, service, ok = strings.Cut(rest, ".")
	return region, service, ok && region != "" && service != ""
}

func checkAirGap(p *Plan) []Finding {
	if !p.airGapped() {
		return nil
	}
	var out []Finding
	for _, n := range p.byType(typeNATGateway) {
		out = append(out, finding(n, "a NAT gateway in a stack with network.nat: none; want none"))
	}

	// The route tables of the nodes' subnets.
	nodeSubnets := p.nodeSubnets()
	tables := map[string][]string{} // route table id -> the node subnets it serves
	associated := map[string]bool{}
	for _, a := range p.byType(typeRTAssociation) {
		if s := str(a.Inputs["subnetId"]); nodeSubnets[s] {
			tables[str(a.Inputs["routeTableId"])] = append(tables[str(a.Inputs["routeTableId"])], s)
			associated[s] = true
		}
	}
	for _, s := range p.byType(typeSubnet) {
		if nodeSubnets[s.ID] && !associated[s.ID] {
			out = append(out, finding(s, "a node subnet without a route table association: it would use the VPC's main route table, which the plan does not show; want its own table without a route to the internet"))
		}
	}

	igws := map[string]bool{}
	for _, g := range p.byType(typeInternetGateway) {
		igws[g.ID] = true
	}
	for _, r := range p.byType(typeRoute) {
		rt := str(r.Inputs["routeTableId"])
		if to := internetTarget(r.Inputs, igws); to != "" && len(tables[rt]) > 0 {
			out = append(out, finding(r, "routes %s to %s from route table %s of subnets %v; an air-gapped stack's node subnets have no route to the internet", routeDestination(r.Inputs), to, rt, tables[rt]))
		}
	}
	for _, t := range p.byType(typeRouteTable) {
		if len(tables[t.ID]) == 0 {
			continue
		}
		for _, route := range list(t.Inputs["routes"]) {
			if to := internetTarget(obj(route), igws); to != "" {
				out = append(out, finding(t, "routes %s to %s for subnets %v; an air-gapped stack's node subnets have no route to the internet", routeDestination(obj(route)), to, tables[t.ID]))
			}
		}
	}

	return append(out, p.checkNodeEndpoints(tables)...)
}

// checkNodeEndpoints finds, per VPC, the service a node calls that has no working VPC endpoint:
// no endpoint of the right kind for the service; an interface endpoint without private DNS (the
// SDKs would resolve the public name, which has no route) or without subnets; a gateway
// endpoint missing from a node subnet's route table. tables maps the node subnets' route
// tables to their subnets.
func (p *Plan) checkNodeEndpoints(tables map[string][]string) []Finding {
	region := ""
	if p.Spec != nil {
		region = p.Spec.Region
	}
	nodeTables := make([]string, 0, len(tables))
	for rt := range tables {
		nodeTables = append(nodeTables, rt)
	}
	slices.Sort(nodeTables)

	var out []Finding
	for _, vpc := range p.byType(typeVPC) {
		found := map[string][]Resource{} // service -> its endpoints in this VPC
		for _, ep := range p.byType(typeVPCEndpoint) {
			r, svc, ok := endpointService(str(ep.Inputs["serviceName"]))
			if ok && str(ep.Inputs["vpcId"]) == vpc.ID && (region == "" || r == region) {
				found[svc] = append(found[svc], ep)
			}
		}
		for _, want := range endpoints.NodeCalled() {
			name := want.Service
			if region != "" {
				name = endpoints.ServiceName(region, want.Service)
			}
			var problems []string
			ok := false
			for _, ep := range found[want.Service] {
				// The provider's default endpoint type is Gateway.
				kind := str(ep.Inputs["vpcEndpointType"])
				if kind == "" {
					kind = string(endpoints.Gateway)
				}
				var problem string
				switch {
				case kind != string(want.Kind):
					problem = fmt.Sprintf("%s is a %s endpoint; want %s", ep.Name, kind, want.Kind)
				case want.Kind == endpoints.Interface:
					problem = interfaceEndpointProblem(ep)
				default:
					problem = gatewayEndpointProblem(ep, nodeTables)
				}
				if problem == "" {
					ok = true
					break
				}
				problems = append(problems, problem)
			}
			if ok {
				continue
			}
			msg := fmt.Sprintf("no %s endpoint for %s in this VPC", strings.ToLower(string(want.Kind)), name)
			if len(problems) > 0 {
				msg = fmt.Sprintf("no working %s endpoint for %s in this VPC (%s)", strings.ToLower(string(want.Kind)), name, strings.Join(problems, "; "))
			}
			out = append(out, finding(vpc, "%s: %s, and an air-gapped node has no other way to it", msg, want.Why))
		}
	}
	return out
}

// interfaceEndpointProblem says why an interface endpoint does not serve the nodes, "" when it
// does.
func interfaceEndpointProblem(ep Resource) string {
	if on, _ := ep.Inputs["privateDnsEnabled"].(bool); !on {
		return ep.Name + " has privateDnsEnabled off, so the service's regional name still resolves to public addresses"
	}
	if len(strs(ep.Inputs["subnetIds"])) == 0 {
		return ep.Name + " has no subnets"
	}
	return ""
}

// gatewayEndpointProblem says why a gateway endpoint does not serve the nodes' route tables,
// "" when it does.
func gatewayEndpointProblem(ep Resource, nodeTables []string) string {
	on := strs(ep.Inputs["routeTableIds"])
	var missing []string
	for _, rt := range nodeTables {
		if !slices.Contains(on, rt) {
			missing = append(missing, rt)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%s is not on the node subnets' route tables %v", ep.Name, missing)
	}
	return ""
}
