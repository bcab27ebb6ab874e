// Package keys provides the KeyStore component: one customer-managed KMS key per department, the
// Secrets Manager secret, encrypted with that key, that holds the LiteLLM master key, and the
// key registry: the DynamoDB table, encrypted with the same key, of the hashed per-person API
// keys (internal/keyregistry).
package keys

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/dynamodb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/secretsmanager"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
)

// TypeToken is the component's Pulumi type token.
const TypeToken = "llmsandbox:keys:KeyStore"

// DefaultWindowDays is the waiting period, in days, before a deleted key or secret is gone for
// good, when KeyStoreArgs leaves it at zero. It is also the longest period AWS allows.
const DefaultWindowDays = 30

// MinWindowDays is the shortest waiting period AWS allows for key deletion and secret recovery.
const MinWindowDays = 7

// InitialVersionStage is the staging label that the master-key secret version created by
// Pulumi keeps for good, besides AWSCURRENT until the first rotation.
const InitialVersionStage = "LLMSANDBOX_INITIAL"

// KeyStoreArgs configures a KeyStore.
type KeyStoreArgs struct {
	// Department is the department's short name. Required. A lowercase DNS label of 2..32
	// characters; it names the key alias (alias/llm-sandbox/<department>) and the master-key
	// secret (llm-sandbox/<department>/litellm-master-key).
	Department string
	// Region is the AWS region the key lives in, e.g. "ca-central-1". Required. It names the
	// CloudWatch Logs service principal and the log-group ARNs in the key policy.
	Region string
	// AdminRoleArns are the IAM principals allowed to administer the key (describe, enable,
	// disable, rotate, tag, change the policy, schedule deletion), never to use it to encrypt
	// or decrypt. Optional. Defaults to none beyond the account root statement.
	AdminRoleArns []string
	// KeyDeletionWindowDays is the waiting period before a deleted key is destroyed. Optional.
	// Defaults to 30; must be 7..30.
	KeyDeletionWindowDays int
	// SecretRecoveryWindowDays is the waiting period before a deleted secret is destroyed.
	// Optional. Defaults to 30; must be 7..30.
	SecretRecoveryWindowDays int
	// RegistryDeletionProtection keeps the key registry table from being deleted (a destroy
	// then fails until it is turned off). Optional. Defaults to false here; the sandbox passes
	// the stack's gateway.deletionProtection, whose default is true.
	RegistryDeletionProtection bool
	// RateLimitCacheToken, when true, also creates the secret (llm-sandbox/<department>/
	// rate-limit-cache-auth-token, encrypted with the key) holding a freshly generated AUTH
	// token for the gateway's rate-limit cache (components/cache). Optional. Defaults to false.
	RateLimitCacheToken bool
}

// KeyStore is a department's KMS key and LiteLLM master-key secret.
type KeyStore struct {
	pulumi.ResourceState

	// KeyArn is the ARN of the department's KMS key.
	KeyArn pulumi.StringOutput `pulumi:"keyArn"`
	// KeyID is the id of the department's KMS key.
	KeyID pulumi.StringOutput `pulumi:"keyId"`
	// AliasName is the key's alias, alias/llm-sandbox/<department>.
	AliasName pulumi.StringOutput `pulumi:"aliasName"`
	// MasterKeySecretArn is the ARN of the secret holding the LiteLLM master key. It is the ARN
	// only: the key value is never an output.
	MasterKeySecretArn pulumi.StringOutput `pulumi:"masterKeySecretArn"`
	// RegistryTableName is the key registry table's name (keyregistry.TableName).
	RegistryTableName pulumi.StringOutput `pulumi:"registryTableName"`
	// RegistryTableArn is the key registry table's ARN.
	RegistryTableArn pulumi.StringOutput `pulumi:"registryTableArn"`
	// CacheAuthTokenSecretArn is the ARN of the secret holding the rate-limit cache's AUTH
	// token, when RateLimitCacheToken is set (the ARN only). Empty otherwise.
	CacheAuthTokenSecretArn pulumi.StringOutput `pulumi:"cacheAuthTokenSecretArn"`
	// CacheAuthToken is the token itself, marked secret, for the cache that requires it. It
	// is the value stored in the secret (which keeps its first value, like the master key),
	// and never a registered output of the component.
	CacheAuthToken pulumi.StringOutput

	// Key is the KMS key resource.
	Key *kms.Key
	// MasterKeySecret is the Secrets Manager secret resource holding the master key.
	MasterKeySecret *secretsmanager.Secret
	// Registry is the key registry table.
	Registry *dynamodb.Table
	// CacheAuthTokenSecret is the secret holding the rate-limit cache's AUTH token, when
	// RateLimitCacheToken is set.
	CacheAuthTokenSecret *secretsmanager.Secret
}

// NewKeyStore creates a department's KMS key (rotation on, explicit key policy), its alias, and
// a Secrets Manager secret encrypted with it that holds a freshly generated LiteLLM master key.
func NewKeyStore(ctx *pulumi.Context, name string, args *KeyStoreArgs, opts ...pulumi.ResourceOption) (*KeyStore, error) {
	if err := validate(name, args); err != nil {
		return nil, err
	}
	keyWindow := orDefault(args.KeyDeletionWindowDays)
	secretWindow := orDefault(args.SecretRecoveryWindowDays)

	comp := &KeyStore{}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, err
	}
	parent := pulumi.Parent(comp)

	identity, err := aws.GetCallerIdentity(ctx, nil, parent)
	if err != nil {
		return nil, fmt.Errorf("keystore %q: look up the account id: %w", name, err)
	}
	partition, err := aws.GetPartition(ctx, nil, parent)
	if err != nil {
		return nil, fmt.Errorf("keystore %q: look up the partition: %w", name, err)
	}

	policy, err := keyPolicy(policyParams{
		Partition:     partition.Partition,
		DNSSuffix:     partition.DnsSuffix,
		Region:        args.Region,
		AccountID:     identity.AccountId,
		AdminRoleArns: args.AdminRoleArns,
	})
	if err != nil {
		return nil, fmt.Errorf("keystore %q: render the key policy: %w", name, err)
	}

	key, err := kms.NewKey(ctx, name+"-key", &kms.KeyArgs{
		Description:           pulumi.Sprintf("llm-sandbox key for department %s: master-key secret, logs, EBS volumes", args.Department),
		KeyUsage:              pulumi.String("ENCRYPT_DECRYPT"),
		CustomerMasterKeySpec: pulumi.String("SYMMETRIC_DEFAULT"),
		EnableKeyRotation:     pulumi.Bool(true),
		DeletionWindowInDays:  pulumi.Int(keyWindow),
		Policy:                pulumi.String(policy),
	}, parent)
	if err != nil {
		return nil, err
	}

	alias, err := kms.NewAlias(ctx, name+"-key-alias", &kms.AliasArgs{
		Name:        pulumi.String(AliasName(args.Department)),
		TargetKeyId: key.KeyId,
	}, parent)
	if err != nil {
		return nil, err
	}

	masterKey, err := generateMasterKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keystore %q: generate the master key: %w", name, err)
	}
	secret, _, err := newKeptSecret(ctx, name+"-master-key", MasterKeySecretName(args.Department),
		pulumi.Sprintf("LiteLLM master key for the llm-sandbox gateway of department %s", args.Department),
		masterKey, key, secretWindow, parent)
	if err != nil {
		return nil, err
	}

	registry, err := newRegistry(ctx, name, args, key, parent)
	if err != nil {
		return nil, err
	}

	comp.CacheAuthTokenSecretArn = pulumi.String("").ToStringOutput()
	comp.CacheAuthToken = pulumi.ToSecret(pulumi.String("")).(pulumi.StringOutput)
	if args.RateLimitCacheToken {
		if err := newCacheAuthToken(ctx, name, args, key, secretWindow, comp, parent); err != nil {
			return nil, err
		}
	}

	comp.KeyArn = key.Arn
	comp.KeyID = key.KeyId
	comp.AliasName = alias.Name
	comp.MasterKeySecretArn = secret.Arn
	comp.Key = key
	comp.MasterKeySecret = secret
	comp.Registry = registry
	comp.RegistryTableName = registry.Name
	comp.RegistryTableArn = registry.Arn

	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"keyArn":             comp.KeyArn,
		"keyId":              comp.KeyID,
		"aliasName":          comp.AliasName,
		"masterKeySecretArn": comp.MasterKeySecretArn,
		"registryTableName":  comp.RegistryTableName,
		"registryTableArn":   comp.RegistryTableArn,
		// The secret's ARN only: the token is never a registered output.
		"cacheAuthTokenSecretArn": comp.CacheAuthTokenSecretArn,
	}); err != nil {
		return nil, err
	}
	return comp, nil
}

// AliasName is the KMS alias of a department's key.
func AliasName(department string) string {
	return "alias/llm-sandbox/" + department
}

// MasterKeySecretName is the Secrets Manager name of a department's LiteLLM master key.
func MasterKeySecretName(department string) string {
	return "llm-sandbox/" + department + "/litellm-master-key"
}

// CacheAuthTokenSecretName is the Secrets Manager name of a department's rate-limit cache
// AUTH token.
func CacheAuthTokenSecretName(department string) string {
	return "llm-sandbox/" + department + "/rate-limit-cache-auth-token"
}

// newKeptSecret creates a Secrets Manager secret named secretName (resource resName), encrypted
// with the department key, and its first version holding value (resource resName+"-value").
//
// A value is generated on every run, but ignoring changes to secretString keeps the one
// stored at creation, so a later `pulumi up` never replaces the value behind its users' back.
// Rotation is an operator action (docs/keys.md), and two more settings keep it from being
// undone: after `put-secret-value` this version loses AWSCURRENT, so versionStages is ignored
// too (else an update moves AWSCURRENT back to the old value); and it keeps the label
// InitialVersionStage, because a version left with no label is eventually removed, and the
// provider would then recreate it with a fresh value (terraform-aws-modules/
// terraform-aws-secrets-manager#24 and #26, hashicorp/terraform-provider-aws#25168).
func newKeptSecret(ctx *pulumi.Context, resName, secretName string, description pulumi.StringInput, value string, key *kms.Key, window int, parent pulumi.ResourceOption) (*secretsmanager.Secret, *secretsmanager.SecretVersion, error) {
	secret, err := secretsmanager.NewSecret(ctx, resName, &secretsmanager.SecretArgs{
		Name:                 pulumi.String(secretName),
		Description:          description,
		KmsKeyId:             key.Arn,
		RecoveryWindowInDays: pulumi.Int(window),
	}, parent)
	if err != nil {
		return nil, nil, err
	}
	version, err := secretsmanager.NewSecretVersion(ctx, resName+"-value", &secretsmanager.SecretVersionArgs{
		SecretId:      secret.ID(),
		SecretString:  pulumi.ToSecret(pulumi.String(value)).(pulumi.StringOutput),
		VersionStages: pulumi.StringArray{pulumi.String("AWSCURRENT"), pulumi.String(InitialVersionStage)},
	}, parent, pulumi.IgnoreChanges([]string{"secretString", "versionStages"}))
	if err != nil {
		return nil, nil, err
	}
	return secret, version, nil
}

// newCacheAuthToken creates the secret of the rate-limit cache's AUTH token
// ("<name>-cache-auth-token"), encrypted with the department key, and its first value, kept
// like the master key's (changes to the generated value are ignored, so a later run never
// replaces the token the cache requires). The token reaches the cache as a secret input and
// the gateway nodes through Secrets Manager, never through user data.
func newCacheAuthToken(ctx *pulumi.Context, name string, args *KeyStoreArgs, key *kms.Key, window int, comp *KeyStore, parent pulumi.ResourceOption) error {
	token, err := generateCacheToken(rand.Reader)
	if err != nil {
		return fmt.Errorf("keystore %q: generate the cache's AUTH token: %w", name, err)
	}
	secret, version, err := newKeptSecret(ctx, name+"-cache-auth-token", CacheAuthTokenSecretName(args.Department),
		pulumi.Sprintf("AUTH token of the llm-sandbox rate-limit cache of department %s", args.Department),
		token, key, window, parent)
	if err != nil {
		return err
	}
	comp.CacheAuthTokenSecret = secret
	comp.CacheAuthTokenSecretArn = secret.Arn
	// The stored value (state keeps the first one): the cache's token follows the secret.
	comp.CacheAuthToken = pulumi.ToSecret(version.SecretString.Elem()).(pulumi.StringOutput)
	return nil
}

// validate returns every problem with args at once, each naming its field.
func validate(name string, args *KeyStoreArgs) error {
	c := argcheck.NewChecker("keystore", name)
	if args == nil {
		c.Add("args", "required (got nil)")
		return c.Err()
	}
	add := c.Add
	c.Department(args.Department)
	if strings.TrimSpace(args.Region) == "" {
		add("Region", "required (got %q)", args.Region)
	}
	for i, arn := range args.AdminRoleArns {
		if !strings.HasPrefix(arn, "arn:") {
			add(fmt.Sprintf("AdminRoleArns[%d]", i), "must be an IAM ARN (got %q)", arn)
		}
	}
	windows := []struct {
		field string
		days  int
	}{
		{"KeyDeletionWindowDays", args.KeyDeletionWindowDays},
		{"SecretRecoveryWindowDays", args.SecretRecoveryWindowDays},
	}
	for _, w := range windows {
		if w.days != 0 && (w.days < MinWindowDays || w.days > DefaultWindowDays) {
			add(w.field, "must be %d..%d days, or 0 for the default %d (got %d)",
				MinWindowDays, DefaultWindowDays, DefaultWindowDays, w.days)
		}
	}
	return c.Err()
}

func orDefault(days int) int {
	if days == 0 {
		return DefaultWindowDays
	}
	return days
}
