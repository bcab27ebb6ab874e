package artifacts

import "github.com/llm-sandbox/llm-sandbox/components/internal/iampolicy"

// Statement ids of the bucket policy.
const (
	SidDenyInsecureTransport = "DenyInsecureTransport"
	SidReadThroughEndpoint   = "AllowReadThroughVpcEndpoint"
)

// bucketPolicy renders the bucket policy for the bucket and the VPC's S3 gateway endpoint.
//
// There is deliberately no statement for the deploying principal: it reaches the bucket through
// IAM (same account), and a Deny on its reads would break the provider's refresh of the agent
// object.
func bucketPolicy(bucketArn, endpointID string) (string, error) {
	return iampolicy.JSON(
		denyInsecureTransport(bucketArn),
		iampolicy.Statement{
			// Nodes fetch the agent with a plain, unsigned HTTPS GET before they have any
			// AWS tooling, so the grant is to any principal, but only for requests that
			// arrive through this VPC's gateway endpoint. Amazon S3 User Guide, "Blocking
			// public access to your Amazon S3 storage", "The meaning of 'public'": a policy
			// is not public when it grants to a fixed aws:SourceVpce (fixed: no wildcard, no
			// policy variable), so BlockPublicPolicy and RestrictPublicBuckets both stay on
			// and this policy is accepted. Only s3:GetObject: no listing, no writes.
			Sid:       SidReadThroughEndpoint,
			Effect:    "Allow",
			Principal: "*",
			Action:    "s3:GetObject",
			Resource:  bucketArn + "/*",
			Condition: map[string]map[string]string{"StringEquals": {"aws:SourceVpce": endpointID}},
		},
	)
}

// denyInsecureTransport is the statement that keeps everything off a bucket over plain HTTP,
// whoever asks.
func denyInsecureTransport(bucketArn string) iampolicy.Statement {
	return iampolicy.Statement{
		Sid:       SidDenyInsecureTransport,
		Effect:    "Deny",
		Principal: "*",
		Action:    "s3:*",
		Resource:  []string{bucketArn, bucketArn + "/*"},
		Condition: map[string]map[string]string{"Bool": {"aws:SecureTransport": "false"}},
	}
}
