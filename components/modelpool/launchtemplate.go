package modelpool

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/userdata"
)

// Public SSM parameters the AMI is resolved from at deploy time (FACTS.md, "AWS: AMIs,
// instances, quotas").
const (
	// GPUAMIParameter is the Deep Learning Base OSS Nvidia Driver GPU AMI on Ubuntu 24.04: the
	// NVIDIA driver (>= 550, which Ollama needs), CUDA and the container toolkit preinstalled,
	// so nothing builds driver modules at boot [AWS DLAMI developer guide, "Find the DLAMI
	// ID"].
	GPUAMIParameter = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"
	// CPUAMIParameter is Canonical's Ubuntu 24.04 LTS server AMI with a gp3 root [Canonical,
	// "Find Ubuntu images on AWS" (SSM parameters under /aws/service/canonical)].
	CPUAMIParameter = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
)

const (
	// OllamaPort is Ollama's listening port on the nodes and the target group's port.
	OllamaPort = 11434
	// LaunchHookName is the launch lifecycle hook's name. Hook names are per group, so one
	// fixed name serves every pool, and the node config can carry it before the group exists.
	LaunchHookName = "llm-sandbox-launch"
	// RootDeviceName is the root device of both Ubuntu AMIs.
	RootDeviceName = "/dev/sda1"
	// RootVolumeGiB is the root volume's size: the DLAMI's root snapshot is 75 GiB, and the
	// Ollama release (~2 GB unpacked) and the models (2-5 GB each) come on top.
	RootVolumeGiB = 100
	// maxUserDataBytes is EC2's limit on user data before base64 encoding.
	maxUserDataBytes = 16 * 1024
)

// MaxQueue is OLLAMA_MAX_QUEUE for a pool: 4 x Parallel x number of models, at least 16.
//
// A node works on Parallel requests per model at once; Ollama's default queue (512) would let
// one node accept hours of waiting work while the ALB, which balances on outstanding requests,
// and target tracking both see a node that is merely "busy". Four rounds per slot keeps a
// queued request's wait to about four generations; past that the node answers 503 at once, so
// LiteLLM can retry another node or tell the client, instead of the request timing out at the
// load balancer. The floor of 16 lets a one-model, parallel-1 pool absorb a short burst.
func MaxQueue(parallel, models int) int {
	q := 4 * parallel * models
	if q < 16 {
		q = 16
	}
	return q
}

// nodeConfig is the node config the user data carries. The group name is left empty on
// purpose: the agent reads it from the aws:autoscaling:groupName instance tag through IMDS
// (instance metadata tags are on), so the user data is rendered before the group exists.
func nodeConfig(args *ModelPoolArgs) *node.Config {
	models := make([]node.Model, 0, len(args.Models))
	for _, tag := range args.Models {
		// No Source: the agent pulls each tag from the Ollama registry.
		models = append(models, node.Model{Name: tag})
	}
	return &node.Config{
		Role:       node.RoleOllama,
		Department: args.Department,
		Pool:       args.Pool,
		Region:     args.Region,
		Lifecycle:  node.Lifecycle{Hook: LaunchHookName, HeartbeatSeconds: HeartbeatSeconds(args.GPU)},
		Ollama: &node.OllamaConfig{
			Version:       args.OllamaVersion,
			Release:       args.OllamaRelease,
			GPU:           args.GPU,
			Port:          OllamaPort,
			Parallel:      args.Parallel,
			ContextLength: args.ContextLength,
			MaxQueue:      MaxQueue(args.Parallel, len(args.Models)),
			Models:        models,
		},
	}
}

// renderUserData renders the #cloud-config for cfg with the agent at agent, base64-encoded as
// the launch template takes it.
func renderUserData(cfg *node.Config, agent node.Artifact) (string, error) {
	doc, err := userdata.Render(cfg, agent)
	if err != nil {
		return "", err
	}
	if len(doc) > maxUserDataBytes {
		return "", fmt.Errorf("user data is %d bytes, over EC2's limit of %d", len(doc), maxUserDataBytes)
	}
	return base64.StdEncoding.EncodeToString([]byte(doc)), nil
}

// resolveAMI resolves the public SSM parameter to a concrete AMI id at deploy time. The launch
// template must name the id itself: an instance refresh cannot roll back to a launch template
// version that names an SSM parameter (or $Latest), because the image it stood for is gone.
// The consequence: when AWS publishes a new image, the next `pulumi up` makes a new launch
// template version, and the instance refresh replaces the nodes.
func (b *builder) resolveAMI() error {
	param := CPUAMIParameter
	if b.args.GPU {
		param = GPUAMIParameter
	}
	res, err := ssm.LookupParameter(b.ctx, &ssm.LookupParameterArgs{Name: param}, pulumi.Parent(b.comp))
	if err != nil {
		return fmt.Errorf("resolve the AMI from %s: %w", param, err)
	}
	if !strings.HasPrefix(res.Value, "ami-") {
		return fmt.Errorf("resolve the AMI from %s: got %q, want an ami- id", param, res.Value)
	}
	b.comp.AMIID, b.comp.AMIParameter = res.Value, param
	return nil
}

// instanceTags are the tags of every instance and volume: Tags, then Name, Department, Pool.
func (b *builder) instanceTags() pulumi.StringMap {
	tags := pulumi.StringMap{}
	for k, v := range b.args.Tags {
		tags[k] = pulumi.String(v)
	}
	tags[tagName] = pulumi.String(b.nodeName())
	tags[tagDepartment] = pulumi.String(b.args.Department)
	tags[tagPool] = pulumi.String(b.args.Pool)
	return tags
}

// sortedKeys returns a map's keys in order, so that per-key resources and lists are built the
// same way every run.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (b *builder) launchTemplate() error {
	cfg, sha := b.comp.NodeConfig, b.args.AgentSHA256
	// Only a string is rendered in the ApplyT; no resource is created there.
	userData := b.args.AgentURL.ToStringOutput().ApplyT(func(agentURL string) (string, error) {
		return renderUserData(cfg, node.Artifact{URL: agentURL, SHA256: sha})
	}).(pulumi.StringOutput)

	var instanceType pulumi.StringPtrInput
	if !b.args.Spot {
		// With spot, the mixed instances policy's overrides name the types.
		instanceType = pulumi.String(b.args.InstanceType)
	}
	tags := b.instanceTags()
	n := b.name + "-lt"
	lt, err := ec2.NewLaunchTemplate(b.ctx, n, &ec2.LaunchTemplateArgs{
		Description:  pulumi.Sprintf("llm-sandbox Ollama nodes of %s/%s", b.args.Department, b.args.Pool),
		ImageId:      pulumi.String(b.comp.AMIID),
		InstanceType: instanceType,
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
				SecurityGroups:           pulumi.StringArray{b.comp.SecurityGroup.ID()},
			},
		},
		BlockDeviceMappings: ec2.LaunchTemplateBlockDeviceMappingArray{
			&ec2.LaunchTemplateBlockDeviceMappingArgs{
				DeviceName: pulumi.String(RootDeviceName),
				Ebs: &ec2.LaunchTemplateBlockDeviceMappingEbsArgs{
					VolumeSize:          pulumi.Int(RootVolumeGiB),
					VolumeType:          pulumi.String("gp3"),
					Encrypted:           pulumi.String("true"),
					KmsKeyId:            b.args.KMSKeyArn,
					DeleteOnTermination: pulumi.String("true"),
				},
			},
		},
		IamInstanceProfile: &ec2.LaunchTemplateIamInstanceProfileArgs{Arn: b.comp.InstanceProfile.Arn},
		TagSpecifications: ec2.LaunchTemplateTagSpecificationArray{
			&ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("instance"), Tags: tags},
			&ec2.LaunchTemplateTagSpecificationArgs{ResourceType: pulumi.String("volume"), Tags: tags},
		},
		UserData: userData,
		Tags:     nameTag(n),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("launch template: %w", err)
	}
	b.comp.LaunchTemplate = lt
	return nil
}
