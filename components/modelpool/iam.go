package modelpool

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Statement ids of the node role's inline policy.
const (
	SidCompleteLifecycleAction = "CompleteLaunchLifecycleAction"
	SidReadArtifacts           = "ReadArtifacts"
	SidDecryptArtifacts        = "DecryptArtifactsThroughS3"
)

// policyDocument is an IAM policy document.
type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

// policyStatement is one statement of an IAM policy.
type policyStatement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal map[string]string            `json:"Principal,omitempty"`
	Action    string                       `json:"Action"`
	Resource  string                       `json:"Resource,omitempty"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// assumeRolePolicy lets EC2 instances assume the node role.
func assumeRolePolicy() string {
	doc, _ := json.Marshal(policyDocument{
		Version: "2012-10-17",
		Statement: []policyStatement{{
			Effect:    "Allow",
			Principal: map[string]string{"Service": "ec2.amazonaws.com"},
			Action:    "sts:AssumeRole",
		}},
	})
	return string(doc)
}

// nodePolicy renders the node role's inline policy: exactly what the agent needs and nothing
// else.
func nodePolicy(department, pool, region, bucketArn, keyArn string) (string, error) {
	doc := policyDocument{
		Version: "2012-10-17",
		Statement: []policyStatement{
			{
				// Complete the launch lifecycle action (CONTINUE or ABANDON) of this pool's
				// group only. The group's name is generated, and naming its ARN here would make
				// the role depend on the group that depends on the role; instead the statement
				// matches the tags the group carries. CompleteLifecycleAction authorizes on the
				// autoScalingGroup resource type, which supports aws:ResourceTag/${TagKey} and
				// autoscaling:ResourceTag/${TagKey} (Service Authorization Reference, "Actions,
				// resources, and condition keys for Amazon EC2 Auto Scaling"; the Auto Scaling
				// User Guide's identity-based policy examples scope group actions the same way).
				Sid:      SidCompleteLifecycleAction,
				Effect:   "Allow",
				Action:   "autoscaling:CompleteLifecycleAction",
				Resource: "*",
				Condition: map[string]map[string]string{"StringEquals": {
					"aws:ResourceTag/" + tagDepartment: department,
					"aws:ResourceTag/" + tagPool:       pool,
				}},
			},
			{
				// Read artifacts with the role (s3:// URLs: mirrored releases and models). The
				// agent binary itself is fetched without credentials through the endpoint.
				Sid:      SidReadArtifacts,
				Effect:   "Allow",
				Action:   "s3:GetObject",
				Resource: bucketArn + "/*",
			},
			{
				// SSE-KMS artifacts decrypt through S3 only, never by calling KMS directly.
				Sid:       SidDecryptArtifacts,
				Effect:    "Allow",
				Action:    "kms:Decrypt",
				Resource:  keyArn,
				Condition: map[string]map[string]string{"StringEquals": {"kms:ViaService": "s3." + region + ".amazonaws.com"}},
			},
		},
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// partition is the AWS partition of a region, for AWS-managed policy ARNs.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// SSMManagedPolicy is the AWS-managed policy that lets Session Manager reach the nodes
// (operators get a shell without SSH keys or an open port).
const SSMManagedPolicy = "AmazonSSMManagedInstanceCore"

// role creates the node role, its policies and the instance profile.
func (b *builder) role() error {
	n := b.name + "-role"
	role, err := iam.NewRole(b.ctx, n, &iam.RoleArgs{
		Description:      pulumi.Sprintf("llm-sandbox Ollama nodes of %s/%s", b.args.Department, b.args.Pool),
		AssumeRolePolicy: pulumi.String(assumeRolePolicy()),
		Tags:             nameTag(n),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("node role: %w", err)
	}
	b.comp.Role = role

	ssmAttachment, err := iam.NewRolePolicyAttachment(b.ctx, b.name+"-ssm", &iam.RolePolicyAttachmentArgs{
		Role:      role.Name,
		PolicyArn: pulumi.String(fmt.Sprintf("arn:%s:iam::aws:policy/%s", partition(b.args.Region), SSMManagedPolicy)),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("node role SSM attachment: %w", err)
	}
	b.comp.SSMAttachment = ssmAttachment

	dept, pool, region := b.args.Department, b.args.Pool, b.args.Region
	// Only the document is rendered in the ApplyT; no resource is created there.
	document := pulumi.All(b.args.ArtifactsBucketArn.ToStringOutput(), b.args.KMSKeyArn.ToStringOutput()).ApplyT(
		func(v []any) (string, error) {
			return nodePolicy(dept, pool, region, v[0].(string), v[1].(string))
		}).(pulumi.StringOutput)
	policy, err := iam.NewRolePolicy(b.ctx, b.name+"-node", &iam.RolePolicyArgs{
		Role:   role.Name,
		Policy: document,
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("node role policy: %w", err)
	}
	b.comp.RolePolicy = policy

	profile, err := iam.NewInstanceProfile(b.ctx, b.name+"-profile", &iam.InstanceProfileArgs{
		Role: role.Name,
		Tags: nameTag(b.name + "-profile"),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("instance profile: %w", err)
	}
	b.comp.InstanceProfile = profile
	return nil
}
