package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
)

// Lifecycle action results.
const (
	// ResultContinue lets the instance go InService (and register with its target group).
	ResultContinue = "CONTINUE"
	// ResultAbandon makes the group terminate the instance and launch another.
	ResultAbandon = "ABANDON"
)

// ErrNoLifecycleAction means Auto Scaling has no pending lifecycle action for this instance:
// the agent runs after a reboot or by hand, not during a launch. It is not a failure.
var ErrNoLifecycleAction = errors.New("no active lifecycle action for this instance")

// LifecycleCompleter completes the instance's launch lifecycle action. It is the seam between
// the agent and Auto Scaling; unit tests inject a recording fake.
type LifecycleCompleter interface {
	// Complete sends result (ResultContinue or ResultAbandon). It returns an error wrapping
	// ErrNoLifecycleAction when there is no pending action, and marks failures that
	// retrying cannot fix as permanent.
	Complete(ctx context.Context, result string) error
}

// metadataAPI is the part of the IMDS client the completer uses.
type metadataAPI interface {
	GetMetadata(ctx context.Context, in *imds.GetMetadataInput, opts ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
	GetRegion(ctx context.Context, in *imds.GetRegionInput, opts ...func(*imds.Options)) (*imds.GetRegionOutput, error)
}

// autoScalingAPI is the part of the Auto Scaling client the completer uses.
type autoScalingAPI interface {
	CompleteLifecycleAction(ctx context.Context, in *autoscaling.CompleteLifecycleActionInput, opts ...func(*autoscaling.Options)) (*autoscaling.CompleteLifecycleActionOutput, error)
}

// AWSCompleter completes lifecycle actions with aws-sdk-go-v2: the instance id (and, when the
// config leaves them empty, the group name and the region) from IMDSv2, then
// autoscaling:CompleteLifecycleAction with the instance role. IMDS honours
// AWS_EC2_METADATA_SERVICE_ENDPOINT and Auto Scaling honours AWS_ENDPOINT_URL and
// AWS_ENDPOINT_URL_AUTO_SCALING, which is how tests point both at loopback fakes.
type AWSCompleter struct {
	cfg   aws.Config
	hook  string
	group string
	meta  metadataAPI
	asg   autoScalingAPI
	// instanceID is looked up once; a completer belongs to one run of the agent.
	instanceID string
}

// NewAWSCompleter builds a completer for lc.Hook. lc.AutoScalingGroup may be empty (read from
// the instance's aws:autoscaling:groupName tag through IMDS) and so may region (read from
// IMDS). Nothing is sent until Complete.
func NewAWSCompleter(ctx context.Context, region string, lc Lifecycle) (*AWSCompleter, error) {
	if lc.Hook == "" {
		return nil, errors.New("lifecycle: no hook name")
	}
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	return &AWSCompleter{cfg: cfg, hook: lc.Hook, group: lc.AutoScalingGroup, meta: imds.NewFromConfig(cfg)}, nil
}

// metadata reads one IMDS path as a string.
func (c *AWSCompleter) metadata(ctx context.Context, path string) (string, error) {
	out, err := c.meta.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", fmt.Errorf("read IMDS %s: %w", path, err)
	}
	defer out.Content.Close()
	data, err := io.ReadAll(out.Content)
	if err != nil {
		return "", fmt.Errorf("read IMDS %s: %w", path, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// resolve fills in what the config left to IMDS, once.
func (c *AWSCompleter) resolve(ctx context.Context) error {
	if c.instanceID == "" {
		id, err := c.metadata(ctx, "instance-id")
		if err != nil {
			return err
		}
		c.instanceID = id
	}
	if c.group == "" {
		group, err := c.metadata(ctx, "tags/instance/aws:autoscaling:groupName")
		if err != nil {
			return fmt.Errorf("find the Auto Scaling group (set lifecycle.autoScalingGroup, or allow instance tags in metadata): %w", err)
		}
		c.group = group
	}
	if c.asg == nil {
		cfg := c.cfg.Copy()
		if cfg.Region == "" {
			out, err := c.meta.GetRegion(ctx, &imds.GetRegionInput{})
			if err != nil {
				return fmt.Errorf("read the region from IMDS: %w", err)
			}
			cfg.Region = out.Region
		}
		// One attempt per call: the agent's bounded retry policy decides what is retried.
		c.asg = autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) { o.RetryMaxAttempts = 1 })
	}
	return nil
}

// Complete sends CompleteLifecycleAction with the instance id, hook and group.
func (c *AWSCompleter) Complete(ctx context.Context, result string) error {
	if err := c.resolve(ctx); err != nil {
		return err
	}
	_, err := c.asg.CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName:  aws.String(c.group),
		LifecycleHookName:     aws.String(c.hook),
		InstanceId:            aws.String(c.instanceID),
		LifecycleActionResult: aws.String(result),
	})
	if err == nil {
		return nil
	}
	err = fmt.Errorf("CompleteLifecycleAction %s (group %s, hook %s, instance %s): %w", result, c.group, c.hook, c.instanceID, err)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		// AWS answers "ValidationError: No active Lifecycle Action found with instance ID
		// i-..." when the instance is not waiting on the hook: a reboot or a re-run.
		if apiErr.ErrorCode() == "ValidationError" && strings.Contains(strings.ToLower(apiErr.ErrorMessage()), "no active lifecycle action") {
			return fmt.Errorf("%w: %w", ErrNoLifecycleAction, err)
		}
		switch apiErr.ErrorCode() {
		case "Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable", "InternalFailure", "InternalError":
			return err
		}
		return permanent(err)
	}
	return err
}
