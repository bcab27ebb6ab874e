package nodegroup

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/components/internal/iampolicy"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// Statement ids of a node role's inline policy.
const (
	SidCompleteLifecycleAction = "CompleteLaunchLifecycleAction"
	SidReadArtifacts           = "ReadArtifacts"
	SidDecryptArtifacts        = "DecryptArtifactsThroughS3"
	SidReadSecret              = "ReadSecret"
	SidDecryptSecret           = "DecryptSecretThroughSecretsManager"
	SidPutMetrics              = "PutAgentMetrics"
)

// SSMManagedPolicy is the AWS-managed policy that lets Session Manager reach the nodes
// (operators get a shell without SSH keys or an open port).
const SSMManagedPolicy = "AmazonSSMManagedInstanceCore"

// AssumeRolePolicy lets EC2 instances, and nothing else, assume a node role.
func AssumeRolePolicy() string {
	doc, _ := iampolicy.JSON(iampolicy.Statement{
		Effect:    "Allow",
		Principal: map[string]string{"Service": "ec2.amazonaws.com"},
		Action:    "sts:AssumeRole",
	})
	return doc
}

// PolicyParams are the values a node role's inline policy depends on.
type PolicyParams struct {
	// Scope are the tags the group carries; the lifecycle statement matches all of them.
	Scope []argcheck.Tag
	// Region is the region of the S3 and Secrets Manager endpoints in kms:ViaService.
	Region string
	// BucketArn is the artifacts bucket; KeyArn the department key.
	BucketArn, KeyArn string
	// SecretArn, when set, is the one secret the node may read.
	SecretArn string
	// Metrics lets the node publish the agent's metrics (PutMetricData into
	// llmmetrics.Namespace only).
	Metrics bool
}

// NodePolicy renders a node role's inline policy: exactly what the agent needs and nothing
// else.
func NodePolicy(p PolicyParams) (string, error) {
	scope := map[string]string{}
	for _, t := range p.Scope {
		scope["aws:ResourceTag/"+t.Key] = t.Value
	}
	statements := []iampolicy.Statement{
		{
			// Complete the lifecycle actions of this group only: the launch hook's (CONTINUE or
			// ABANDON, from bootstrap) and the terminating hook's (CONTINUE, from the drain
			// watcher). The statement names no hook, so it covers both; its Sid keeps its
			// first name, which the policy rules and deployed roles know.
			// The group's name is generated, and naming its ARN here would make the role
			// depend on the group that depends on the role; instead the statement matches the
			// tags the group carries. CompleteLifecycleAction authorizes on the
			// autoScalingGroup resource type, which supports aws:ResourceTag/${TagKey} and
			// autoscaling:ResourceTag/${TagKey} (Service Authorization Reference, "Actions,
			// resources, and condition keys for Amazon EC2 Auto Scaling"; the Auto Scaling
			// User Guide's identity-based policy examples scope group actions the same way).
			Sid:       SidCompleteLifecycleAction,
			Effect:    "Allow",
			Action:    "autoscaling:CompleteLifecycleAction",
			Resource:  "*",
			Condition: map[string]map[string]string{"StringEquals": scope},
		},
		{
			// Read artifacts with the role (s3:// URLs: mirrored releases, models, the
			// wheelhouse). The agent binary itself is fetched without credentials through the
			// endpoint.
			Sid:      SidReadArtifacts,
			Effect:   "Allow",
			Action:   "s3:GetObject",
			Resource: p.BucketArn + "/*",
		},
		{
			// SSE-KMS artifacts decrypt through S3 only, never by calling KMS directly.
			Sid:       SidDecryptArtifacts,
			Effect:    "Allow",
			Action:    "kms:Decrypt",
			Resource:  p.KeyArn,
			Condition: map[string]map[string]string{"StringEquals": {"kms:ViaService": "s3." + p.Region + ".amazonaws.com"}},
		},
	}
	if p.Metrics {
		statements = append(statements, iampolicy.Statement{
			// Publish the agent's metrics (in-flight requests per node), into the agent's
			// namespace only. PutMetricData supports no resource-level permission (Resource
			// must be "*"); the cloudwatch:namespace condition key restricts the namespace
			// (Service Authorization Reference, "Actions, resources, and condition keys for
			// Amazon CloudWatch"; CloudWatch User Guide, "Using condition keys to limit access
			// to CloudWatch namespaces").
			Sid:       SidPutMetrics,
			Effect:    "Allow",
			Action:    "cloudwatch:PutMetricData",
			Resource:  "*",
			Condition: map[string]map[string]string{"StringEquals": {"cloudwatch:namespace": llmmetrics.Namespace}},
		})
	}
	if p.SecretArn != "" {
		statements = append(statements,
			iampolicy.Statement{
				// The one secret this node reads (the LiteLLM master key), by its full ARN.
				Sid:      SidReadSecret,
				Effect:   "Allow",
				Action:   "secretsmanager:GetSecretValue",
				Resource: p.SecretArn,
			},
			iampolicy.Statement{
				// The secret is encrypted with the department key: decrypt it through Secrets
				// Manager only.
				Sid:       SidDecryptSecret,
				Effect:    "Allow",
				Action:    "kms:Decrypt",
				Resource:  p.KeyArn,
				Condition: map[string]map[string]string{"StringEquals": {"kms:ViaService": "secretsmanager." + p.Region + ".amazonaws.com"}},
			})
	}
	return iampolicy.JSON(statements...)
}

// NodeRoleArgs configures a node role.
type NodeRoleArgs struct {
	// Description says whose nodes assume the role.
	Description string
	// Region is the region the nodes run in.
	Region string
	// Scope are the group's identifying tags (Identity.Scope).
	Scope []argcheck.Tag
	// ArtifactsBucketArn is the bucket whose objects the nodes may read.
	ArtifactsBucketArn pulumi.StringInput
	// KMSKeyArn is the department key the nodes may decrypt with through S3 (and Secrets
	// Manager, with SecretArn).
	KMSKeyArn pulumi.StringInput
	// SecretArn is the one secret the nodes may read. Optional: nil grants no secret.
	SecretArn pulumi.StringInput
	// Metrics lets the nodes publish the agent's metrics (PolicyParams.Metrics). Optional:
	// false grants no PutMetricData.
	Metrics bool
}

// NodeRole is a node role and what hangs off it.
type NodeRole struct {
	// Role is the role ("<name>-role").
	Role *iam.Role
	// SSMAttachment attaches AmazonSSMManagedInstanceCore ("<name>-ssm").
	SSMAttachment *iam.RolePolicyAttachment
	// Policy is the inline policy, NodePolicy ("<name>-node").
	Policy *iam.RolePolicy
	// InstanceProfile carries the role to the instances ("<name>-profile").
	InstanceProfile *iam.InstanceProfile
}

// NewNodeRole registers the role, its Session Manager attachment, its inline policy and the
// instance profile.
func NewNodeRole(ctx *pulumi.Context, name string, args NodeRoleArgs, opts ...pulumi.ResourceOption) (*NodeRole, error) {
	n := name + "-role"
	role, err := iam.NewRole(ctx, n, &iam.RoleArgs{
		Description:      pulumi.String(args.Description),
		AssumeRolePolicy: pulumi.String(AssumeRolePolicy()),
		Tags:             NameTag(n),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("node role: %w", err)
	}

	ssmAttachment, err := iam.NewRolePolicyAttachment(ctx, name+"-ssm", &iam.RolePolicyAttachmentArgs{
		Role:      role.Name,
		PolicyArn: pulumi.String(fmt.Sprintf("arn:%s:iam::aws:policy/%s", rules.Partition(args.Region), SSMManagedPolicy)),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("node role SSM attachment: %w", err)
	}

	inputs := []any{args.ArtifactsBucketArn.ToStringOutput(), args.KMSKeyArn.ToStringOutput()}
	if args.SecretArn != nil {
		inputs = append(inputs, args.SecretArn.ToStringOutput())
	}
	scope, region, metrics := args.Scope, args.Region, args.Metrics
	// Only the document is rendered in the ApplyT; no resource is created there.
	document := pulumi.All(inputs...).ApplyT(func(v []any) (string, error) {
		p := PolicyParams{Scope: scope, Region: region, Metrics: metrics, BucketArn: v[0].(string), KeyArn: v[1].(string)}
		if len(v) > 2 {
			p.SecretArn = v[2].(string)
		}
		return NodePolicy(p)
	}).(pulumi.StringOutput)
	policy, err := iam.NewRolePolicy(ctx, name+"-node", &iam.RolePolicyArgs{
		Role:   role.Name,
		Policy: document,
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("node role policy: %w", err)
	}

	profile, err := iam.NewInstanceProfile(ctx, name+"-profile", &iam.InstanceProfileArgs{
		Role: role.Name,
		Tags: NameTag(name + "-profile"),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("instance profile: %w", err)
	}
	return &NodeRole{Role: role, SSMAttachment: ssmAttachment, Policy: policy, InstanceProfile: profile}, nil
}
