package nodegroup

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/userdata"
)

const (
	// RootDeviceName is the root device of both Ubuntu AMIs.
	RootDeviceName = "/dev/sda1"
	// MaxUserDataBytes is EC2's limit on user data before base64 encoding.
	MaxUserDataBytes = 16 * 1024
)

// ResolveAMI resolves a public SSM parameter to a concrete AMI id at deploy time. The launch
// template must name the id itself: an instance refresh cannot roll back to a launch template
// version that names an SSM parameter (or $Latest), because the image it stood for is gone.
// The consequence: when AWS publishes a new image, the next `pulumi up` makes a new launch
// template version, and the instance refresh replaces the nodes.
func ResolveAMI(ctx *pulumi.Context, parameter string, parent pulumi.Resource) (string, error) {
	res, err := ssm.LookupParameter(ctx, &ssm.LookupParameterArgs{Name: parameter}, pulumi.Parent(parent))
	if err != nil {
		return "", fmt.Errorf("resolve the AMI from %s: %w", parameter, err)
	}
	if !strings.HasPrefix(res.Value, "ami-") {
		return "", fmt.Errorf("resolve the AMI from %s: got %q, want an ami- id", parameter, res.Value)
	}
	return res.Value, nil
}

// RenderUserData renders the #cloud-config for cfg with the agent at agent, base64-encoded as
// the launch template takes it. Callers render it inside an ApplyT over the agent URL (and
// whatever else the node config waits for); it creates no resource.
func RenderUserData(cfg *node.Config, agent node.Artifact) (string, error) {
	doc, err := userdata.Render(cfg, agent)
	if err != nil {
		return "", err
	}
	if len(doc) > MaxUserDataBytes {
		return "", fmt.Errorf("user data is %d bytes, over EC2's limit of %d", len(doc), MaxUserDataBytes)
	}
	return base64.StdEncoding.EncodeToString([]byte(doc)), nil
}

// TemplateArgs is what differs between the launch templates of two groups of nodes; everything
// else (IMDS, network interface, root volume encryption, monitoring, tags) is the same for all.
type TemplateArgs struct {
	// Description says whose nodes these are.
	Description string
	// AMIID is the concrete AMI (ResolveAMI).
	AMIID string
	// InstanceType is the instance type; nil when a mixed instances policy names the types.
	InstanceType pulumi.StringPtrInput
	// SecurityGroupID is the nodes' only security group.
	SecurityGroupID pulumi.StringInput
	// InstanceProfileArn carries the node role.
	InstanceProfileArn pulumi.StringInput
	// KMSKeyArn encrypts the root volume.
	KMSKeyArn pulumi.StringInput
	// RootVolumeGiB is the gp3 root volume's size.
	RootVolumeGiB int
	// Tags tag the instances and their volumes (Identity.InstanceTags).
	Tags pulumi.StringMap
	// UserData is the base64 user data (RenderUserData).
	UserData pulumi.StringInput
}

// NewTemplate registers the launch template "<name>-lt": the concrete AMI, IMDSv2 only with
// hop limit 1 and instance metadata tags, detailed monitoring, one interface without a public
// IP, an encrypted gp3 root volume, the instance profile, instance and volume tags and the
// user data.
func NewTemplate(ctx *pulumi.Context, name string, args TemplateArgs, opts ...pulumi.ResourceOption) (*ec2.LaunchTemplate, error) {
	n := name + "-lt"
	lt, err := ec2.NewLaunchTemplate(ctx, n, &ec2.LaunchTemplateArgs{
		Description:  pulumi.String(args.Description),
		ImageId:      pulumi.String(args.AMIID),
		InstanceType: args.InstanceType,
		// The group pins LatestVersion, never $Latest or $Default; the default version only
		// matters to someone launching from the console.
		UpdateDefaultVersion: pulumi.Bool(true),
		MetadataOptions: &ec2.LaunchTemplateMetadataOptionsArgs{
			HttpEndpoint: pulumi.String("enabled"),
			// IMDSv2 only; hop limit 1 keeps the role's credentials away from anything one
			// network hop further (containers on a bridge network).
			HttpTokens:              pulumi.String("required"),
			HttpPutResponseHopLimit: pulumi.Int(1),
			// The agent reads its group's name from the aws:autoscaling:groupName tag.
			InstanceMetadataTags: pulumi.String("enabled"),
		},
		// One-minute CloudWatch metrics, so target tracking reacts within minutes.
		Monitoring: &ec2.LaunchTemplateMonitoringArgs{Enabled: pulumi.Bool(true)},
		NetworkInterfaces: ec2.LaunchTemplateNetworkInterfaceArray{
			&ec2.LaunchTemplateNetworkInterfaceArgs{
				DeviceIndex:              pulumi.Int(0),
				AssociatePublicIpAddress: pulumi.String("false"),
				DeleteOnTermination:      pulumi.String("true"),
				SecurityGroups:           pulumi.StringArray{args.SecurityGroupID},
			},
		},
		BlockDeviceMappings: ec2.LaunchTemplateBlockDeviceMappingArray{
			&ec2.LaunchTemplateBlockDeviceMappingArgs{
				DeviceName: pulumi.String(RootDeviceName),
				Ebs: &ec2.LaunchTemplateBlockDeviceMappingEbsArgs{
					VolumeSize:          pulumi.Int(args.RootVolumeGiB),
					VolumeType:          pulumi.String("gp3"),
					Encrypted:           pulumi.String("true"),
					KmsKeyId:            args.KMSKeyArn,
					DeleteOnTermination: pulumi.String("true"),
				},
			},
		},
		IamInstanceProfile: &ec2.LaunchTemplateIamInstanceProfileArgs{Arn: args.InstanceProfileArn},
		TagSpecifications: ec2.LaunchTemplateTagSpecificationArray{
			&ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("instance"), Tags: args.Tags},
			&ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("volume"), Tags: args.Tags},
		},
		UserData: args.UserData,
		Tags:     NameTag(n),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("launch template: %w", err)
	}
	return lt, nil
}
