// Package network provides the llmsandbox:network:Network component: one department's VPC with
// a public and a private subnet per availability zone, a NAT strategy, S3 and DynamoDB gateway
// endpoints (interface endpoints too when there is no NAT), VPC flow logs and a closed default
// security group. Which endpoints exist is listed once, in package endpoints.
package network

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/internal/endpoints"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// typeToken is the component's Pulumi type token.
const typeToken = "llmsandbox:network:Network"

// NATStrategy says how instances in the private subnets reach the internet, if at all.
type NATStrategy string

const (
	// NATSingle is one NAT gateway in the first AZ that every private subnet routes through
	// (the default): cheapest egress, but losing that AZ cuts egress for all of them.
	NATSingle NATStrategy = "single"
	// NATPerAZ is one NAT gateway per AZ, each AZ's private subnet routing through its own:
	// egress survives the loss of an AZ, at one NAT gateway's hourly charge per AZ.
	NATPerAZ NATStrategy = "perAz"
	// NATNone gives the private subnets no internet egress at all; AWS APIs are reached through
	// interface endpoints, S3 and DynamoDB through gateway endpoints (air-gapped departments).
	NATNone NATStrategy = "none"
)

// Defaults applied to zero-valued NetworkArgs fields.
const (
	defaultAZCount              = 2
	defaultNATStrategy          = NATSingle
	defaultFlowLogRetentionDays = 90
)

// NetworkArgs configures a Network.
type NetworkArgs struct {
	// CIDR is the IPv4 CIDR block of the VPC, from /16 to /22 with the host bits zero, e.g.
	// "10.20.0.0/16". Required. A plain string because the subnet layout is computed from it.
	CIDR string
	// AZCount is how many availability zones the network spans: 2 or 3. Optional. Defaults to 2.
	AZCount int
	// NATStrategy is how the private subnets reach the internet: NATSingle, NATPerAZ or NATNone.
	// Optional. Defaults to NATSingle.
	NATStrategy NATStrategy
	// Region is the AWS region the provider deploys to, e.g. "ca-central-1"; endpoint service
	// names (com.amazonaws.<region>.<service>) are built from it and the availability zones must
	// belong to it. Required.
	Region string
	// FlowLogRetentionDays is how long the VPC flow logs are kept, in days; one of the periods
	// CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
	// 1096, 1827, 2192, 2557, 2922, 3288, 3653). Optional. Defaults to 90.
	FlowLogRetentionDays int
	// FlowLogKMSKeyArn is the ARN of the KMS key that encrypts the flow-log group; its key policy
	// must admit the CloudWatch Logs service principal of the region. Optional. Defaults to
	// CloudWatch Logs' own encryption.
	FlowLogKMSKeyArn pulumi.StringInput
}

// Network is one department's VPC. Child resources are exposed both as maps keyed by AZ name
// (or endpoint service name) and as flat, AZ-ordered ID outputs.
type Network struct {
	pulumi.ResourceState

	// VpcID is the VPC's ID.
	VpcID pulumi.IDOutput `pulumi:"vpcId"`
	// CIDR is the VPC's IPv4 CIDR block.
	CIDR pulumi.StringOutput `pulumi:"cidr"`
	// PublicSubnetIDs are the public subnets' IDs in AZ order (for the public ALB and NAT).
	PublicSubnetIDs pulumi.StringArrayOutput `pulumi:"publicSubnetIds"`
	// PrivateSubnetIDs are the private subnets' IDs in AZ order (for every instance).
	PrivateSubnetIDs pulumi.StringArrayOutput `pulumi:"privateSubnetIds"`
	// S3EndpointID is the ID of the S3 gateway endpoint, which bucket policies name in
	// aws:SourceVpce conditions.
	S3EndpointID pulumi.IDOutput `pulumi:"s3EndpointId"`

	// AvailabilityZones are the AZ names the network spans, in order.
	AvailabilityZones []string
	// Vpc is the VPC resource.
	Vpc *ec2.Vpc
	// PublicSubnets are the public subnets keyed by AZ name.
	PublicSubnets map[string]*ec2.Subnet
	// PrivateSubnets are the private subnets keyed by AZ name.
	PrivateSubnets map[string]*ec2.Subnet
	// NATGateways are the NAT gateways keyed by the AZ they sit in: one for NATSingle, one per
	// AZ for NATPerAZ, none for NATNone.
	NATGateways map[string]*ec2.NatGateway
	// GatewayEndpoints are the gateway VPC endpoints keyed by short service name ("s3",
	// "dynamodb"); every strategy creates them.
	GatewayEndpoints map[string]*ec2.VpcEndpoint
	// InterfaceEndpoints are the interface VPC endpoints keyed by short service name ("ssm",
	// "monitoring", ...); only NATNone creates them.
	InterfaceEndpoints map[string]*ec2.VpcEndpoint
	// FlowLogRetentionDays is the flow logs' retention in days, default applied, for records
	// that must be kept as long (the artifacts bucket's access logs).
	FlowLogRetentionDays int
}

// Endpoints returns the VPC endpoints a network with the NAT strategy creates, gateway
// endpoints first, each with what calls its service: S3 and DynamoDB gateway endpoints for every
// strategy, and for NATNone the interface endpoints too. The component creates exactly these;
// callers (the plan, the policy rules through package endpoints) list them from here. An empty
// strategy is the default, NATSingle.
func Endpoints(strategy NATStrategy) []endpoints.Endpoint {
	return endpoints.For(strategy == NATNone)
}

// settings are NetworkArgs validated and with defaults applied.
type settings struct {
	cidr          netip.Prefix
	azCount       int
	nat           NATStrategy
	region        string
	retentionDays int
	kmsKeyArn     pulumi.StringInput
}

// NewNetwork validates args, then registers the network's VPC, subnets, gateways, routes,
// endpoints and flow logs as children of one component.
func NewNetwork(ctx *pulumi.Context, name string, args *NetworkArgs, opts ...pulumi.ResourceOption) (*Network, error) {
	s, err := resolve(name, args)
	if err != nil {
		return nil, err
	}
	privateCIDRs, publicCIDRs, err := subnetLayout(s.cidr, s.azCount)
	if err != nil {
		c := argcheck.NewChecker(kind, name)
		c.Add("CIDR", "%v", err)
		return nil, c.Err()
	}

	comp := &Network{
		PublicSubnets:        map[string]*ec2.Subnet{},
		PrivateSubnets:       map[string]*ec2.Subnet{},
		NATGateways:          map[string]*ec2.NatGateway{},
		GatewayEndpoints:     map[string]*ec2.VpcEndpoint{},
		InterfaceEndpoints:   map[string]*ec2.VpcEndpoint{},
		FlowLogRetentionDays: s.retentionDays,
	}
	if err := ctx.RegisterComponentResource(typeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("network %q: register component: %w", name, err)
	}
	b := &builder{ctx: ctx, name: name, comp: comp, s: s}
	if err := b.build(privateCIDRs, publicCIDRs); err != nil {
		var fe *argcheck.FieldError
		if errors.As(err, &fe) {
			return nil, err // names the network already
		}
		return nil, fmt.Errorf("network %q: %w", name, err)
	}

	comp.VpcID = comp.Vpc.ID()
	comp.CIDR = comp.Vpc.CidrBlock
	comp.PublicSubnetIDs = subnetIDs(comp.AvailabilityZones, comp.PublicSubnets)
	comp.PrivateSubnetIDs = subnetIDs(comp.AvailabilityZones, comp.PrivateSubnets)
	s3, ok := comp.GatewayEndpoints["s3"]
	if !ok {
		return nil, fmt.Errorf("network %q: no S3 gateway endpoint among %v", name, endpoints.Services(Endpoints(s.nat)))
	}
	comp.S3EndpointID = s3.ID()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"vpcId":            comp.VpcID,
		"cidr":             comp.CIDR,
		"publicSubnetIds":  comp.PublicSubnetIDs,
		"privateSubnetIds": comp.PrivateSubnetIDs,
		"s3EndpointId":     comp.S3EndpointID,
	}); err != nil {
		return nil, fmt.Errorf("network %q: register outputs: %w", name, err)
	}
	return comp, nil
}

// resolve validates args and applies defaults. It reports every problem at once, each naming
// the NetworkArgs field at fault.
func resolve(name string, args *NetworkArgs) (settings, error) {
	c := argcheck.NewChecker(kind, name)
	if args == nil {
		c.Add("NetworkArgs", "required (got nil)")
		return settings{}, c.Err()
	}
	s := settings{
		azCount:       args.AZCount,
		nat:           args.NATStrategy,
		region:        args.Region,
		retentionDays: args.FlowLogRetentionDays,
		kmsKeyArn:     args.FlowLogKMSKeyArn,
	}
	cidr, problem := rules.IPv4CIDR(args.CIDR)
	if problem == "" {
		problem = rules.VPCSize(cidr)
	}
	if c.Rule("CIDR", problem) {
		s.cidr = cidr
	}

	if s.azCount == 0 {
		s.azCount = defaultAZCount
	}
	if s.azCount < 2 || s.azCount > 3 {
		c.Add("AZCount", "must be 2 or 3 (got %d)", s.azCount)
	}

	switch s.nat {
	case "":
		s.nat = defaultNATStrategy
	case NATSingle, NATPerAZ, NATNone:
	default:
		c.Add("NATStrategy", "unknown strategy %q (want %q, %q or %q)", s.nat, NATSingle, NATPerAZ, NATNone)
	}

	c.Rule("Region", rules.Region(s.region))

	if s.retentionDays == 0 {
		s.retentionDays = defaultFlowLogRetentionDays
	}
	if !slices.Contains(logRetentionPeriods(), s.retentionDays) {
		c.Add("FlowLogRetentionDays", "%d is not a period CloudWatch Logs accepts (want one of %v)", s.retentionDays, logRetentionPeriods())
	}
	return s, c.Err()
}

// kind names the component in argument errors.
const kind = "network"

// logRetentionPeriods are the retention periods CloudWatch Logs accepts, in days (the
// PutRetentionPolicy API; also listed in pulumi-aws cloudwatch.LogGroup's retentionInDays).
func logRetentionPeriods() []int {
	return []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
}

// builder registers the children of one Network.
type builder struct {
	ctx  *pulumi.Context
	name string
	comp *Network
	s    settings

	igw           *ec2.InternetGateway
	publicRoutes  *ec2.RouteTable
	privateRoutes map[string]*ec2.RouteTable // keyed by AZ name
}

// build registers every child in dependency order. privateCIDRs and publicCIDRs are in AZ order.
func (b *builder) build(privateCIDRs, publicCIDRs []netip.Prefix) error {
	azs, err := b.availabilityZones()
	if err != nil {
		return err
	}
	b.comp.AvailabilityZones = azs

	steps := []func() error{
		b.vpc,
		b.closeDefaultSecurityGroup,
		func() error { return b.subnets(privateCIDRs, publicCIDRs) },
		b.publicRouting,
		b.natGateways,
		b.privateRouting,
		b.gatewayEndpoints,
		b.interfaceEndpoints,
		b.flowLogs,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// availabilityZones returns the first AZCount available availability zones of the provider's
// region, and checks they belong to NetworkArgs.Region.
func (b *builder) availabilityZones() ([]string, error) {
	res, err := aws.GetAvailabilityZones(b.ctx, &aws.GetAvailabilityZonesArgs{
		State: pulumi.StringRef("available"),
		// Only real AZs: opted-in Local Zones (e.g. us-east-1-bos-1a) sort before "us-east-1a"
		// and would otherwise be taken first.
		Filters: []aws.GetAvailabilityZonesFilter{{Name: "zone-type", Values: []string{"availability-zone"}}},
	}, pulumi.Parent(b.comp))
	if err != nil {
		return nil, fmt.Errorf("look up availability zones: %w", err)
	}
	if len(res.Names) < b.s.azCount {
		c := argcheck.NewChecker(kind, b.name)
		c.Add("AZCount", "%d availability zones wanted, the region has %d available (%s)",
			b.s.azCount, len(res.Names), strings.Join(res.Names, ", "))
		return nil, c.Err()
	}
	azs := slices.Clone(res.Names[:b.s.azCount])
	for _, az := range azs {
		if !strings.HasPrefix(az, b.s.region) {
			c := argcheck.NewChecker(kind, b.name)
			c.Add("Region", "%q does not match the provider's availability zone %q", b.s.region, az)
			return nil, c.Err()
		}
	}
	return azs, nil
}

// child returns the options every child gets: the component as parent, plus extra.
func (b *builder) child(extra ...pulumi.ResourceOption) []pulumi.ResourceOption {
	return append([]pulumi.ResourceOption{pulumi.Parent(b.comp)}, extra...)
}

// nameTag is the Name tag the console shows for a child.
func nameTag(name string) pulumi.StringMap {
	return pulumi.StringMap{"Name": pulumi.String(name)}
}

func (b *builder) vpc() error {
	n := b.name + "-vpc"
	vpc, err := ec2.NewVpc(b.ctx, n, &ec2.VpcArgs{
		CidrBlock: pulumi.String(b.s.cidr.String()),
		// Both are needed for the private DNS names of interface endpoints.
		EnableDnsSupport:   pulumi.Bool(true),
		EnableDnsHostnames: pulumi.Bool(true),
		Tags:               nameTag(n),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("VPC: %w", err)
	}
	b.comp.Vpc = vpc
	return nil
}

// closeDefaultSecurityGroup adopts the VPC's default security group and removes all of its
// rules, so that anything launched without an explicit group can neither receive nor send.
func (b *builder) closeDefaultSecurityGroup() error {
	n := b.name + "-default-sg"
	_, err := ec2.NewDefaultSecurityGroup(b.ctx, n, &ec2.DefaultSecurityGroupArgs{
		VpcId:   b.comp.Vpc.ID(),
		Ingress: ec2.DefaultSecurityGroupIngressArray{},
		Egress:  ec2.DefaultSecurityGroupEgressArray{},
		Tags:    nameTag(n),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("default security group: %w", err)
	}
	return nil
}

func (b *builder) subnets(privateCIDRs, publicCIDRs []netip.Prefix) error {
	for i, az := range b.comp.AvailabilityZones {
		for _, sn := range []struct {
			role string
			cidr netip.Prefix
			into map[string]*ec2.Subnet
		}{
			{"private", privateCIDRs[i], b.comp.PrivateSubnets},
			{"public", publicCIDRs[i], b.comp.PublicSubnets},
		} {
			n := b.name + "-" + sn.role + "-" + az
			subnet, err := ec2.NewSubnet(b.ctx, n, &ec2.SubnetArgs{
				VpcId:            b.comp.Vpc.ID(),
				AvailabilityZone: pulumi.String(az),
				CidrBlock:        pulumi.String(sn.cidr.String()),
				// Nothing in the network needs an automatic public IP: the ALB and the NAT
				// gateways get their own addresses.
				MapPublicIpOnLaunch: pulumi.Bool(false),
				Tags:                nameTag(n),
			}, b.child()...)
			if err != nil {
				return fmt.Errorf("%s subnet in %s: %w", sn.role, az, err)
			}
			sn.into[az] = subnet
		}
	}
	return nil
}

// publicRouting creates the internet gateway and the public route table. The gateway exists
// for every NAT strategy: the public ALB needs it even when the private subnets have no egress.
func (b *builder) publicRouting() error {
	igwName := b.name + "-igw"
	igw, err := ec2.NewInternetGateway(b.ctx, igwName, &ec2.InternetGatewayArgs{
		VpcId: b.comp.Vpc.ID(),
		Tags:  nameTag(igwName),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("internet gateway: %w", err)
	}
	b.igw = igw

	rtName := b.name + "-public"
	rt, err := ec2.NewRouteTable(b.ctx, rtName, &ec2.RouteTableArgs{
		VpcId: b.comp.Vpc.ID(),
		Tags:  nameTag(rtName),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("public route table: %w", err)
	}
	b.publicRoutes = rt

	if _, err := ec2.NewRoute(b.ctx, b.name+"-public-internet", &ec2.RouteArgs{
		RouteTableId:         rt.ID(),
		DestinationCidrBlock: pulumi.String("0.0.0.0/0"),
		GatewayId:            igw.ID(),
	}, b.child()...); err != nil {
		return fmt.Errorf("public default route: %w", err)
	}
	for _, az := range b.comp.AvailabilityZones {
		if _, err := ec2.NewRouteTableAssociation(b.ctx, b.name+"-public-"+az, &ec2.RouteTableAssociationArgs{
			RouteTableId: rt.ID(),
			SubnetId:     b.comp.PublicSubnets[az].ID(),
		}, b.child()...); err != nil {
			return fmt.Errorf("public route table association in %s: %w", az, err)
		}
	}
	return nil
}

// natAZs are the AZs that get a NAT gateway under the strategy.
func (b *builder) natAZs() []string {
	switch b.s.nat {
	case NATPerAZ:
		return b.comp.AvailabilityZones
	case NATSingle:
		return b.comp.AvailabilityZones[:1]
	}
	return nil
}

// natGateways creates an Elastic IP and a NAT gateway in the public subnet of each NAT AZ.
func (b *builder) natGateways() error {
	for _, az := range b.natAZs() {
		n := b.name + "-nat-" + az
		// A NAT gateway's address only works once the VPC has an internet gateway.
		afterIGW := pulumi.DependsOn([]pulumi.Resource{b.igw})
		eip, err := ec2.NewEip(b.ctx, n, &ec2.EipArgs{
			Domain: pulumi.String("vpc"),
			Tags:   nameTag(n),
		}, b.child(afterIGW)...)
		if err != nil {
			return fmt.Errorf("NAT Elastic IP in %s: %w", az, err)
		}
		nat, err := ec2.NewNatGateway(b.ctx, n, &ec2.NatGatewayArgs{
			AllocationId: eip.ID(),
			SubnetId:     b.comp.PublicSubnets[az].ID(),
			Tags:         nameTag(n),
		}, b.child(afterIGW)...)
		if err != nil {
			return fmt.Errorf("NAT gateway in %s: %w", az, err)
		}
		b.comp.NATGateways[az] = nat
	}
	return nil
}

// egressNAT is the NAT gateway the private subnet of az routes through (nil for NATNone).
func (b *builder) egressNAT(az string) *ec2.NatGateway {
	switch b.s.nat {
	case NATPerAZ:
		return b.comp.NATGateways[az]
	case NATSingle:
		return b.comp.NATGateways[b.comp.AvailabilityZones[0]]
	}
	return nil
}

// privateRouting gives each private subnet its own route table, so that a per-AZ NAT strategy
// can route each AZ through its own gateway, with a default route only when there is a NAT.
func (b *builder) privateRouting() error {
	b.privateRoutes = map[string]*ec2.RouteTable{}
	for _, az := range b.comp.AvailabilityZones {
		n := b.name + "-private-" + az
		rt, err := ec2.NewRouteTable(b.ctx, n, &ec2.RouteTableArgs{
			VpcId: b.comp.Vpc.ID(),
			Tags:  nameTag(n),
		}, b.child()...)
		if err != nil {
			return fmt.Errorf("private route table in %s: %w", az, err)
		}
		b.privateRoutes[az] = rt
		if _, err := ec2.NewRouteTableAssociation(b.ctx, n, &ec2.RouteTableAssociationArgs{
			RouteTableId: rt.ID(),
			SubnetId:     b.comp.PrivateSubnets[az].ID(),
		}, b.child()...); err != nil {
			return fmt.Errorf("private route table association in %s: %w", az, err)
		}
		nat := b.egressNAT(az)
		if nat == nil {
			continue
		}
		if _, err := ec2.NewRoute(b.ctx, b.name+"-private-egress-"+az, &ec2.RouteArgs{
			RouteTableId:         rt.ID(),
			DestinationCidrBlock: pulumi.String("0.0.0.0/0"),
			NatGatewayId:         nat.ID(),
		}, b.child()...); err != nil {
			return fmt.Errorf("private default route in %s: %w", az, err)
		}
	}
	return nil
}

// endpointsOf returns the endpoints of the network's strategy of one kind, in Endpoints order.
func (b *builder) endpointsOf(kind endpoints.Kind) []endpoints.Endpoint {
	var out []endpoints.Endpoint
	for _, e := range Endpoints(b.s.nat) {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// gatewayEndpoints creates the gateway endpoints, for every NAT strategy: they cost nothing, the
// artifacts bucket admits reads only through the S3 one, and they keep the nodes' S3 and key
// registry traffic off the NAT gateway (no per-GB processing charge) with one topology for every
// strategy. Each is on every private route table; S3's is on the public one too, so that the
// bucket is reached the same way from every subnet.
func (b *builder) gatewayEndpoints() error {
	private := pulumi.StringArray{}
	for _, az := range b.comp.AvailabilityZones {
		private = append(private, b.privateRoutes[az].ID().ToStringOutput())
	}
	for _, e := range b.endpointsOf(endpoints.Gateway) {
		routeTables := private
		if e.Service == "s3" {
			routeTables = append(slices.Clone(private), b.publicRoutes.ID().ToStringOutput())
		}
		n := b.name + "-" + e.Service
		ep, err := ec2.NewVpcEndpoint(b.ctx, n, &ec2.VpcEndpointArgs{
			VpcId:           b.comp.Vpc.ID(),
			ServiceName:     pulumi.String(endpoints.ServiceName(b.s.region, e.Service)),
			VpcEndpointType: pulumi.String(string(endpoints.Gateway)),
			RouteTableIds:   routeTables,
			Tags:            nameTag(n),
		}, b.child()...)
		if err != nil {
			return fmt.Errorf("%s gateway endpoint: %w", e.Service, err)
		}
		b.comp.GatewayEndpoints[e.Service] = ep
	}
	return nil
}

// interfaceEndpoints creates, for NATNone only, one interface endpoint with private DNS per
// service in the private subnets, behind a security group that admits HTTPS from the VPC only.
func (b *builder) interfaceEndpoints() error {
	services := b.endpointsOf(endpoints.Interface)
	if len(services) == 0 {
		return nil
	}
	sgName := b.name + "-endpoints"
	sg, err := ec2.NewSecurityGroup(b.ctx, sgName, &ec2.SecurityGroupArgs{
		Description: pulumi.String("HTTPS from inside the VPC to the interface endpoints"),
		VpcId:       b.comp.Vpc.ID(),
		Ingress: ec2.SecurityGroupIngressArray{ec2.SecurityGroupIngressArgs{
			Description: pulumi.String("HTTPS from the VPC"),
			Protocol:    pulumi.String("tcp"),
			FromPort:    pulumi.Int(443),
			ToPort:      pulumi.Int(443),
			CidrBlocks:  pulumi.StringArray{pulumi.String(b.s.cidr.String())},
		}},
		// Endpoints only answer; an explicit empty list removes AWS's default allow-all egress.
		Egress: ec2.SecurityGroupEgressArray{},
		Tags:   nameTag(sgName),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("interface endpoint security group: %w", err)
	}

	subnets := pulumi.StringArray{}
	for _, az := range b.comp.AvailabilityZones {
		subnets = append(subnets, b.comp.PrivateSubnets[az].ID().ToStringOutput())
	}
	for _, e := range services {
		svc := e.Service
		n := b.name + "-endpoint-" + svc
		ep, err := ec2.NewVpcEndpoint(b.ctx, n, &ec2.VpcEndpointArgs{
			VpcId:             b.comp.Vpc.ID(),
			ServiceName:       pulumi.String(endpoints.ServiceName(b.s.region, svc)),
			VpcEndpointType:   pulumi.String(string(endpoints.Interface)),
			PrivateDnsEnabled: pulumi.Bool(true),
			SubnetIds:         subnets,
			SecurityGroupIds:  pulumi.StringArray{sg.ID().ToStringOutput()},
			Tags:              nameTag(n),
		}, b.child()...)
		if err != nil {
			return fmt.Errorf("%s interface endpoint: %w", svc, err)
		}
		b.comp.InterfaceEndpoints[svc] = ep
	}
	return nil
}

// subnetIDs returns the IDs of subnets in the order of azs.
func subnetIDs(azs []string, subnets map[string]*ec2.Subnet) pulumi.StringArrayOutput {
	ids := make(pulumi.StringArray, 0, len(azs))
	for _, az := range azs {
		ids = append(ids, subnets[az].ID().ToStringOutput())
	}
	return ids.ToStringArrayOutput()
}
