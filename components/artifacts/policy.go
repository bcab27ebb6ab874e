package artifacts

import "encoding/json"

// Statement ids of the bucket policy.
const (
	SidDenyInsecureTransport = "DenyInsecureTransport"
	SidReadThroughEndpoint   = "AllowReadThroughVpcEndpoint"
)

// policyDocument is an S3 bucket policy.
type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

// policyStatement is one statement of a bucket policy. Principal and Resource are strings or
// lists, as IAM writes them.
type policyStatement struct {
	Sid       string                       `json:"Sid"`
	Effect    string                       `json:"Effect"`
	Principal any                          `json:"Principal"`
	Action    string                       `json:"Action"`
	Resource  any                          `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition"`
}

// bucketPolicy renders the bucket policy for the bucket and the VPC's S3 gateway endpoint.
//
// There is deliberately no statement for the deploying principal: it reaches the bucket through
// IAM (same account), and a Deny on its reads would break the provider's refresh of the agent
// object.
func bucketPolicy(bucketArn, endpointID string) (string, error) {
	doc := policyDocument{
		Version: "2012-10-17",
		Statement: []policyStatement{
			{
				// Nothing reaches the bucket over plain HTTP, whoever asks.
				Sid:       SidDenyInsecureTransport,
				Effect:    "Deny",
				Principal: "*",
				Action:    "s3:*",
				Resource:  []string{bucketArn, bucketArn + "/*"},
				Condition: map[string]map[string]string{"Bool": {"aws:SecureTransport": "false"}},
			},
			{
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
		},
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	return string(out), nil
}
