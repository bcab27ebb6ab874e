package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// SecretGetter reads a secret's string value. It is the seam between the agent and Secrets
// Manager; the default, AWSSecrets, reads with the instance role. Implementations mark failures
// that retrying cannot fix as permanent, and never put the value in an error.
type SecretGetter interface {
	GetSecretString(ctx context.Context, secretID string) (string, error)
}

// AWSSecrets reads secrets with aws-sdk-go-v2's Secrets Manager client (GetSecretValue of the
// AWSCURRENT version). The SDK honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_SECRETS_MANAGER,
// which is how tests point it at a loopback fake or an emulator. The agent fetches the master key
// itself because LiteLLM reads AWS Secrets Manager only with an Enterprise licence
// (https://docs.litellm.ai/docs/secret_managers/aws_secret_manager).
type AWSSecrets struct {
	Client *secretsmanager.Client
}

// NewAWSSecrets builds a Secrets Manager client for region from the default credential chain
// (the instance role on a node), with one attempt per call: the agent's bounded retry policy
// decides what is retried.
func NewAWSSecrets(ctx context.Context, region string) (*AWSSecrets, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("load AWS config for Secrets Manager: %w", err)
	}
	return &AWSSecrets{Client: secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.RetryMaxAttempts = 1 })}, nil
}

// transientSecretCodes are Secrets Manager errors worth another try.
var transientSecretCodes = map[string]bool{
	"ThrottlingException": true, "InternalServiceError": true, "InternalFailure": true,
	"ServiceUnavailable": true, "RequestTimeout": true, "RequestLimitExceeded": true,
}

// GetSecretString returns the secret's current string value. A missing secret, a denied or
// malformed request, a key it cannot be decrypted with or a binary secret is permanent; throttling,
// 5xx answers and network errors are transient.
func (s *AWSSecrets) GetSecretString(ctx context.Context, secretID string) (string, error) {
	out, err := s.Client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)})
	if err != nil {
		err = fmt.Errorf("GetSecretValue %s: %w", secretID, err)
		var apiErr smithy.APIError
		if !errors.As(err, &apiErr) || transientSecretCodes[apiErr.ErrorCode()] {
			return "", err
		}
		var respErr *awshttp.ResponseError
		if errors.As(err, &respErr) && (respErr.HTTPStatusCode() >= 500 || respErr.HTTPStatusCode() == http.StatusTooManyRequests) {
			return "", err
		}
		return "", permanent(err)
	}
	if out.SecretString == nil {
		return "", permanent(fmt.Errorf("GetSecretValue %s: the secret holds binary data, not a string", secretID))
	}
	return *out.SecretString, nil
}

// FileSecrets reads a secret from a file, the secret's id being the file's path: the local
// platform's stand-in for Secrets Manager, where `sandboxctl local` writes the master key. The
// file must be a regular file that only its owner can read or write (mode 0600 or 0400), as the
// environment file the agent writes from it is; anything else is refused as permanent, and a
// trailing newline is dropped.
type FileSecrets struct{}

// GetSecretString returns the file's content without its trailing newline.
func (FileSecrets) GetSecretString(_ context.Context, path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", permanent(fmt.Errorf("read secret file: %w", err))
	}
	if !fi.Mode().IsRegular() {
		return "", permanent(fmt.Errorf("secret file %s is not a regular file (mode %s)", path, fi.Mode()))
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", permanent(fmt.Errorf("secret file %s is readable or writable by others (mode %#o, want 0600)", path, perm))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", permanent(fmt.Errorf("read secret file: %w", err))
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}
