// Package endpoints lists the VPC endpoints of a department's network and what each one is
// for: the one list that the network component creates its endpoints from and that the
// air-gap policy rule checks a plan against. It imports only the standard library, so that
// policy and sandboxctl can read it without pulling in the Pulumi provider.
package endpoints

import "slices"

// Kind is how a VPC endpoint carries traffic to its service.
type Kind string

const (
	// Gateway endpoints add a route to the service's prefix list on route tables; the
	// service's public DNS names keep resolving to public addresses, which the route keeps
	// inside AWS. Only S3 and DynamoDB offer them, at no charge
	// (https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html).
	Gateway Kind = "Gateway"
	// Interface endpoints place a network interface in each private subnet; with private DNS
	// on, the service's regional DNS name resolves to those interfaces. Each is billed per
	// hour per availability zone plus per GB
	// (https://docs.aws.amazon.com/vpc/latest/privatelink/create-interface-endpoint.html).
	Interface Kind = "Interface"
)

// Endpoint is one VPC endpoint of a department's network.
type Endpoint struct {
	// Service is the service's short name, the last part of its endpoint service name
	// com.amazonaws.<region>.<service>, e.g. "monitoring" for CloudWatch metrics.
	Service string
	// Kind is Gateway or Interface.
	Kind Kind
	// NodeCalls says whether a node calls the service itself: the node agent, the LiteLLM
	// modules it renders, or the SSM agent of the AMI. An air-gapped node cannot work without
	// these endpoints, so the airgap-no-internet-route policy rule requires each of them.
	NodeCalls bool
	// Why says who calls the service and for what.
	Why string
}

// all is every endpoint, gateway endpoints first. The services and actions are those the
// node roles grant (components/modelpool, components/gateway) and the code calls.
var all = []Endpoint{
	// https://docs.aws.amazon.com/vpc/latest/privatelink/vpc-endpoints-s3.html
	{"s3", Gateway, true, "cloud-init fetches the node agent, and the agent fetches mirrored artifacts and models (s3:GetObject); the artifacts bucket admits reads only through this endpoint"},
	// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/vpc-endpoints-dynamodb.html
	{"dynamodb", Gateway, true, "LiteLLM's custom auth on gateway nodes looks up each per-person key in the key registry table (dynamodb:GetItem)"},

	// Session Manager, the only shell on a node: the SSM agent needs all three
	// (https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-create-vpc.html).
	{"ssm", Interface, true, "the SSM agent registers the node with Systems Manager (Session Manager)"},
	{"ssmmessages", Interface, true, "the SSM agent's session channel (Session Manager)"},
	{"ec2messages", Interface, true, "the SSM agent's command channel"},
	// https://docs.aws.amazon.com/secretsmanager/latest/userguide/vpc-endpoint-overview.html
	{"secretsmanager", Interface, true, "the agent on gateway nodes reads the LiteLLM master key (secretsmanager:GetSecretValue)"},
	// https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-vpc-endpoints.html
	{"autoscaling", Interface, true, "the agent completes the launch and terminating lifecycle actions (autoscaling:CompleteLifecycleAction)"},
	// CloudWatch metrics' endpoint service is "monitoring", not "cloudwatch"
	// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-and-interface-VPC.html).
	{"monitoring", Interface, true, "the agent publishes in-flight requests and GPU figures, and LiteLLM's usage callback publishes usage counts (cloudwatch:PutMetricData)"},
	// No node code calls the next three: S3, Secrets Manager and DynamoDB call KMS themselves
	// (the node roles' kms:Decrypt is conditioned on kms:ViaService), and instance-profile
	// credentials come from the instance metadata service, not STS.
	// https://docs.aws.amazon.com/kms/latest/developerguide/kms-vpc-endpoint.html
	{"kms", Interface, false, "not called by the agent or LiteLLM (services decrypt on their behalf); kept for Session Manager's optional KMS session encryption and for the AWS CLI in an operator's session"},
	// https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/cloudwatch-logs-and-interface-VPC.html
	{"logs", Interface, false, "not called by the agent or LiteLLM (they log to the journal); kept for Session Manager's optional session logging to CloudWatch Logs and for a log shipper an operator adds"},
	// https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_sts_vpce.html
	{"sts", Interface, false, "not called by the agent or LiteLLM (instance-profile credentials come from the metadata service); kept for the AWS CLI in an operator's session (aws sts get-caller-identity)"},
}

// For returns the endpoints of a network, gateway endpoints first, in a fixed order: the
// gateway endpoints for every NAT strategy (they are free, and keep the artifacts and
// registry reads off the NAT gateway), and the interface endpoints too when airGapped (NAT
// strategy none), since a node then has no other way to the AWS APIs. The slice is the
// caller's.
func For(airGapped bool) []Endpoint {
	var out []Endpoint
	for _, e := range all {
		if e.Kind == Gateway || airGapped {
			out = append(out, e)
		}
	}
	return out
}

// NodeCalled returns the endpoints of an air-gapped network whose service a node calls
// itself (Endpoint.NodeCalls), in For's order.
func NodeCalled() []Endpoint {
	return slices.DeleteFunc(For(true), func(e Endpoint) bool { return !e.NodeCalls })
}

// Services returns the short service names of endpoints, in order.
func Services(eps []Endpoint) []string {
	out := make([]string, 0, len(eps))
	for _, e := range eps {
		out = append(out, e.Service)
	}
	return out
}

// ServiceName is the VPC endpoint service name of an AWS service in a region,
// com.amazonaws.<region>.<service>
// (https://docs.aws.amazon.com/vpc/latest/privatelink/aws-services-privatelink-support.html).
func ServiceName(region, service string) string {
	return "com.amazonaws." + region + "." + service
}
