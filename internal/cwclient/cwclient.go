// Package cwclient makes the project's one kind of CloudWatch client: it speaks the AWS query
// protocol. CloudWatch accepts it beside AWS JSON 1.1 and Smithy RPC v2 CBOR, which the SDK
// picks by default since service/cloudwatch v1.53.0 (its CHANGELOG, 2025-12-10); the query
// protocol is the one the AWS emulator the tests run against (moto, tools/requirements-moto.txt)
// serves, so the tests see the bytes a node or an operator's command sends.
package cwclient

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"
)

// New returns a CloudWatch client for cfg that speaks the query protocol. The client resolves
// its endpoint the SDK's usual way (AWS_ENDPOINT_URL_CLOUDWATCH points it at an emulator).
func New(cfg aws.Config) *cloudwatch.Client {
	return cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
		o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801)
	})
}
