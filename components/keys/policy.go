package keys

import (
	"fmt"

	"github.com/llm-sandbox/llm-sandbox/components/internal/iampolicy"
)

// Statement ids of the key policy, so tests and operators can find each statement.
const (
	SidRoot              = "EnableIAMUserPermissions"
	SidAdmins            = "AllowKeyAdministration"
	SidLogs              = "AllowCloudWatchLogs"
	SidAutoScalingUse    = "AllowAutoScalingServiceLinkedRoleUse"
	SidAutoScalingGrants = "AllowAutoScalingServiceLinkedRoleGrants"
	SidCloudWatchAlarms  = "AllowCloudWatchAlarmsToEncryptedTopic"
)

// adminActions are the key administration actions of the KMS console's "key administrators"
// statement (AWS KMS Developer Guide, "Default key policy", "Allows key administrators to
// administer the KMS key"), spelled out instead of wildcards: "kms:Create*" would include
// kms:CreateGrant, through which an administrator could grant itself kms:Decrypt. No action here
// encrypts, decrypts or creates grants.
var adminActions = []string{
	"kms:CancelKeyDeletion",
	"kms:CreateAlias",
	"kms:DeleteAlias",
	"kms:DescribeKey",
	"kms:DisableKey",
	"kms:DisableKeyRotation",
	"kms:EnableKey",
	"kms:EnableKeyRotation",
	"kms:GetKeyPolicy",
	"kms:GetKeyRotationStatus",
	"kms:ListGrants",
	"kms:ListKeyPolicies",
	"kms:ListKeyRotations",
	"kms:ListResourceTags",
	"kms:PutKeyPolicy",
	"kms:RevokeGrant",
	"kms:RotateKeyOnDemand",
	"kms:ScheduleKeyDeletion",
	"kms:TagResource",
	"kms:UntagResource",
	"kms:UpdateAlias",
	"kms:UpdateKeyDescription",
}

// principal names AWS principals (accounts, roles) or service principals.
type principal struct {
	AWS     []string `json:"AWS,omitempty"`
	Service []string `json:"Service,omitempty"`
}

// policyParams are the values the key policy depends on.
type policyParams struct {
	Partition     string // "aws", "aws-cn", "aws-us-gov"
	DNSSuffix     string // "amazonaws.com", "amazonaws.com.cn"
	Region        string
	AccountID     string
	AdminRoleArns []string
}

// keyPolicy renders the key policy as JSON.
func keyPolicy(p policyParams) (string, error) {
	// In a key policy the resource is always "*", meaning this key.
	allow := func(sid string, who principal, actions ...string) iampolicy.Statement {
		return iampolicy.Statement{Sid: sid, Effect: "Allow", Principal: who, Action: actions, Resource: "*"}
	}

	// (1) AWS KMS Developer Guide, "Default key policy", "Allows access to the AWS account and
	// enables IAM policies" (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html):
	// without it IAM policies cannot grant use of the key (the gateway role reading the secret,
	// for instance), and the key becomes unmanageable if every other principal named here goes.
	root := allow(SidRoot, principal{AWS: []string{fmt.Sprintf("arn:%s:iam::%s:root", p.Partition, p.AccountID)}}, "kms:*")
	statements := []iampolicy.Statement{root}

	// (2) Key administrators: manage the key, never use it.
	if len(p.AdminRoleArns) > 0 {
		admins := append([]string(nil), p.AdminRoleArns...)
		statements = append(statements, allow(SidAdmins, principal{AWS: admins}, adminActions...))
	}

	// (3) CloudWatch Logs encrypts the flow-log and node-agent log groups with this key.
	// CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS Key Management
	// Service" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html):
	// the regional service principal, limited by the encryption context to this account's log
	// groups in this region.
	logs := allow(SidLogs, principal{Service: []string{fmt.Sprintf("logs.%s.%s", p.Region, p.DNSSuffix)}},
		"kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")
	logs.Condition = map[string]map[string]string{
		"ArnLike": {
			"kms:EncryptionContext:aws:logs:arn": fmt.Sprintf("arn:%s:logs:%s:%s:log-group:*", p.Partition, p.Region, p.AccountID),
		},
	}
	statements = append(statements, logs)

	// (4) EC2 Auto Scaling launches instances whose EBS volumes are encrypted with this key on
	// behalf of its service-linked role, which has no access to customer managed keys unless the
	// key policy grants it. Amazon EC2 Auto Scaling User Guide, "Required AWS KMS key policy for
	// use with encrypted volumes", Example 1
	// (https://docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html):
	// one statement for direct use, one for grants limited to AWS resources (EBS, EC2).
	slr := principal{AWS: []string{fmt.Sprintf(
		"arn:%s:iam::%s:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
		p.Partition, p.AccountID)}}
	grants := allow(SidAutoScalingGrants, slr, "kms:CreateGrant")
	grants.Condition = map[string]map[string]string{
		"Bool": {"kms:GrantIsForAWSResource": "true"},
	}
	statements = append(statements,
		allow(SidAutoScalingUse, slr, "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"),
		grants,
	)

	// (5) CloudWatch alarms publish to the department's alarm topic, which is encrypted with
	// this key; without this statement every notification is dropped. Amazon SNS Developer
	// Guide, "Enable compatibility between event sources from AWS services and encrypted
	// topics" (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services):
	// the CloudWatch service principal needs kms:Decrypt and kms:GenerateDataKey* only. The
	// conditions hold it to alarms of this account in this region (the confused-deputy guard).
	alarms := allow(SidCloudWatchAlarms, principal{Service: []string{"cloudwatch.amazonaws.com"}},
		"kms:Decrypt", "kms:GenerateDataKey*")
	alarms.Condition = map[string]map[string]string{
		"StringEquals": {"aws:SourceAccount": p.AccountID},
		"ArnLike":      {"aws:SourceArn": fmt.Sprintf("arn:%s:cloudwatch:%s:%s:alarm:*", p.Partition, p.Region, p.AccountID)},
	}
	statements = append(statements, alarms)

	return iampolicy.JSON(statements...)
}
