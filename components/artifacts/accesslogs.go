package artifacts

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/iampolicy"
)

// LoggingServicePrincipal is the service that delivers S3 server access logs (Amazon S3 User
// Guide, "Enabling Amazon S3 server access logging", "Permissions for log delivery").
const LoggingServicePrincipal = "logging.s3.amazonaws.com"

// AccessLogPrefix starts the key of every access-log object the artifacts bucket delivers.
const AccessLogPrefix = "artifacts/"

// SidAllowAccessLogDelivery is the log bucket policy's only Allow.
const SidAllowAccessLogDelivery = "AllowS3ServerAccessLogDelivery"

// LogBucketPrefix is the prefix of a department's access-log bucket name: as long as
// BucketPrefix, so a 32-character department still fits S3's 63 characters.
func LogBucketPrefix(department string) string {
	return "log-" + department + "-"
}

// privateBucket is a bucket and the settings every bucket of the component has.
type privateBucket struct {
	bucket                                          *s3.BucketV2
	publicAccess, ownership, versioning, encryption pulumi.Resource
}

// newPrivateBucket creates a bucket named from prefix (children <base>-bucket,
// -public-access-block, -ownership, -versioning, -encryption): all public access blocked, ACLs
// off, versioning on, and sse as its default encryption.
func newPrivateBucket(ctx *pulumi.Context, base, prefix string, forceDestroy bool,
	sse *s3.BucketServerSideEncryptionConfigurationV2RuleArgs, parent pulumi.ResourceOption) (*privateBucket, error) {
	bucket, err := s3.NewBucketV2(ctx, base+"-bucket", &s3.BucketV2Args{
		BucketPrefix: pulumi.String(prefix),
		ForceDestroy: pulumi.Bool(forceDestroy),
		Tags:         pulumi.StringMap{"Name": pulumi.String(base + "-bucket")},
	}, parent)
	if err != nil {
		return nil, err
	}
	publicAccess, err := s3.NewBucketPublicAccessBlock(ctx, base+"-public-access-block", &s3.BucketPublicAccessBlockArgs{
		Bucket:                bucket.ID(),
		BlockPublicAcls:       pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("public access block: %w", err)
	}
	// BucketOwnerEnforced turns ACLs off: access is decided by the policy and IAM alone.
	ownership, err := s3.NewBucketOwnershipControls(ctx, base+"-ownership", &s3.BucketOwnershipControlsArgs{
		Bucket: bucket.ID(),
		Rule:   &s3.BucketOwnershipControlsRuleArgs{ObjectOwnership: pulumi.String("BucketOwnerEnforced")},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("ownership controls: %w", err)
	}
	versioning, err := s3.NewBucketVersioningV2(ctx, base+"-versioning", &s3.BucketVersioningV2Args{
		Bucket:                  bucket.ID(),
		VersioningConfiguration: &s3.BucketVersioningV2VersioningConfigurationArgs{Status: pulumi.String("Enabled")},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("versioning: %w", err)
	}
	encryption, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, base+"-encryption", &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: bucket.ID(),
		Rules:  s3.BucketServerSideEncryptionConfigurationV2RuleArray{sse},
	}, parent)
	if err != nil {
		return nil, fmt.Errorf("default encryption: %w", err)
	}
	return &privateBucket{bucket, publicAccess, ownership, versioning, encryption}, nil
}

// accessLogs creates the access-log bucket (children <name>-logs-*) and turns on server access
// logging of source into it. after are the source bucket's configuration resources: S3 refuses
// concurrent configuration changes on one bucket, so logging is switched on after them.
func accessLogs(ctx *pulumi.Context, name string, args *BucketArgs, source *s3.BucketV2, after []pulumi.Resource,
	comp *Bucket, parent pulumi.ResourceOrInvokeOption) error {
	// SSE-S3, not the department key: S3 server access logging delivers only to a target
	// bucket whose default encryption is SSE-S3 (Amazon S3 User Guide, "Enabling Amazon S3
	// server access logging": default encryption of the target bucket must be SSE-S3, AES256;
	// the S3 API Reference, LoggingEnabled: the target "can't use SSE-KMS or DSSE-KMS default
	// encryption"). The logs hold request metadata only (requester, key, time, status), never
	// an object's content.
	logs, err := newPrivateBucket(ctx, name+"-logs", LogBucketPrefix(args.Department), args.ForceDestroy,
		&s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
				SseAlgorithm: pulumi.String("AES256"),
			},
		}, parent)
	if err != nil {
		return fmt.Errorf("log bucket: %w", err)
	}

	// aws:SourceAccount and aws:SourceArn keep the logging service from writing here on
	// behalf of any other bucket or account (the confused-deputy conditions the S3 User Guide
	// gives for log delivery).
	caller, err := aws.GetCallerIdentity(ctx, &aws.GetCallerIdentityArgs{}, parent)
	if err != nil {
		return fmt.Errorf("look up the account for the log bucket policy: %w", err)
	}
	document := pulumi.All(logs.bucket.Arn, source.Arn).ApplyT(func(v []any) (string, error) {
		return logBucketPolicy(v[0].(string), v[1].(string), caller.AccountId)
	}).(pulumi.StringOutput)
	policy, err := s3.NewBucketPolicy(ctx, name+"-logs-policy", &s3.BucketPolicyArgs{
		Bucket: logs.bucket.ID(),
		Policy: document,
	}, parent, pulumi.DependsOn([]pulumi.Resource{logs.publicAccess, logs.ownership}))
	if err != nil {
		return fmt.Errorf("log bucket policy: %w", err)
	}

	// Kept as long as the VPC flow logs: one retention for the network's and the bucket's
	// records of who fetched what. Versioning keeps a deleted or overwritten log recoverable
	// for the same time, then the old versions go too.
	days := pulumi.Int(args.AccessLogRetentionDays)
	lifecycle, err := s3.NewBucketLifecycleConfigurationV2(ctx, name+"-logs-lifecycle", &s3.BucketLifecycleConfigurationV2Args{
		Bucket: logs.bucket.ID(),
		Rules: s3.BucketLifecycleConfigurationV2RuleArray{&s3.BucketLifecycleConfigurationV2RuleArgs{
			Id:                          pulumi.String("expire-access-logs"),
			Status:                      pulumi.String("Enabled"),
			Filter:                      &s3.BucketLifecycleConfigurationV2RuleFilterArgs{},
			Expiration:                  &s3.BucketLifecycleConfigurationV2RuleExpirationArgs{Days: days},
			NoncurrentVersionExpiration: &s3.BucketLifecycleConfigurationV2RuleNoncurrentVersionExpirationArgs{NoncurrentDays: days},
			AbortIncompleteMultipartUpload: &s3.BucketLifecycleConfigurationV2RuleAbortIncompleteMultipartUploadArgs{
				DaysAfterInitiation: pulumi.Int(1),
			},
		}},
	}, parent, pulumi.DependsOn([]pulumi.Resource{logs.versioning, logs.encryption, policy}))
	if err != nil {
		return fmt.Errorf("log bucket lifecycle: %w", err)
	}

	logging, err := s3.NewBucketLoggingV2(ctx, name+"-access-logging", &s3.BucketLoggingV2Args{
		Bucket:       source.ID(),
		TargetBucket: logs.bucket.ID(),
		TargetPrefix: pulumi.String(AccessLogPrefix),
	}, parent, pulumi.DependsOn(append(after, policy, logs.encryption)))
	if err != nil {
		return fmt.Errorf("access logging: %w", err)
	}

	comp.LogBucket, comp.LogBucketPolicy, comp.LogLifecycle, comp.AccessLogging = logs.bucket, policy, lifecycle, logging
	comp.LogBucketName = logs.bucket.Bucket
	return nil
}

// logBucketPolicy renders the log bucket's policy: TLS only, and writes only by the S3 logging
// service, only under AccessLogPrefix, only for the source bucket of this account.
func logBucketPolicy(logBucketArn, sourceBucketArn, accountID string) (string, error) {
	return iampolicy.JSON(
		denyInsecureTransport(logBucketArn),
		iampolicy.Statement{
			Sid:       SidAllowAccessLogDelivery,
			Effect:    "Allow",
			Principal: map[string]string{"Service": LoggingServicePrincipal},
			Action:    "s3:PutObject",
			Resource:  logBucketArn + "/" + AccessLogPrefix + "*",
			Condition: map[string]map[string]string{
				"ArnLike":      {"aws:SourceArn": sourceBucketArn},
				"StringEquals": {"aws:SourceAccount": accountID},
			},
		},
	)
}
