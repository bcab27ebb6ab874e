package keys

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/dynamodb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
)

// newRegistry creates the key registry table ("<name>-registry"): one item per issued key,
// keyed by its id, holding only a hash of the key (keyregistry.Hash). It is
//   - encrypted with the department key, so who may read it is also a KMS question, and its
//     use appears in CloudTrail under the key;
//   - recoverable to any second of the last 35 days (point-in-time recovery), so a mistaken
//     `keys revoke` or a deleted item can be undone;
//   - deletion-protected when the stack's gateway is (gateway.deletionProtection);
//   - on-demand, since a department issues hundreds of keys and the gateway reads each one at
//     most once per cache lifetime: provisioned capacity would cost more idle than it serves;
//   - purged by DynamoDB's time to live keyregistry.PurgeAfter past each key's expiry, so owner
//     labels (personal data when they name a person) are not kept for ever.
func newRegistry(ctx *pulumi.Context, name string, args *KeyStoreArgs, key *kms.Key, parent pulumi.ResourceOption) (*dynamodb.Table, error) {
	return dynamodb.NewTable(ctx, name+"-registry", &dynamodb.TableArgs{
		Name:        pulumi.String(keyregistry.TableName(args.Department)),
		BillingMode: pulumi.String("PAY_PER_REQUEST"),
		HashKey:     pulumi.String(keyregistry.AttrKeyID),
		Attributes: dynamodb.TableAttributeArray{
			dynamodb.TableAttributeArgs{Name: pulumi.String(keyregistry.AttrKeyID), Type: pulumi.String("S")},
		},
		ServerSideEncryption: dynamodb.TableServerSideEncryptionArgs{
			Enabled:   pulumi.Bool(true),
			KmsKeyArn: key.Arn,
		},
		PointInTimeRecovery:       dynamodb.TablePointInTimeRecoveryArgs{Enabled: pulumi.Bool(true)},
		DeletionProtectionEnabled: pulumi.Bool(args.RegistryDeletionProtection),
		Ttl: dynamodb.TableTtlArgs{
			Enabled:       pulumi.Bool(true),
			AttributeName: pulumi.String(keyregistry.AttrPurge),
		},
	}, parent)
}
