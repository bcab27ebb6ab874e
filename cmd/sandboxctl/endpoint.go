package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/llm-sandbox/llm-sandbox/program"
)

// endpointLookupTimeout bounds reading a stack's outputs and its master key.
const endpointLookupTimeout = 2 * time.Minute

// secretAccessHelp says how to let the command read the master key, for the exit-2 message.
const secretAccessHelp = `Reading the key needs AWS credentials allowed secretsmanager:GetSecretValue on the secret
(and kms:Decrypt on its key), given the usual way: AWS_PROFILE, AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, SSO or an instance role. Or pass --url (the key in ` + apiKeyEnv + ` or --key)
instead of STACK.`

// apiKeyEnv is the environment variable the API key is read from when --url is given without
// --key: a key on the command line shows in ps and in the shell's history, one in the
// environment does not. OPENAI_API_KEY is deliberately not read: it usually holds a key for
// another service, which verify would send to this endpoint.
const apiKeyEnv = "SANDBOX_API_KEY"

// endpointFlags are --url and --key, which name an endpoint when no STACK does.
type endpointFlags struct {
	url, key *string
}

func addEndpointFlags(fs *flag.FlagSet) endpointFlags {
	return endpointFlags{
		url: fs.String("url", "", "the endpoint's base `URL` (the stack output endpointUrl; a trailing /v1 is accepted); required unless STACK is given"),
		key: fs.String("key", "", "the API `key` (the gateway's master key) for --url; without it the key is read from "+
			"the environment variable "+apiKeyEnv+", which keeps it out of ps and the shell's history"),
	}
}

// endpoint is where to send requests, and where that came from (for the operator, key-free).
type endpoint struct {
	url, key, source string
}

// resolveEndpoint returns the endpoint named either by --url and --key or by the one STACK in
// positional, whose outputs endpointUrl and masterKeySecretArn it reads with the Pulumi CLI
// and Secrets Manager. When it cannot, it says why with a usage error.
func resolveEndpoint(e env, projectFlag string, positional []string, f endpointFlags) (endpoint, error) {
	usageErr := func(format string, args ...any) (endpoint, error) {
		return endpoint{}, usagef(format, args...)
	}
	switch {
	case len(positional) > 1:
		return usageErr("want at most one STACK (got %d: %s)", len(positional), strings.Join(positional, " "))
	case len(positional) == 1 && (*f.url != "" || *f.key != ""):
		return usageErr("give STACK or --url (with --key or %s), not both", apiKeyEnv)
	case len(positional) == 0:
		key, keySource := *f.key, "--key"
		if key == "" {
			key, keySource = os.Getenv(apiKeyEnv), apiKeyEnv
		}
		if *f.url == "" || key == "" {
			return usageErr("want STACK, or --url with the key in %s (or --key)", apiKeyEnv)
		}
		if !strings.HasPrefix(*f.url, "http://") && !strings.HasPrefix(*f.url, "https://") {
			return usageErr("--url must start with http:// or https:// (got %q)", *f.url)
		}
		return endpoint{url: *f.url, key: key, source: "--url and " + keySource}, nil
	}

	stack := positional[0]
	ctx, cancel := context.WithTimeout(context.Background(), endpointLookupTimeout)
	defer cancel()
	outputs, err := stackOutputs(ctx, e, projectFlag, stack, fmt.Sprintf("pass --url (the key in %s or --key) instead of STACK", apiKeyEnv))
	if err != nil {
		return endpoint{}, err
	}
	url, _ := outputs["endpointUrl"].(string)
	// A gateway with a key registry refuses the master key for requests (docs/keys.md): a
	// team key in the environment (a ci key the workflow issued) is used as it is.
	if key := os.Getenv(apiKeyEnv); key != "" {
		if url == "" {
			names := slices.Sorted(maps.Keys(outputs))
			return usageErr("stack %s has no endpointUrl output (outputs: %s): has it been deployed with `pulumi up`?",
				stack, strings.Join(names, ", "))
		}
		return endpoint{url: url, key: key, source: fmt.Sprintf("stack %s (endpointUrl, key from %s)", stack, apiKeyEnv)}, nil
	}
	arn, _ := outputs["masterKeySecretArn"].(string)
	if url == "" || arn == "" {
		names := slices.Sorted(maps.Keys(outputs))
		return usageErr("stack %s has no endpointUrl or masterKeySecretArn output (outputs: %s): has it been deployed with `pulumi up`?",
			stack, strings.Join(names, ", "))
	}
	key, err := masterKey(ctx, arn)
	if err != nil {
		return usageErr("stack %s: read the master key: %v\n%s", stack, err, secretAccessHelp)
	}
	return endpoint{url: url, key: key, source: fmt.Sprintf("stack %s (endpointUrl, master key from %s)", stack, arn)}, nil
}

// stackOutputs reads the outputs of a deployed stack with the Pulumi CLI (`pulumi stack output
// --json`), run in the project directory, which holds Pulumi.yaml (a fully qualified
// org/project/stack works from anywhere). Every failure is a usage error; orElse says what the
// operator can do instead when the CLI is missing.
func stackOutputs(ctx context.Context, e env, projectFlag, stack, orElse string) (map[string]any, error) {
	pulumi, err := exec.LookPath("pulumi")
	if err != nil {
		return nil, usagef("the pulumi CLI is not installed (no pulumi on PATH): install it to read stack %s's outputs, or %s", stack, orElse)
	}
	dir := e.cwd
	if p, err := program.FindProject(e.cwd, projectFlag); err == nil {
		dir = p
	}
	run := exec.CommandContext(ctx, pulumi, "stack", "output", "--json", "-s", stack)
	run.Dir = dir
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	run.WaitDelay = 5 * time.Second
	if err := run.Run(); err != nil {
		return nil, usagef("pulumi stack output --json -s %s: %v\n%s", stack, err, strings.TrimSpace(stderr.String()))
	}
	var outputs map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &outputs); err != nil {
		return nil, usagef("pulumi stack output --json -s %s: not a JSON object: %v", stack, err)
	}
	return outputs, nil
}

// masterKey reads the secret's string value with the standard AWS credential chain, in the
// secret's own region. AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_SECRETS_MANAGER) points the call
// elsewhere, as for an emulator.
func masterKey(ctx context.Context, arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) < 7 || parts[0] != "arn" || parts[2] != "secretsmanager" || parts[3] == "" {
		return "", fmt.Errorf("masterKeySecretArn %q is not a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)", arn)
	}
	cfg, err := loadAWSConfig(ctx, parts[3])
	if err != nil {
		return "", fmt.Errorf("load the AWS configuration: %w", err)
	}
	out, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("GetSecretValue %s: %w", arn, err)
	}
	if out.SecretString == nil || strings.TrimSpace(*out.SecretString) == "" {
		return "", errors.New("GetSecretValue " + arn + ": the secret holds no string")
	}
	return strings.TrimSpace(*out.SecretString), nil
}
