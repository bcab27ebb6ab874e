// Package artifacts provides the llmsandbox:artifacts:Bucket component: a department's private,
// versioned, KMS-encrypted S3 bucket that nodes read only through the VPC's S3 gateway
// endpoint, and the node agent binary stored in it under a content-addressed key.
package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
)

// TypeToken is the component's Pulumi type token.
const TypeToken = "llmsandbox:artifacts:Bucket"

// AgentKeyPrefix starts the object key of every node agent build; the build's SHA-256 follows.
const AgentKeyPrefix = "agent/sandbox-node-"

// AgentContentType is the content type the agent object is stored with.
const AgentContentType = "application/octet-stream"

// BucketArgs configures a Bucket.
type BucketArgs struct {
	// Department is the department's short name: a lowercase DNS label of 2..32 characters. It
	// starts the bucket's generated name (see BucketPrefix). Required.
	Department string
	// KMSKeyArn is the ARN of the department's KMS key. Every object is encrypted with it by
	// default (SSE-KMS, S3 bucket key on), except the agent binary (see AgentPath). Required.
	KMSKeyArn pulumi.StringInput
	// S3EndpointID is the ID of the department VPC's S3 gateway endpoint. The bucket policy admits
	// anonymous reads only through it. Required.
	S3EndpointID pulumi.StringInput
	// AgentPath is the path of the built sandbox-node binary (linux/amd64) to upload. Required;
	// the file must exist and hash to AgentSHA256.
	AgentPath string
	// AgentSHA256 is the lowercase hex SHA-256 of the file at AgentPath. It names the object
	// (agent/sandbox-node-<sha256>), so unchanged code means no diff. Required.
	AgentSHA256 string
	// AccessLogRetentionDays is how long the server access logs (who fetched which object, and
	// when) are kept in the log bucket, in days: the VPC flow logs' retention, so both records
	// of a node's downloads cover the same time. Required; at least 1.
	AccessLogRetentionDays int
	// ForceDestroy lets `pulumi destroy` delete the bucket while it still holds objects (every
	// version of them). Optional. Defaults to false: destroy fails while objects remain, so
	// nothing stored is lost by accident. The access-log bucket follows the same setting.
	ForceDestroy bool
}

// Bucket is a department's artifacts bucket and the node agent object in it.
type Bucket struct {
	pulumi.ResourceState

	// BucketName is the bucket's generated name.
	BucketName pulumi.StringOutput `pulumi:"bucketName"`
	// BucketArn is the bucket's ARN (node roles get s3:GetObject on BucketArn + "/*").
	BucketArn pulumi.StringOutput `pulumi:"bucketArn"`
	// AgentKey is the agent object's key, agent/sandbox-node-<sha256>. It resolves only once
	// the object is uploaded.
	AgentKey pulumi.StringOutput `pulumi:"agentKey"`
	// AgentURL is https://<bucket>.s3.<region>.amazonaws.com/<key>, which nodes fetch with a
	// plain HTTPS GET (no credentials) through the S3 gateway endpoint. It resolves only once
	// the object is uploaded, so a launch template that renders it never points at nothing.
	AgentURL pulumi.StringOutput `pulumi:"agentUrl"`

	// LogBucketName is the generated name of the bucket that receives the artifacts bucket's
	// server access logs.
	LogBucketName pulumi.StringOutput `pulumi:"logBucketName"`

	// AgentSHA256 is the agent binary's SHA-256, as given.
	AgentSHA256 string
	// Bucket is the S3 bucket.
	Bucket *s3.BucketV2
	// Policy is the bucket policy (TLS only; anonymous GetObject only through the endpoint).
	Policy *s3.BucketPolicy
	// AgentObject is the uploaded agent binary.
	AgentObject *s3.BucketObjectv2
	// LogBucket receives the server access logs (SSE-S3, versioned, public access blocked).
	LogBucket *s3.BucketV2
	// LogBucketPolicy admits only the S3 logging service, for this bucket, over TLS.
	LogBucketPolicy *s3.BucketPolicy
	// LogLifecycle expires the access logs after AccessLogRetentionDays.
	LogLifecycle *s3.BucketLifecycleConfigurationV2
	// AccessLogging turns on server access logging of Bucket into LogBucket.
	AccessLogging *s3.BucketLoggingV2
}

// BucketPrefix is the prefix of a department's bucket name; S3 (through the provider) appends
// 26 unique characters. "llm-" + a 32-character department + "-" is 37 characters, the longest
// prefix the provider accepts, and 63 with the suffix, the longest bucket name S3 accepts.
func BucketPrefix(department string) string {
	return "llm-" + department + "-"
}

// AgentKey is the object key of the agent build with the given SHA-256.
func AgentKey(sha256Hex string) string {
	return AgentKeyPrefix + sha256Hex
}

// NewBucket validates args, then creates the bucket (private, versioned, SSE-KMS by default,
// public access blocked, ACLs disabled), its policy, the agent object, and the bucket that
// receives its server access logs.
func NewBucket(ctx *pulumi.Context, name string, args *BucketArgs, opts ...pulumi.ResourceOption) (*Bucket, error) {
	if err := validate(name, args); err != nil {
		return nil, err
	}

	comp := &Bucket{AgentSHA256: args.AgentSHA256}
	if err := ctx.RegisterComponentResource(TypeToken, name, comp, opts...); err != nil {
		return nil, fmt.Errorf("artifacts bucket %q: register component: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	wrap := func(what string, err error) error {
		return fmt.Errorf("artifacts bucket %q: %s: %w", name, what, err)
	}

	// bucketPrefix, never a fixed name: bucket names are global, and a generated one lets a
	// replacement be created before the old bucket is deleted.
	parts, err := newPrivateBucket(ctx, name, BucketPrefix(args.Department), args.ForceDestroy,
		&s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
				SseAlgorithm:   pulumi.String("aws:kms"),
				KmsMasterKeyId: args.KMSKeyArn,
			},
			// The bucket key cuts KMS requests (and their cost) for every object read.
			BucketKeyEnabled: pulumi.Bool(true),
		}, parent)
	if err != nil {
		return nil, wrap("bucket", err)
	}
	bucket, publicAccess, ownership, versioning, encryption := parts.bucket, parts.publicAccess, parts.ownership, parts.versioning, parts.encryption

	// The document is rendered from the resolved ARN and endpoint id; no resource is created in
	// the ApplyT.
	document := pulumi.All(bucket.Arn, args.S3EndpointID.ToStringOutput()).ApplyT(func(v []any) (string, error) {
		return bucketPolicy(v[0].(string), v[1].(string))
	}).(pulumi.StringOutput)
	// After the public access block and ownership controls: S3 rejects concurrent changes to
	// one bucket's configuration ("A conflicting conditional operation is currently in
	// progress"), and the policy must be judged against a bucket that already blocks public
	// policies.
	policy, err := s3.NewBucketPolicy(ctx, name+"-policy", &s3.BucketPolicyArgs{
		Bucket: bucket.ID(),
		Policy: document,
	}, parent, pulumi.DependsOn([]pulumi.Resource{publicAccess, ownership}))
	if err != nil {
		return nil, wrap("bucket policy", err)
	}

	if err := accessLogs(ctx, name, args, bucket, []pulumi.Resource{policy, versioning, encryption}, comp, parent); err != nil {
		return nil, wrap("access logs", err)
	}

	key := AgentKey(args.AgentSHA256)
	agent, err := s3.NewBucketObjectv2(ctx, name+"-agent", &s3.BucketObjectv2Args{
		Bucket:      bucket.ID(),
		Key:         pulumi.String(key),
		Source:      pulumi.NewFileAsset(args.AgentPath),
		ContentType: pulumi.String(AgentContentType),
		// SSE-S3 for this one object, not the bucket's SSE-KMS default: S3 refuses anonymous
		// (unsigned) requests for SSE-KMS objects ("Requests specifying Server Side Encryption
		// with AWS KMS managed keys require AWS Signature Version 4", AWS re:Post knowledge
		// center "s3-kms-signature-version-error"), and the nodes fetch the agent with plain
		// curl before any AWS SDK is on the machine. The binary holds no secret; it is still
		// encrypted at rest, still readable only through the endpoint, and checked against its
		// SHA-256 on the node.
		ServerSideEncryption: pulumi.String("AES256"),
		// S3 verifies the upload against a SHA-256 checksum it computes from the body.
		ChecksumAlgorithm: pulumi.String("SHA256"),
		// The diff is keyed on the content hash, not the ETag (which is not an MD5 of the body
		// for multipart uploads): the same build gives the same key and the same hash, so no
		// diff; a new build gives a new key, so a new object beside the old one.
		SourceHash: pulumi.String(args.AgentSHA256),
		Tags:       pulumi.StringMap{"Name": pulumi.String(name + "-agent")},
	}, parent, pulumi.DependsOn([]pulumi.Resource{versioning, encryption, publicAccess, ownership}),
		// A new build replaces this resource, but the old object must stay: nodes launched
		// from an older launch template version (an instance refresh that rolls back, a warm
		// pool node bootstrapping again) still fetch it. Old builds are a few MB each and go
		// with the bucket.
		pulumi.RetainOnDelete(true))
	if err != nil {
		return nil, wrap("agent object", err)
	}

	comp.Bucket, comp.Policy, comp.AgentObject = bucket, policy, agent
	comp.BucketName = bucket.Bucket
	comp.BucketArn = bucket.Arn
	comp.AgentKey = agent.Key
	// The regional virtual-hosted name (<bucket>.s3.<region>.amazonaws.com) resolves to S3's
	// public addresses, which the gateway endpoint's prefix-list route carries privately.
	comp.AgentURL = pulumi.Sprintf("https://%s/%s", bucket.BucketRegionalDomainName, agent.Key)
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{
		"bucketName":    comp.BucketName,
		"bucketArn":     comp.BucketArn,
		"agentKey":      comp.AgentKey,
		"agentUrl":      comp.AgentURL,
		"logBucketName": comp.LogBucketName,
	}); err != nil {
		return nil, wrap("register outputs", err)
	}
	return comp, nil
}

// validate returns every problem with args at once, each naming its field.
func validate(name string, args *BucketArgs) error {
	c := argcheck.NewChecker("artifacts bucket", name)
	if args == nil {
		c.Add("BucketArgs", "required (got nil)")
		return c.Err()
	}
	add := c.Add
	c.Department(args.Department)
	if args.KMSKeyArn == nil {
		add("KMSKeyArn", "required (got nil)")
	}
	if args.S3EndpointID == nil {
		add("S3EndpointID", "required (got nil): reads are admitted only through the VPC's S3 gateway endpoint")
	}
	if args.AccessLogRetentionDays < 1 {
		add("AccessLogRetentionDays", "required: the days the access logs are kept, at least 1 (got %d)", args.AccessLogRetentionDays)
	}
	shaOK := c.SHA256("AgentSHA256", args.AgentSHA256)
	if args.AgentPath == "" {
		add("AgentPath", "required (got an empty string)")
	} else if got, err := fileSHA256(args.AgentPath); err != nil {
		add("AgentPath", "%v", err)
	} else if shaOK && got != args.AgentSHA256 {
		// A stale hash would name the object after a build it does not hold, and every node
		// would refuse the download.
		add("AgentSHA256", "does not match the file at AgentPath %s (got %s, the file hashes to %s)", args.AgentPath, args.AgentSHA256, got)
	}
	return c.Err()
}

// fileSHA256 returns the lowercase hex SHA-256 of a regular file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the agent binary: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cannot read the agent binary: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("cannot read the agent binary: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
