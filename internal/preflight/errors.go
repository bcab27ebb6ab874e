package preflight

import (
	"errors"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// apiCode is the AWS error code of err ("" when err is not an API error).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isAccessDenied reports an IAM refusal: EC2 calls it UnauthorizedOperation, the JSON services
// AccessDeniedException, the query services AccessDenied.
//
// An HTTP 403 whose error code could not be read counts too: moto answers a refusal in XML
// even for the JSON services (SSM, ACM, Service Quotas), which the SDK cannot decode (no code),
// and for Route 53 in an envelope (ErrorResponse/Errors/Error) its REST-XML decoder does not
// read (code UnknownError, the SDK's name for an error body it could not read). By then the
// region check has already shown the credentials themselves are good.
func isAccessDenied(err error) bool {
	switch apiCode(err) {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		return true
	case "", "UnknownError":
		var re *awshttp.ResponseError
		return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
	}
	return false
}

// isCredentialsRejected reports an error about the credentials themselves rather than about
// what they may do.
func isCredentialsRejected(err error) bool {
	switch apiCode(err) {
	case "AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken",
		"ExpiredTokenException", "RequestExpired", "SignatureDoesNotMatch", "InvalidSignatureException",
		"IncompleteSignature", "MissingAuthenticationToken":
		return true
	}
	return false
}
