package policy

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/endpoints"
)

const (
	ca        = "ca-central-1"
	chemVPC   = "chemistry-network-vpc-id"
	privRTA   = "chemistry-network-private-ca-central-1a-id"
	privRTB   = "chemistry-network-private-ca-central-1b-id"
	chemIGW   = "chemistry-network-igw-id"
	airgapRul = "airgap-no-internet-route"
)

// airGappedInterfaces are the interface endpoints the network component gives a stack with
// network.nat: none.
var airGappedInterfaces = []string{"ssm", "ssmmessages", "ec2messages", "secretsmanager", "autoscaling", "monitoring", "kms", "logs", "sts"}

// airGap turns the chemistry fixture (network.nat: single) into the plan of the same stack with
// network.nat: none, as the network component renders it: no NAT gateway, Elastic IP or
// private default routes; the DynamoDB gateway endpoint on the private route tables; the
// interface endpoints with private DNS in the private subnets behind their own group.
func airGap(t *testing.T, p *Plan) {
	t.Helper()
	p.Spec = &config.Spec{
		Region:  ca,
		Network: config.Network{CIDR: netip.MustParsePrefix("10.20.0.0/16"), AZCount: 2, NAT: config.NATNone},
		Gateway: config.Gateway{DeletionProtection: true},
	}
	res(t, p, typeNATGateway, "chemistry-network-nat-ca-central-1a")
	remove(p, typeNATGateway, "chemistry-network-nat-ca-central-1a")
	remove(p, "aws:ec2/eip:Eip", "chemistry-network-nat-ca-central-1a")
	for _, az := range []string{"a", "b"} {
		res(t, p, typeRoute, "chemistry-network-private-egress-ca-central-1"+az)
		remove(p, typeRoute, "chemistry-network-private-egress-ca-central-1"+az)
	}
	res(t, p, typeVPCEndpoint, "chemistry-network-s3")
	// The DynamoDB gateway endpoint exists for every strategy; a fixture rendered before it
	// existed lacks it.
	remove(p, typeVPCEndpoint, "chemistry-network-dynamodb")
	p.Resources = append(p.Resources,
		Resource{Type: typeVPCEndpoint, Name: "chemistry-network-dynamodb", ID: "chemistry-network-dynamodb-id", Inputs: map[string]any{
			"vpcId": chemVPC, "serviceName": "com.amazonaws." + ca + ".dynamodb", "vpcEndpointType": "Gateway",
			"routeTableIds": []any{privRTA, privRTB},
		}},
		Resource{Type: typeSecurityGroup, Name: "chemistry-network-endpoints", ID: "chemistry-network-endpoints-id", Inputs: map[string]any{
			"vpcId": chemVPC, "description": "HTTPS from inside the VPC to the interface endpoints",
			"ingress": []any{map[string]any{"description": "HTTPS from the VPC", "protocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrBlocks": []any{"10.20.0.0/16"}}},
			"egress":  []any{},
		}},
	)
	for _, svc := range airGappedInterfaces {
		p.Resources = append(p.Resources, Resource{Type: typeVPCEndpoint, Name: "chemistry-network-endpoint-" + svc, ID: "chemistry-network-endpoint-" + svc + "-id", Inputs: map[string]any{
			"vpcId": chemVPC, "serviceName": "com.amazonaws." + ca + "." + svc, "vpcEndpointType": "Interface",
			"privateDnsEnabled": true,
			"subnetIds":         []any{"chemistry-network-private-ca-central-1a-id", "chemistry-network-private-ca-central-1b-id"},
			"securityGroupIds":  []any{"chemistry-network-endpoints-id"},
		}})
	}
}

// airGapped is a ruleCase mutation: the chemistry plan made air-gapped, then broken by breakIt.
func airGapped(breakIt func(*testing.T, *Plan)) func(*testing.T, *Plan) {
	return func(t *testing.T, p *Plan) {
		airGap(t, p)
		breakIt(t, p)
	}
}

// addRoute adds a Route resource to the plan.
func addRoute(name string, inputs map[string]any) func(*testing.T, *Plan) {
	return func(t *testing.T, p *Plan) {
		p.Resources = append(p.Resources, Resource{Type: typeRoute, Name: name, ID: name + "-id", Inputs: inputs})
	}
}

// airGapFindings returns the messages of the rule's findings.
func airGapFindings(p *Plan) []string {
	var out []string
	for _, f := range Check(p) {
		if f.Rule == airgapRul {
			out = append(out, f.Resource+": "+f.Message)
		}
	}
	return out
}

// The air-gapped plan of the chemistry stack passes every rule, this one included: the public
// route table keeps its route to the internet gateway (the public load balancer's), and the
// node subnets have none.
func TestAirGappedPlanPasses(t *testing.T) {
	p := loadPlan(t, "chemistry")
	airGap(t, p)
	if fs := Check(p); len(fs) != 0 {
		t.Errorf("findings on the air-gapped plan:\n%v", fs)
	}
	if len(p.byType(typeInternetGateway)) != 1 {
		t.Fatal("the air-gapped plan lost its internet gateway; the test would not show that the public route is allowed")
	}
}

// The rule holds only stacks that say network.nat: none.
func TestAirGapOnlyForNATNone(t *testing.T) {
	p := loadPlan(t, "chemistry")
	if got := airGapFindings(p); len(got) != 0 {
		t.Errorf("no Spec: %v", got)
	}
	p.Spec = &config.Spec{Region: ca, Network: config.Network{NAT: config.NATSingle}, Gateway: config.Gateway{DeletionProtection: true}}
	if got := airGapFindings(p); len(got) != 0 {
		t.Errorf("nat: single: %v", got)
	}
	// The NAT stack's plan, judged as air-gapped: the NAT gateway, both private default routes
	// and each missing endpoint a node calls (S3 is there; every strategy has DynamoDB's too,
	// removed here so that the case reads the same on fixtures rendered before it existed).
	p.Spec.Network.NAT = config.NATNone
	remove(p, typeVPCEndpoint, "chemistry-network-dynamodb")
	got := airGapFindings(p)
	want := []string{
		"NatGateway chemistry-network-nat-ca-central-1a: a NAT gateway",
		"Route chemistry-network-private-egress-ca-central-1a: routes 0.0.0.0/0 to NAT gateway chemistry-network-nat-ca-central-1a-id",
		"Route chemistry-network-private-egress-ca-central-1b: routes 0.0.0.0/0 to NAT gateway chemistry-network-nat-ca-central-1a-id",
		"no gateway endpoint for com.amazonaws.ca-central-1.dynamodb",
	}
	for _, svc := range []string{"ssm", "ssmmessages", "ec2messages", "secretsmanager", "autoscaling", "monitoring"} {
		want = append(want, "no interface endpoint for com.amazonaws.ca-central-1."+svc+" ")
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, w) }) {
			t.Errorf("no finding containing %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d findings, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

// Each way of breaking the air gap is found, with a message that says what and where.
func TestAirGapBreaks(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(*testing.T, *Plan)
		want   string
	}{
		{"NAT gateway", func(t *testing.T, p *Plan) {
			p.Resources = append(p.Resources, Resource{Type: typeNATGateway, Name: "stray-nat", ID: "stray-nat-id", Inputs: map[string]any{"subnetId": "chemistry-network-public-ca-central-1a-id"}})
		}, "NatGateway stray-nat: a NAT gateway in a stack with network.nat: none"},
		{"default route to the internet gateway", addRoute("leak", map[string]any{"routeTableId": privRTA, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": chemIGW}),
			"Route leak: routes 0.0.0.0/0 to internet gateway chemistry-network-igw-id from route table " + privRTA},
		{"narrow route to the internet gateway", addRoute("leak", map[string]any{"routeTableId": privRTB, "destinationCidrBlock": "52.94.0.0/16", "gatewayId": chemIGW}),
			"routes 52.94.0.0/16 to internet gateway"},
		{"route to an internet gateway outside the plan", addRoute("leak", map[string]any{"routeTableId": privRTB, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": "igw-0123456789abcdef0"}),
			"to internet gateway igw-0123456789abcdef0"},
		{"route to a NAT gateway outside the plan", addRoute("leak", map[string]any{"routeTableId": privRTA, "destinationCidrBlock": "0.0.0.0/0", "natGatewayId": "nat-0123456789abcdef0"}),
			"routes 0.0.0.0/0 to NAT gateway nat-0123456789abcdef0"},
		{"inline IPv6 route to an egress-only gateway", setKey(typeRouteTable, "chemistry-network-private-ca-central-1b", "routes", []any{map[string]any{"ipv6CidrBlock": "::/0", "egressOnlyGatewayId": "eigw-0123456789abcdef0"}}),
			"RouteTable chemistry-network-private-ca-central-1b: routes ::/0 to egress-only internet gateway eigw-0123456789abcdef0 for subnets [chemistry-network-private-ca-central-1b-id]"},
		{"nodes launched into a public subnet", setKey(typeASG, gpuASG, "vpcZoneIdentifiers", []any{"chemistry-network-public-ca-central-1a-id", "chemistry-network-private-ca-central-1b-id"}),
			"Route chemistry-network-public-internet: routes 0.0.0.0/0 to internet gateway chemistry-network-igw-id from route table chemistry-network-public-id of subnets [chemistry-network-public-ca-central-1a-id]"},
		{"node subnet on the main route table", func(t *testing.T, p *Plan) {
			remove(p, typeRTAssociation, "chemistry-network-private-ca-central-1a")
		}, "Subnet chemistry-network-private-ca-central-1a: a node subnet without a route table association"},
		{"no CloudWatch metrics endpoint", func(t *testing.T, p *Plan) { remove(p, typeVPCEndpoint, "chemistry-network-endpoint-monitoring") },
			"Vpc chemistry-network-vpc: no interface endpoint for com.amazonaws.ca-central-1.monitoring in this VPC: the agent publishes in-flight requests"},
		{"no DynamoDB endpoint", func(t *testing.T, p *Plan) { remove(p, typeVPCEndpoint, "chemistry-network-dynamodb") },
			"no gateway endpoint for com.amazonaws.ca-central-1.dynamodb in this VPC: LiteLLM's custom auth"},
		{"DynamoDB endpoint off one node route table", setKey(typeVPCEndpoint, "chemistry-network-dynamodb", "routeTableIds", []any{privRTA}),
			"no working gateway endpoint for com.amazonaws.ca-central-1.dynamodb in this VPC (chemistry-network-dynamodb is not on the node subnets' route tables [" + privRTB + "])"},
		{"S3 endpoint only on the public route table", setKey(typeVPCEndpoint, "chemistry-network-s3", "routeTableIds", []any{"chemistry-network-public-id"}),
			"chemistry-network-s3 is not on the node subnets' route tables [" + privRTA + " " + privRTB + "]"},
		{"S3 endpoint in another VPC", setKey(typeVPCEndpoint, "chemistry-network-s3", "vpcId", "vpc-0123456789abcdef0"),
			"no gateway endpoint for com.amazonaws.ca-central-1.s3 in this VPC"},
		{"Secrets Manager endpoint without private DNS", setKey(typeVPCEndpoint, "chemistry-network-endpoint-secretsmanager", "privateDnsEnabled", false),
			"chemistry-network-endpoint-secretsmanager has privateDnsEnabled off"},
		{"autoscaling endpoint without subnets", setKey(typeVPCEndpoint, "chemistry-network-endpoint-autoscaling", "subnetIds", []any{}),
			"chemistry-network-endpoint-autoscaling has no subnets"},
		{"SSM endpoint of the wrong kind", setKey(typeVPCEndpoint, "chemistry-network-endpoint-ssm", "vpcEndpointType", "GatewayLoadBalancer"),
			"chemistry-network-endpoint-ssm is a GatewayLoadBalancer endpoint; want Interface"},
		{"DynamoDB endpoint of the default kind is a gateway", func(t *testing.T, p *Plan) {
			delete(res(t, p, typeVPCEndpoint, "chemistry-network-dynamodb").Inputs, "vpcEndpointType")
			remove(p, typeVPCEndpoint, "chemistry-network-endpoint-ssmmessages")
		}, "no interface endpoint for com.amazonaws.ca-central-1.ssmmessages"},
		{"endpoint of another region", setKey(typeVPCEndpoint, "chemistry-network-endpoint-ec2messages", "serviceName", "com.amazonaws.us-east-1.ec2messages"),
			"no interface endpoint for com.amazonaws.ca-central-1.ec2messages"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := loadPlan(t, "chemistry")
			airGap(t, p)
			c.break_(t, p)
			got := airGapFindings(p)
			if !slices.ContainsFunc(got, func(g string) bool { return strings.Contains(g, c.want) }) {
				t.Errorf("want a finding containing %q, got\n%s", c.want, strings.Join(got, "\n"))
			}
		})
	}
}

// Every service a node calls is required; the endpoints kept only for operators' sessions are
// not, and a duplicate endpoint that works makes up for a broken one.
func TestAirGapRequiresExactlyTheNodeCalledServices(t *testing.T) {
	for _, svc := range append([]string{"s3", "dynamodb"}, airGappedInterfaces...) {
		t.Run(svc, func(t *testing.T) {
			p := loadPlan(t, "chemistry")
			airGap(t, p)
			name := "chemistry-network-endpoint-" + svc
			if svc == "s3" || svc == "dynamodb" {
				name = "chemistry-network-" + svc
			}
			res(t, p, typeVPCEndpoint, name)
			remove(p, typeVPCEndpoint, name)
			got := airGapFindings(p)
			required := slices.Contains(endpoints.Services(endpoints.NodeCalled()), svc)
			if wantRequired := !slices.Contains([]string{"kms", "logs", "sts"}, svc); required != wantRequired {
				t.Fatalf("endpoints.NodeCalled() has %s: %v, want %v", svc, required, wantRequired)
			}
			if required && (len(got) != 1 || !strings.Contains(got[0], "com.amazonaws.ca-central-1."+svc+" ")) {
				t.Errorf("without %s: %v, want one finding naming it", svc, got)
			}
			if !required && len(got) != 0 {
				t.Errorf("without %s, which no node calls: %v, want none", svc, got)
			}
		})
	}

	p := loadPlan(t, "chemistry")
	airGap(t, p)
	broken := res(t, p, typeVPCEndpoint, "chemistry-network-endpoint-monitoring")
	second := *broken
	second.Name, second.ID, second.Inputs = "second-monitoring", "second-monitoring-id", maps.Clone(broken.Inputs)
	broken.Inputs["privateDnsEnabled"] = false
	p.Resources = append(p.Resources, second)
	if got := airGapFindings(p); len(got) != 0 {
		t.Errorf("one broken and one working monitoring endpoint: %v, want none", got)
	}
}
