package network

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/iampolicy"
)

// flowLogsPrincipal is the service that delivers VPC flow logs to CloudWatch Logs.
const flowLogsPrincipal = "vpc-flow-logs.amazonaws.com"

// flowLogs records ALL traffic of the VPC into a CloudWatch log group through a role that only
// the flow-logs service of this account can assume and that may only write to that group.
func (b *builder) flowLogs() error {
	n := b.name + "-flow-logs"
	logGroupArgs := &cloudwatch.LogGroupArgs{
		RetentionInDays: pulumi.Int(b.s.retentionDays),
		Tags:            nameTag(n),
	}
	if b.s.kmsKeyArn != nil {
		logGroupArgs.KmsKeyId = b.s.kmsKeyArn.ToStringOutput()
	}
	logGroup, err := cloudwatch.NewLogGroup(b.ctx, n, logGroupArgs, b.child()...)
	if err != nil {
		return fmt.Errorf("flow-log group: %w", err)
	}

	trust, err := b.flowLogsTrustPolicy()
	if err != nil {
		return err
	}
	role, err := iam.NewRole(b.ctx, n, &iam.RoleArgs{
		Description:      pulumi.String("Delivers the VPC flow logs of " + b.name + " to CloudWatch Logs"),
		AssumeRolePolicy: pulumi.String(trust),
		Tags:             nameTag(n),
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("flow-log role: %w", err)
	}

	// The actions AWS documents for flow-log delivery ("IAM role for publishing flow logs to
	// CloudWatch Logs", VPC user guide), less logs:CreateLogGroup since the group exists, and
	// scoped to this group and its streams instead of "*".
	policy := logGroup.Arn.ApplyT(func(arn string) (string, error) {
		return iampolicy.JSON(iampolicy.Statement{
			Effect: "Allow",
			Action: []string{
				"logs:CreateLogStream",
				"logs:PutLogEvents",
				"logs:DescribeLogGroups",
				"logs:DescribeLogStreams",
			},
			Resource: []string{arn, arn + ":*"},
		})
	}).(pulumi.StringOutput)
	rolePolicy, err := iam.NewRolePolicy(b.ctx, n, &iam.RolePolicyArgs{
		Role:   role.ID(),
		Policy: policy,
	}, b.child()...)
	if err != nil {
		return fmt.Errorf("flow-log role policy: %w", err)
	}

	if _, err := ec2.NewFlowLog(b.ctx, n, &ec2.FlowLogArgs{
		VpcId:              b.comp.Vpc.ID(),
		TrafficType:        pulumi.String("ALL"),
		LogDestinationType: pulumi.String("cloud-watch-logs"),
		LogDestination:     logGroup.Arn,
		IamRoleArn:         role.Arn,
		Tags:               nameTag(n),
		// Delivery starts at once; without the policy in place the first records are refused.
	}, b.child(pulumi.DependsOn([]pulumi.Resource{rolePolicy}))...); err != nil {
		return fmt.Errorf("flow log: %w", err)
	}
	return nil
}

// flowLogsTrustPolicy lets only the flow-logs service, acting for a flow log of this account in
// this region, assume the role: the aws:SourceAccount and aws:SourceArn conditions AWS
// recommends against the confused-deputy problem (VPC user guide, "IAM role for publishing
// flow logs to CloudWatch Logs").
func (b *builder) flowLogsTrustPolicy() (string, error) {
	caller, err := aws.GetCallerIdentity(b.ctx, &aws.GetCallerIdentityArgs{}, pulumi.Parent(b.comp))
	if err != nil {
		return "", fmt.Errorf("look up the account for the flow-log role: %w", err)
	}
	partition, err := aws.GetPartition(b.ctx, &aws.GetPartitionArgs{}, pulumi.Parent(b.comp))
	if err != nil {
		return "", fmt.Errorf("look up the partition for the flow-log role: %w", err)
	}
	sourceArn := fmt.Sprintf("arn:%s:ec2:%s:%s:vpc-flow-log/*", partition.Partition, b.s.region, caller.AccountId)
	doc, err := iampolicy.JSON(iampolicy.Statement{
		Effect:    "Allow",
		Principal: map[string]string{"Service": flowLogsPrincipal},
		Action:    []string{"sts:AssumeRole"},
		Condition: map[string]map[string]string{
			"StringEquals": {"aws:SourceAccount": caller.AccountId},
			"ArnLike":      {"aws:SourceArn": sourceArn},
		},
	})
	if err != nil {
		return "", fmt.Errorf("flow-log trust policy: %w", err)
	}
	return doc, nil
}
