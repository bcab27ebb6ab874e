package gateway

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/iampolicy"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
)

// Statement ids of the gateway nodes' key-registry policy.
const (
	SidReadKeyRegistry    = "ReadKeyRegistry"
	SidDecryptKeyRegistry = "DecryptKeyRegistryThroughDynamoDB"
	SidPublishUsage       = "PublishUsageMetrics"
)

// KeyRegistryActions are all the gateway nodes may do on the key registry table: read one
// record by its key id. Keys are issued, revoked and listed with the operator's credentials
// (`sandboxctl keys`), never from a gateway node, so a compromised node cannot mint a key or
// list who holds one.
var KeyRegistryActions = []string{"dynamodb:GetItem"}

// keyRegistryPolicy renders the gateway nodes' read-only grant on the registry table. The
// table is encrypted with the department key; DynamoDB decrypts with it on the reader's behalf,
// so the grant allows kms:Decrypt and kms:DescribeKey only through DynamoDB in the stack's
// region (Amazon DynamoDB Developer Guide, "Encryption at rest: How it works", key policy for a
// customer managed key: kms:ViaService dynamodb.<region>.amazonaws.com).
//
// It also lets the nodes publish the usage counts of the keys they authenticate
// (llm_sandbox_usage.py), to the usage namespace only: PutMetricData has no resource type, so
// its Resource is "*" and the cloudwatch:namespace condition key scopes it (Service
// Authorization Reference, "Actions, resources, and condition keys for Amazon CloudWatch":
// PutMetricData, condition key cloudwatch:namespace).
func keyRegistryPolicy(region, tableArn, keyArn string) (string, error) {
	return iampolicy.JSON(
		iampolicy.Statement{
			Sid:      SidReadKeyRegistry,
			Effect:   "Allow",
			Action:   KeyRegistryActions,
			Resource: tableArn,
		},
		iampolicy.Statement{
			Sid:       SidDecryptKeyRegistry,
			Effect:    "Allow",
			Action:    []string{"kms:Decrypt", "kms:DescribeKey"},
			Resource:  keyArn,
			Condition: map[string]map[string]string{"StringEquals": {"kms:ViaService": "dynamodb." + region + ".amazonaws.com"}},
		},
		iampolicy.Statement{
			Sid:       SidPublishUsage,
			Effect:    "Allow",
			Action:    []string{"cloudwatch:PutMetricData"},
			Resource:  "*",
			Condition: map[string]map[string]string{"StringEquals": {"cloudwatch:namespace": usage.Namespace}},
		},
	)
}

// keyRegistryAccess attaches keyRegistryPolicy to the node role ("<name>-key-registry").
func (b *builder) keyRegistryAccess() error {
	region := b.args.Region
	// Only the document is rendered in the ApplyT; no resource is created there.
	document := pulumi.All(b.args.KeyRegistryTableArn.ToStringOutput(), b.args.KMSKeyArn.ToStringOutput()).ApplyT(
		func(v []any) (string, error) { return keyRegistryPolicy(region, v[0].(string), v[1].(string)) },
	).(pulumi.StringOutput)
	policy, err := iam.NewRolePolicy(b.ctx, b.name+"-key-registry", &iam.RolePolicyArgs{
		Role:   b.comp.Role.Name,
		Policy: document,
	}, b.child())
	if err != nil {
		return err
	}
	b.comp.KeyRegistryPolicy = policy
	return nil
}
