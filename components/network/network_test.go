package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"

	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
)

// Type tokens of the resources the component registers.
const (
	tComponent     = "llmsandbox:network:Network"
	tVpc           = "aws:ec2/vpc:Vpc"
	tSubnet        = "aws:ec2/subnet:Subnet"
	tIGW           = "aws:ec2/internetGateway:InternetGateway"
	tRouteTable    = "aws:ec2/routeTable:RouteTable"
	tRoute         = "aws:ec2/route:Route"
	tRTAssociation = "aws:ec2/routeTableAssociation:RouteTableAssociation"
	tEIP           = "aws:ec2/eip:Eip"
	tNAT           = "aws:ec2/natGateway:NatGateway"
	tEndpoint      = "aws:ec2/vpcEndpoint:VpcEndpoint"
	tSG            = "aws:ec2/securityGroup:SecurityGroup"
	tDefaultSG     = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
	tFlowLog       = "aws:ec2/flowLog:FlowLog"
	tLogGroup      = "aws:cloudwatch/logGroup:LogGroup"
	tRole          = "aws:iam/role:Role"
	tRolePolicy    = "aws:iam/rolePolicy:RolePolicy"
)

const (
	region  = "ca-central-1"
	account = mockaws.DefaultAccountID
	azA     = region + "a"
	azB     = region + "b"
	azC     = region + "c"
)

// id is the ID the mock monitor gives the resource with the logical name.
func id(name string) string { return name + "-id" }

// mockARN is the ARN the mock monitor gives a resource of the AWS service with the logical name.
func mockARN(service, name string) string {
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, region, account, id(name))
}

// run builds the network "chem" under the mock monitor and returns what was registered.
func run(t *testing.T, args *NetworkArgs) (*mockaws.Monitor, *Network, error) {
	t.Helper()
	m := mockaws.New(region)
	var nw *Network
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		var err error
		nw, err = NewNetwork(ctx, "chem", args)
		return err
	})
	return m, nw, err
}

// mustRun is run for arguments that must be accepted.
func mustRun(t *testing.T, args *NetworkArgs) (*mockaws.Monitor, *Network) {
	t.Helper()
	m, nw, err := run(t, args)
	if err != nil {
		t.Fatalf("NewNetwork: %v", err)
	}
	return m, nw
}

// inputs returns the plain inputs of the named resource, failing the test when it is missing.
var inputs = mocktest.Named

func names(rs []mockaws.Resource) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Name)
	}
	sort.Strings(out)
	return out
}

// strs turns a plain array input into strings (nil when the input is absent).
func strs(t *testing.T, v any) []string {
	t.Helper()
	if v == nil {
		return nil
	}
	arr, ok := v.([]any)
	if !ok {
		t.Fatalf("want an array, got %T %v", v, v)
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// defaultRoutes returns, per route table ID, the targets of its 0.0.0.0/0 routes, whether
// registered as separate Route resources or inline on the table.
func defaultRoutes(t *testing.T, m *mockaws.Monitor) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	target := func(in map[string]any) string {
		for _, k := range []string{"natGatewayId", "gatewayId", "networkInterfaceId", "transitGatewayId", "vpcEndpointId"} {
			if v, ok := in[k].(string); ok && v != "" {
				return k + "=" + v
			}
		}
		return "?"
	}
	for _, r := range m.ByType(tRoute) {
		in := mockaws.Plain(r.Inputs)
		if in["destinationCidrBlock"] == "0.0.0.0/0" {
			rt := fmt.Sprint(in["routeTableId"])
			out[rt] = append(out[rt], target(in))
		}
	}
	for _, r := range m.ByType(tRouteTable) {
		in := mockaws.Plain(r.Inputs)
		routes, _ := in["routes"].([]any)
		for _, route := range routes {
			if rm, ok := route.(map[string]any); ok && rm["cidrBlock"] == "0.0.0.0/0" {
				out[id(r.Name)] = append(out[id(r.Name)], target(rm))
			}
		}
	}
	return out
}

func TestSubnetCIDR(t *testing.T) {
	tests := []struct {
		parent    string
		extraBits int
		index     int
		want      string
	}{
		// /16: private blocks (2 extra bits) and public blocks 12.. (4 extra bits).
		{"10.20.0.0/16", 2, 0, "10.20.0.0/18"},
		{"10.20.0.0/16", 2, 1, "10.20.64.0/18"},
		{"10.20.0.0/16", 2, 2, "10.20.128.0/18"},
		{"10.20.0.0/16", 4, 12, "10.20.192.0/20"},
		{"10.20.0.0/16", 4, 13, "10.20.208.0/20"},
		{"10.20.0.0/16", 4, 14, "10.20.224.0/20"},
		{"10.20.0.0/16", 4, 15, "10.20.240.0/20"},
		// /22.
		{"172.16.4.0/22", 2, 0, "172.16.4.0/24"},
		{"172.16.4.0/22", 2, 1, "172.16.5.0/24"},
		{"172.16.4.0/22", 2, 2, "172.16.6.0/24"},
		{"172.16.4.0/22", 4, 12, "172.16.7.0/26"},
		{"172.16.4.0/22", 4, 13, "172.16.7.64/26"},
		{"172.16.4.0/22", 4, 14, "172.16.7.128/26"},
		// Edges.
		{"10.0.0.0/16", 0, 0, "10.0.0.0/16"},
		{"10.0.0.0/24", 8, 255, "10.0.0.255/32"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s+%d#%d", tt.parent, tt.extraBits, tt.index), func(t *testing.T) {
			got, err := subnetCIDR(netip.MustParsePrefix(tt.parent), tt.extraBits, tt.index)
			if err != nil {
				t.Fatalf("subnetCIDR: %v", err)
			}
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSubnetCIDRRejects(t *testing.T) {
	tests := []struct {
		name      string
		parent    netip.Prefix
		extraBits int
		index     int
	}{
		{"index past the last block", netip.MustParsePrefix("10.0.0.0/16"), 2, 4},
		{"negative index", netip.MustParsePrefix("10.0.0.0/16"), 2, -1},
		{"longer than /32", netip.MustParsePrefix("10.0.0.0/30"), 3, 0},
		{"negative extra bits", netip.MustParsePrefix("10.0.0.0/16"), -1, 0},
		{"host bits set", netip.MustParsePrefix("10.0.0.1/16"), 2, 0},
		{"IPv6", netip.MustParsePrefix("fd00::/56"), 2, 0},
		{"zero prefix", netip.Prefix{}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := subnetCIDR(tt.parent, tt.extraBits, tt.index); err == nil {
				t.Errorf("subnetCIDR(%s, %d, %d) = %s, want an error", tt.parent, tt.extraBits, tt.index, got)
			}
		})
	}
}

func TestSubnetLayout(t *testing.T) {
	tests := []struct {
		vpc           string
		private, pubs []string
	}{
		{
			"10.20.0.0/16",
			[]string{"10.20.0.0/18", "10.20.64.0/18", "10.20.128.0/18"},
			[]string{"10.20.192.0/20", "10.20.208.0/20", "10.20.224.0/20"},
		},
		{
			"172.16.4.0/22",
			[]string{"172.16.4.0/24", "172.16.5.0/24", "172.16.6.0/24"},
			[]string{"172.16.7.0/26", "172.16.7.64/26", "172.16.7.128/26"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.vpc, func(t *testing.T) {
			vpc := netip.MustParsePrefix(tt.vpc)
			private, public, err := subnetLayout(vpc, 3)
			if err != nil {
				t.Fatalf("subnetLayout: %v", err)
			}
			if got := prefixStrings(private); !slices.Equal(got, tt.private) {
				t.Errorf("private = %v, want %v", got, tt.private)
			}
			if got := prefixStrings(public); !slices.Equal(got, tt.pubs) {
				t.Errorf("public = %v, want %v", got, tt.pubs)
			}
			all := append(slices.Clone(private), public...)
			for i, a := range all {
				if !vpc.Contains(a.Addr()) || a.Bits() < vpc.Bits() {
					t.Errorf("%s is not inside the VPC %s", a, vpc)
				}
				for _, b := range all[i+1:] {
					if a.Overlaps(b) {
						t.Errorf("%s overlaps %s", a, b)
					}
				}
			}
			two, _, err := subnetLayout(vpc, 2)
			if err != nil || !slices.Equal(prefixStrings(two), tt.private[:2]) {
				t.Errorf("2 AZs: private = %v (err %v), want the first two of %v", two, err, tt.private)
			}
		})
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// TestSubnetsTwoAZs checks the default: two AZs, each with a private and a public subnet named
// by AZ, with the layout's CIDRs, no automatic public IPs, and the struct fields in AZ order.
func TestSubnetsTwoAZs(t *testing.T) {
	m, nw := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", Region: region})

	want := map[string]struct{ cidr, az string }{
		"chem-private-" + azA: {"10.20.0.0/18", azA},
		"chem-private-" + azB: {"10.20.64.0/18", azB},
		"chem-public-" + azA:  {"10.20.192.0/20", azA},
		"chem-public-" + azB:  {"10.20.208.0/20", azB},
	}
	if got := names(m.ByType(tSubnet)); len(got) != len(want) {
		t.Fatalf("subnets = %v, want the %d of %v", got, len(want), want)
	}
	for name, w := range want {
		in := inputs(t, m, tSubnet, name)
		if in["cidrBlock"] != w.cidr || in["availabilityZone"] != w.az {
			t.Errorf("%s: cidrBlock %v in %v, want %s in %s", name, in["cidrBlock"], in["availabilityZone"], w.cidr, w.az)
		}
		if in["vpcId"] != id("chem-vpc") {
			t.Errorf("%s: vpcId = %v, want %s", name, in["vpcId"], id("chem-vpc"))
		}
		if in["mapPublicIpOnLaunch"] != false {
			t.Errorf("%s: mapPublicIpOnLaunch = %v, want false", name, in["mapPublicIpOnLaunch"])
		}
		if tags, _ := in["tags"].(map[string]any); tags["Name"] != name {
			t.Errorf("%s: Name tag = %v, want %s", name, tags["Name"], name)
		}
	}

	if !slices.Equal(nw.AvailabilityZones, []string{azA, azB}) {
		t.Errorf("AvailabilityZones = %v, want [%s %s]", nw.AvailabilityZones, azA, azB)
	}
	for _, az := range []string{azA, azB} {
		if nw.PublicSubnets[az] == nil || nw.PrivateSubnets[az] == nil {
			t.Errorf("subnet maps lack %s: public %v, private %v", az, nw.PublicSubnets, nw.PrivateSubnets)
		}
	}

	vpc := inputs(t, m, tVpc, "chem-vpc")
	if vpc["cidrBlock"] != "10.20.0.0/16" || vpc["enableDnsSupport"] != true || vpc["enableDnsHostnames"] != true {
		t.Errorf("VPC inputs = %v, want the CIDR with DNS support and hostnames", vpc)
	}
}

// TestSubnetsThreeAZs checks three AZs on a /22: /24 private and /26 public subnets.
func TestSubnetsThreeAZs(t *testing.T) {
	m, nw := mustRun(t, &NetworkArgs{CIDR: "172.16.4.0/22", AZCount: 3, Region: region})

	want := map[string]struct{ cidr, az string }{
		"chem-private-" + azA: {"172.16.4.0/24", azA},
		"chem-private-" + azB: {"172.16.5.0/24", azB},
		"chem-private-" + azC: {"172.16.6.0/24", azC},
		"chem-public-" + azA:  {"172.16.7.0/26", azA},
		"chem-public-" + azB:  {"172.16.7.64/26", azB},
		"chem-public-" + azC:  {"172.16.7.128/26", azC},
	}
	if got := m.ByType(tSubnet); len(got) != len(want) {
		t.Fatalf("subnets = %v, want %d", names(got), len(want))
	}
	for name, w := range want {
		in := inputs(t, m, tSubnet, name)
		if in["cidrBlock"] != w.cidr || in["availabilityZone"] != w.az {
			t.Errorf("%s: %v in %v, want %s in %s", name, in["cidrBlock"], in["availabilityZone"], w.cidr, w.az)
		}
	}
	if !slices.Equal(nw.AvailabilityZones, []string{azA, azB, azC}) {
		t.Errorf("AvailabilityZones = %v", nw.AvailabilityZones)
	}
}

// TestOutputs checks the flat outputs: IDs in AZ order.
func TestOutputs(t *testing.T) {
	_, nw := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", AZCount: 3, Region: region})

	await := func(o pulumi.Output) any {
		t.Helper()
		r, err := internals.UnsafeAwaitOutput(context.Background(), o)
		if err != nil || !r.Known {
			t.Fatalf("await output: known %v, err %v", r.Known, err)
		}
		return r.Value
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"VpcID", await(nw.VpcID), pulumi.ID(id("chem-vpc"))},
		{"CIDR", await(nw.CIDR), "10.20.0.0/16"},
		{"S3EndpointID", await(nw.S3EndpointID), pulumi.ID(id("chem-s3"))},
		{"PublicSubnetIDs", await(nw.PublicSubnetIDs), []string{id("chem-public-" + azA), id("chem-public-" + azB), id("chem-public-" + azC)}},
		{"PrivateSubnetIDs", await(nw.PrivateSubnetIDs), []string{id("chem-private-" + azA), id("chem-private-" + azB), id("chem-private-" + azC)}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

// TestNATSingle checks one EIP and one NAT gateway in the first AZ's public subnet, and that
// every private route table sends 0.0.0.0/0 to it.
func TestNATSingle(t *testing.T) {
	m, nw := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", AZCount: 3, NATStrategy: NATSingle, Region: region})

	if got := names(m.ByType(tNAT)); !slices.Equal(got, []string{"chem-nat-" + azA}) {
		t.Fatalf("NAT gateways = %v, want exactly chem-nat-%s", got, azA)
	}
	if got := names(m.ByType(tEIP)); !slices.Equal(got, []string{"chem-nat-" + azA}) {
		t.Fatalf("EIPs = %v, want exactly chem-nat-%s", got, azA)
	}
	nat := inputs(t, m, tNAT, "chem-nat-"+azA)
	if nat["subnetId"] != id("chem-public-"+azA) || nat["allocationId"] != id("chem-nat-"+azA) {
		t.Errorf("NAT gateway inputs = %v, want the public subnet of %s and its EIP", nat, azA)
	}
	if eip := inputs(t, m, tEIP, "chem-nat-"+azA); eip["domain"] != "vpc" {
		t.Errorf("EIP domain = %v, want vpc", eip["domain"])
	}
	if len(nw.NATGateways) != 1 || nw.NATGateways[azA] == nil {
		t.Errorf("NATGateways = %v, want one keyed %s", nw.NATGateways, azA)
	}

	routes := defaultRoutes(t, m)
	for _, az := range []string{azA, azB, azC} {
		rt := id("chem-private-" + az)
		if got, want := routes[rt], []string{"natGatewayId=" + id("chem-nat-"+azA)}; !slices.Equal(got, want) {
			t.Errorf("default routes of %s = %v, want %v", rt, got, want)
		}
	}
	checkPrivateAssociations(t, m, []string{azA, azB, azC})
}

// TestNATPerAZ checks one NAT gateway per AZ, each in its AZ's public subnet, and each private
// route table routing to the NAT gateway of its own AZ.
func TestNATPerAZ(t *testing.T) {
	azs := []string{azA, azB, azC}
	m, nw := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", AZCount: 3, NATStrategy: NATPerAZ, Region: region})

	var want []string
	for _, az := range azs {
		want = append(want, "chem-nat-"+az)
	}
	if got := names(m.ByType(tNAT)); !slices.Equal(got, want) {
		t.Fatalf("NAT gateways = %v, want %v", got, want)
	}
	if got := names(m.ByType(tEIP)); !slices.Equal(got, want) {
		t.Fatalf("EIPs = %v, want %v", got, want)
	}
	routes := defaultRoutes(t, m)
	for _, az := range azs {
		nat := inputs(t, m, tNAT, "chem-nat-"+az)
		if nat["subnetId"] != id("chem-public-"+az) || nat["allocationId"] != id("chem-nat-"+az) {
			t.Errorf("NAT gateway in %s: inputs %v, want its own public subnet and EIP", az, nat)
		}
		if nw.NATGateways[az] == nil {
			t.Errorf("NATGateways lacks %s", az)
		}
		rt := id("chem-private-" + az)
		if got, want := routes[rt], []string{"natGatewayId=" + id("chem-nat-"+az)}; !slices.Equal(got, want) {
			t.Errorf("default routes of %s = %v, want %v", rt, got, want)
		}
	}
	checkPrivateAssociations(t, m, azs)
}

// checkPrivateAssociations checks that each private subnet is associated with its own AZ's
// private route table, and each public subnet with the public one.
func checkPrivateAssociations(t *testing.T, m *mockaws.Monitor, azs []string) {
	t.Helper()
	assoc := map[string]string{}
	for _, r := range m.ByType(tRTAssociation) {
		in := mockaws.Plain(r.Inputs)
		assoc[fmt.Sprint(in["subnetId"])] = fmt.Sprint(in["routeTableId"])
	}
	for _, az := range azs {
		if got, want := assoc[id("chem-private-"+az)], id("chem-private-"+az); got != want {
			t.Errorf("private subnet in %s uses route table %q, want %q", az, got, want)
		}
		if got, want := assoc[id("chem-public-"+az)], id("chem-public"); got != want {
			t.Errorf("public subnet in %s uses route table %q, want %q", az, got, want)
		}
	}
}

// airGappedInterfaceServices are the interface endpoints of a NATNone network, in creation
// order: Session Manager's three, the master key, lifecycle actions, CloudWatch metrics, and
// KMS, CloudWatch Logs and STS for operators' sessions.
var airGappedInterfaceServices = []string{"ssm", "ssmmessages", "ec2messages", "secretsmanager", "autoscaling", "monitoring", "kms", "logs", "sts"}

// TestNATNone checks the air-gapped network: no NAT, no EIP, no default route in private
// tables, the nine interface endpoints with private DNS in the private subnets (CloudWatch
// metrics among them), and their security group admitting only HTTPS from the VPC CIDR.
func TestNATNone(t *testing.T) {
	azs := []string{azA, azB}
	m, nw := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", NATStrategy: NATNone, Region: region})

	if n, e := len(m.ByType(tNAT)), len(m.ByType(tEIP)); n != 0 || e != 0 {
		t.Errorf("%d NAT gateways and %d EIPs, want none", n, e)
	}
	if len(nw.NATGateways) != 0 {
		t.Errorf("NATGateways = %v, want empty", nw.NATGateways)
	}
	routes := defaultRoutes(t, m)
	for _, az := range azs {
		if got := routes[id("chem-private-"+az)]; len(got) != 0 {
			t.Errorf("private route table in %s has default routes %v, want none", az, got)
		}
	}
	// The public ALB still needs the internet gateway.
	if got, want := routes[id("chem-public")], []string{"gatewayId=" + id("chem-igw")}; !slices.Equal(got, want) {
		t.Errorf("public default routes = %v, want %v", got, want)
	}
	checkPrivateAssociations(t, m, azs)

	sg := inputs(t, m, tSG, "chem-endpoints")
	ingress, _ := sg["ingress"].([]any)
	if len(ingress) != 1 {
		t.Fatalf("endpoint SG ingress = %v, want exactly one rule", sg["ingress"])
	}
	rule, _ := ingress[0].(map[string]any)
	if rule["protocol"] != "tcp" || rule["fromPort"] != 443.0 || rule["toPort"] != 443.0 ||
		!slices.Equal(strs(t, rule["cidrBlocks"]), []string{"10.20.0.0/16"}) ||
		rule["securityGroups"] != nil || rule["ipv6CidrBlocks"] != nil || rule["prefixListIds"] != nil || rule["self"] == true {
		t.Errorf("endpoint SG ingress rule = %v, want TCP 443 from 10.20.0.0/16 only", rule)
	}
	if egress, ok := sg["egress"]; !ok || len(strs(t, egress)) != 0 {
		t.Errorf("endpoint SG egress = %v (set %v), want an explicit empty list", egress, ok)
	}
	if sg["vpcId"] != id("chem-vpc") {
		t.Errorf("endpoint SG vpcId = %v", sg["vpcId"])
	}

	services := airGappedInterfaceServices
	wantSubnets := []string{id("chem-private-" + azA), id("chem-private-" + azB)}
	for _, svc := range services {
		name := "chem-endpoint-" + svc
		in := inputs(t, m, tEndpoint, name)
		if in["serviceName"] != "com.amazonaws."+region+"."+svc || in["vpcEndpointType"] != "Interface" || in["privateDnsEnabled"] != true {
			t.Errorf("%s: service %v type %v privateDns %v, want com.amazonaws.%s.%s Interface true",
				name, in["serviceName"], in["vpcEndpointType"], in["privateDnsEnabled"], region, svc)
		}
		if got := strs(t, in["subnetIds"]); !slices.Equal(got, wantSubnets) {
			t.Errorf("%s: subnetIds = %v, want %v", name, got, wantSubnets)
		}
		if got := strs(t, in["securityGroupIds"]); !slices.Equal(got, []string{id("chem-endpoints")}) {
			t.Errorf("%s: securityGroupIds = %v, want the endpoint SG", name, got)
		}
		if nw.InterfaceEndpoints[svc] == nil {
			t.Errorf("InterfaceEndpoints lacks %q", svc)
		}
	}
	if got := len(m.ByType(tEndpoint)); got != len(services)+2 {
		t.Errorf("%d VPC endpoints, want %d interface + the S3 and DynamoDB gateways", got, len(services))
	}
	if len(nw.InterfaceEndpoints) != len(services) {
		t.Errorf("InterfaceEndpoints has %d entries, want %d", len(nw.InterfaceEndpoints), len(services))
	}
}

// TestGatewayEndpoints checks that every strategy gets the S3 gateway endpoint on all private
// route tables and the public one, and the DynamoDB gateway endpoint on the private route
// tables only, and that only NATNone gets interface endpoints.
func TestGatewayEndpoints(t *testing.T) {
	for _, strategy := range []NATStrategy{NATSingle, NATPerAZ, NATNone} {
		t.Run(string(strategy), func(t *testing.T) {
			m, nw := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", AZCount: 3, NATStrategy: strategy, Region: region})

			s3 := inputs(t, m, tEndpoint, "chem-s3")
			if s3["serviceName"] != "com.amazonaws."+region+".s3" || s3["vpcEndpointType"] != "Gateway" || s3["vpcId"] != id("chem-vpc") {
				t.Errorf("S3 endpoint inputs = %v, want the Gateway endpoint of com.amazonaws.%s.s3 in the VPC", s3, region)
			}
			got := strs(t, s3["routeTableIds"])
			sort.Strings(got)
			want := []string{id("chem-private-" + azA), id("chem-private-" + azB), id("chem-private-" + azC), id("chem-public")}
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("S3 endpoint routeTableIds = %v, want %v", got, want)
			}

			ddb := inputs(t, m, tEndpoint, "chem-dynamodb")
			if ddb["serviceName"] != "com.amazonaws."+region+".dynamodb" || ddb["vpcEndpointType"] != "Gateway" || ddb["vpcId"] != id("chem-vpc") {
				t.Errorf("DynamoDB endpoint inputs = %v, want the Gateway endpoint of com.amazonaws.%s.dynamodb in the VPC", ddb, region)
			}
			got = strs(t, ddb["routeTableIds"])
			wantPrivate := []string{id("chem-private-" + azA), id("chem-private-" + azB), id("chem-private-" + azC)}
			if !slices.Equal(got, wantPrivate) {
				t.Errorf("DynamoDB endpoint routeTableIds = %v, want the private route tables in AZ order %v", got, wantPrivate)
			}
			if len(nw.GatewayEndpoints) != 2 || nw.GatewayEndpoints["s3"] == nil || nw.GatewayEndpoints["dynamodb"] == nil {
				t.Errorf("GatewayEndpoints = %v, want s3 and dynamodb", nw.GatewayEndpoints)
			}

			interfaces := 0
			for _, r := range m.ByType(tEndpoint) {
				if mockaws.Plain(r.Inputs)["vpcEndpointType"] == "Interface" {
					interfaces++
				}
			}
			if wantIf := map[NATStrategy]int{NATNone: 9}[strategy]; interfaces != wantIf || len(nw.InterfaceEndpoints) != wantIf {
				t.Errorf("%d interface endpoints (%d in the struct), want %d", interfaces, len(nw.InterfaceEndpoints), wantIf)
			}
			if _, ok := m.ByName(tSG, "chem-endpoints"); ok != (strategy == NATNone) {
				t.Errorf("endpoint security group present = %v, want %v", ok, strategy == NATNone)
			}
		})
	}
}

// TestEndpointsListsWhatIsCreated checks that Endpoints names exactly the VPC endpoints the
// component registers for each strategy (the default included), with their kind, so that a
// plan or a rule that lists them from Endpoints tells the truth.
func TestEndpointsListsWhatIsCreated(t *testing.T) {
	for _, strategy := range []NATStrategy{"", NATSingle, NATPerAZ, NATNone} {
		t.Run("strategy="+string(strategy), func(t *testing.T) {
			m, _ := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", NATStrategy: strategy, Region: region})
			created := map[string]string{} // service name -> endpoint type
			for _, r := range m.ByType(tEndpoint) {
				in := mockaws.Plain(r.Inputs)
				created[fmt.Sprint(in["serviceName"])] = fmt.Sprint(in["vpcEndpointType"])
			}
			listed := map[string]string{}
			for _, e := range Endpoints(strategy) {
				listed["com.amazonaws."+region+"."+e.Service] = string(e.Kind)
			}
			if !reflect.DeepEqual(created, listed) {
				t.Errorf("created %v, Endpoints lists %v", created, listed)
			}
			wantCount := map[NATStrategy]int{NATNone: 11}[strategy]
			if wantCount == 0 {
				wantCount = 2
			}
			if len(created) != wantCount {
				t.Errorf("%d endpoints, want %d", len(created), wantCount)
			}
		})
	}
}

// policyDocument is a flow-log role's policy document as AWS reads it, with the field types the
// component writes.
type policyDocument struct {
	Version   string
	Statement []policyStatement
}

// policyStatement is one statement of a flow-log role's policy.
type policyStatement struct {
	Effect    string
	Principal map[string]string
	Action    []string
	Resource  []string
	Condition map[string]map[string]string
}

// TestFlowLogs checks the flow log (ALL traffic of the VPC into the log group, through the
// role), the log group's retention and KMS key, and the role's trust and inline policies.
func TestFlowLogs(t *testing.T) {
	const kmsKey = "arn:aws:kms:ca-central-1:123456789012:key/0b1f6d2e-5c4a-4f3e-9a8b-7c6d5e4f3a2b"
	m, _ := mustRun(t, &NetworkArgs{
		CIDR: "10.20.0.0/16", Region: region,
		FlowLogRetentionDays: 365, FlowLogKMSKeyArn: pulumi.String(kmsKey),
	})
	groupArn := mockARN("cloudwatch", "chem-flow-logs")
	roleArn := "arn:aws:iam::123456789012:role/" + id("chem-flow-logs")

	if got := len(m.ByType(tFlowLog)); got != 1 {
		t.Fatalf("%d flow logs, want 1", got)
	}
	fl := inputs(t, m, tFlowLog, "chem-flow-logs")
	want := map[string]any{
		"vpcId": id("chem-vpc"), "trafficType": "ALL", "logDestinationType": "cloud-watch-logs",
		"logDestination": groupArn, "iamRoleArn": roleArn,
	}
	for k, v := range want {
		if fl[k] != v {
			t.Errorf("flow log %s = %v, want %v", k, fl[k], v)
		}
	}

	lg := inputs(t, m, tLogGroup, "chem-flow-logs")
	if lg["retentionInDays"] != 365.0 || lg["kmsKeyId"] != kmsKey {
		t.Errorf("log group retention %v key %v, want 365 and %s", lg["retentionInDays"], lg["kmsKeyId"], kmsKey)
	}

	var trust policyDocument
	if err := json.Unmarshal([]byte(fmt.Sprint(inputs(t, m, tRole, "chem-flow-logs")["assumeRolePolicy"])), &trust); err != nil {
		t.Fatalf("trust policy: %v", err)
	}
	wantTrust := []policyStatement{{
		Effect:    "Allow",
		Principal: map[string]string{"Service": "vpc-flow-logs.amazonaws.com"},
		Action:    []string{"sts:AssumeRole"},
		Condition: map[string]map[string]string{
			"StringEquals": {"aws:SourceAccount": account},
			"ArnLike":      {"aws:SourceArn": "arn:aws:ec2:" + region + ":" + account + ":vpc-flow-log/*"},
		},
	}}
	if !reflect.DeepEqual(trust.Statement, wantTrust) {
		t.Errorf("trust policy statements = %+v, want %+v", trust.Statement, wantTrust)
	}

	rp := inputs(t, m, tRolePolicy, "chem-flow-logs")
	if rp["role"] != id("chem-flow-logs") {
		t.Errorf("role policy is on %v, want the flow-log role", rp["role"])
	}
	var policy policyDocument
	if err := json.Unmarshal([]byte(fmt.Sprint(rp["policy"])), &policy); err != nil {
		t.Fatalf("role policy %v: %v", rp["policy"], err)
	}
	if len(policy.Statement) == 0 {
		t.Fatal("role policy has no statements")
	}
	for _, st := range policy.Statement {
		if !slices.Equal(st.Resource, []string{groupArn, groupArn + ":*"}) {
			t.Errorf("role policy resources = %v, want only the log group %s and its streams", st.Resource, groupArn)
		}
		if !slices.Contains(st.Action, "logs:PutLogEvents") || !slices.Contains(st.Action, "logs:CreateLogStream") {
			t.Errorf("role policy actions = %v, want log stream creation and writes", st.Action)
		}
		for _, a := range st.Action {
			if !strings.HasPrefix(a, "logs:") || strings.Contains(a, "*") || a == "logs:CreateLogGroup" {
				t.Errorf("role policy grants %q, want only writes to the existing group", a)
			}
		}
	}
}

// TestDefaults checks that zero-valued optional args give 2 AZs, one NAT gateway, 90-day flow
// logs and a log group without a customer key.
func TestDefaults(t *testing.T) {
	m, nw := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", Region: region})
	if len(nw.AvailabilityZones) != 2 {
		t.Errorf("AvailabilityZones = %v, want 2", nw.AvailabilityZones)
	}
	if got := names(m.ByType(tNAT)); !slices.Equal(got, []string{"chem-nat-" + azA}) {
		t.Errorf("NAT gateways = %v, want the single one in %s", got, azA)
	}
	lg := inputs(t, m, tLogGroup, "chem-flow-logs")
	if lg["retentionInDays"] != 90.0 {
		t.Errorf("retentionInDays = %v, want 90", lg["retentionInDays"])
	}
	if v, ok := lg["kmsKeyId"]; ok && v != nil {
		t.Errorf("kmsKeyId = %v, want none", v)
	}
}

// TestDefaultSecurityGroupClosed checks that the VPC's default security group is managed with
// no ingress and no egress rules.
func TestDefaultSecurityGroupClosed(t *testing.T) {
	m, _ := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", Region: region})
	if got := len(m.ByType(tDefaultSG)); got != 1 {
		t.Fatalf("%d default security groups, want 1", got)
	}
	in := inputs(t, m, tDefaultSG, "chem-default-sg")
	if in["vpcId"] != id("chem-vpc") {
		t.Errorf("vpcId = %v, want %s", in["vpcId"], id("chem-vpc"))
	}
	for _, k := range []string{"ingress", "egress"} {
		v, ok := in[k]
		if !ok {
			t.Errorf("%s is not set: the provider would leave existing rules alone; want an explicit empty list", k)
			continue
		}
		if rules := strs(t, v); len(rules) != 0 {
			t.Errorf("%s = %v, want no rules", k, rules)
		}
	}
}

// TestChildNamesAndParents checks the exact set of children (names from the component name,
// roles and AZ or service keys, never indices) and that each one's parent is the component.
func TestChildNamesAndParents(t *testing.T) {
	for _, strategy := range []NATStrategy{NATSingle, NATPerAZ, NATNone} {
		t.Run(string(strategy), func(t *testing.T) {
			m, _ := mustRun(t, &NetworkArgs{CIDR: "10.20.0.0/16", NATStrategy: strategy, Region: region})

			want := []string{
				tVpc + " chem-vpc",
				tDefaultSG + " chem-default-sg",
				tIGW + " chem-igw",
				tRouteTable + " chem-public",
				tRoute + " chem-public-internet",
				tEndpoint + " chem-s3",
				tEndpoint + " chem-dynamodb",
				tLogGroup + " chem-flow-logs",
				tRole + " chem-flow-logs",
				tRolePolicy + " chem-flow-logs",
				tFlowLog + " chem-flow-logs",
			}
			for _, az := range []string{azA, azB} {
				want = append(want,
					tSubnet+" chem-private-"+az,
					tSubnet+" chem-public-"+az,
					tRTAssociation+" chem-public-"+az,
					tRouteTable+" chem-private-"+az,
					tRTAssociation+" chem-private-"+az,
				)
			}
			natAZs := map[NATStrategy][]string{NATSingle: {azA}, NATPerAZ: {azA, azB}}[strategy]
			for _, az := range []string{azA, azB} {
				if strategy != NATNone {
					want = append(want, tRoute+" chem-private-egress-"+az)
				}
			}
			for _, az := range natAZs {
				want = append(want, tEIP+" chem-nat-"+az, tNAT+" chem-nat-"+az)
			}
			if strategy == NATNone {
				want = append(want, tSG+" chem-endpoints")
				for _, svc := range airGappedInterfaceServices {
					want = append(want, tEndpoint+" chem-endpoint-"+svc)
				}
			}
			mocktest.Children(t, m, tComponent, "chem", want)
		})
	}
}

// TestInvalidArgs checks that each bad argument is refused with an error naming its field,
// before anything (not even the component) is registered.
func TestInvalidArgs(t *testing.T) {
	valid := func(edit func(*NetworkArgs)) *NetworkArgs {
		a := &NetworkArgs{CIDR: "10.20.0.0/16", Region: region}
		edit(a)
		return a
	}
	tests := []struct {
		name  string
		args  *NetworkArgs
		field string
	}{
		{"nil args", nil, "NetworkArgs"},
		{"empty CIDR", valid(func(a *NetworkArgs) { a.CIDR = "" }), "CIDR"},
		{"bad CIDR", valid(func(a *NetworkArgs) { a.CIDR = "10.20.0.0" }), "CIDR"},
		{"garbage CIDR", valid(func(a *NetworkArgs) { a.CIDR = "chemistry" }), "CIDR"},
		{"/8", valid(func(a *NetworkArgs) { a.CIDR = "10.0.0.0/8" }), "CIDR"},
		{"/15", valid(func(a *NetworkArgs) { a.CIDR = "10.0.0.0/15" }), "CIDR"},
		{"/23", valid(func(a *NetworkArgs) { a.CIDR = "10.0.0.0/23" }), "CIDR"},
		{"/24", valid(func(a *NetworkArgs) { a.CIDR = "10.0.0.0/24" }), "CIDR"},
		{"host bits", valid(func(a *NetworkArgs) { a.CIDR = "10.20.1.0/16" }), "CIDR"},
		{"IPv6", valid(func(a *NetworkArgs) { a.CIDR = "fd00:1::/56" }), "CIDR"},
		{"AZCount 1", valid(func(a *NetworkArgs) { a.AZCount = 1 }), "AZCount"},
		{"AZCount 4", valid(func(a *NetworkArgs) { a.AZCount = 4 }), "AZCount"},
		{"AZCount negative", valid(func(a *NetworkArgs) { a.AZCount = -2 }), "AZCount"},
		{"unknown strategy", valid(func(a *NetworkArgs) { a.NATStrategy = "perAZ" }), "NATStrategy"},
		{"empty region", valid(func(a *NetworkArgs) { a.Region = "" }), "Region"},
		{"malformed region", valid(func(a *NetworkArgs) { a.Region = "Canada Central" }), "Region"},
		{"retention not accepted by CloudWatch", valid(func(a *NetworkArgs) { a.FlowLogRetentionDays = 10 }), "FlowLogRetentionDays"},
		{"negative retention", valid(func(a *NetworkArgs) { a.FlowLogRetentionDays = -1 }), "FlowLogRetentionDays"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, nw, err := run(t, tt.args)
			mocktest.Refused(t, m, err, `network "chem"`, tt.field)
			if nw != nil {
				t.Errorf("NewNetwork returned a network with its error")
			}
		})
	}
}

// TestInvalidArgsAllReported checks that every bad field is reported in one error.
func TestInvalidArgsAllReported(t *testing.T) {
	_, _, err := run(t, &NetworkArgs{CIDR: "10.0.0.0/8", AZCount: 5, NATStrategy: "both", FlowLogRetentionDays: 2})
	mocktest.ReportsAll(t, err, "CIDR", "AZCount", "NATStrategy", "Region", "FlowLogRetentionDays")
}

// TestRegionMismatch checks that a Region other than the provider's is refused, since the
// endpoint service names would then name the wrong region, and that no child is created.
func TestRegionMismatch(t *testing.T) {
	m, _, err := run(t, &NetworkArgs{CIDR: "10.20.0.0/16", Region: "us-east-1"})
	if err == nil || !strings.Contains(err.Error(), "Region:") || !strings.Contains(err.Error(), azA) {
		t.Fatalf("err = %v, want a Region error naming the provider's zone %s", err, azA)
	}
	for _, r := range m.Resources() {
		if r.Type != tComponent {
			t.Errorf("registered child %s %s, want none", r.Type, r.Name)
		}
	}
}
