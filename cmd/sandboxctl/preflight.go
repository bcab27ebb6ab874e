package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"

	"github.com/llm-sandbox/llm-sandbox/internal/preflight"
)

// preflightTimeout bounds a whole preflight run; each AWS call has its own, shorter bound.
const preflightTimeout = 5 * time.Minute

// credentialsHelp says how to give preflight credentials, for the exit-2 message.
const credentialsHelp = `Provide read-only AWS credentials the usual way: AWS_PROFILE=<profile> (after
"aws sso login --profile <profile>" for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
(and AWS_SESSION_TOKEN for temporary ones), or an instance or container role.
docs/preflight.md lists the permissions.`

// loadAWSConfig loads the standard AWS configuration (credential chain, shared files,
// AWS_ENDPOINT_URL) for region, with the SDK's own log lines dropped. The SDK writes them
// straight to the process's stderr, ahead of the command's own message: with no credentials,
// when something at the instance metadata address answers the IMDSv2 token request with 403,
// 404 or 405, the IMDS client logs "falling back to IMDSv1" at Warn level (aws-sdk-go-v2
// feature/ec2/imds, token_provider.go, updateToken) before the chain fails. Every failure the
// commands act on is also the error the call returns, which they print with what to do.
func loadAWSConfig(ctx context.Context, region string) (aws.Config, error) {
	return awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region), awsconfig.WithLogger(logging.Nop{}))
}

// loadCredentials is loadAWSConfig for the commands that call AWS at once: it also retrieves
// the credentials (within 30 s), so that their absence is one clear error before any call. The
// error is a usage error ending with help, the command's advice on credentials.
func loadCredentials(ctx context.Context, region, help string) (aws.Config, error) {
	cfg, err := loadAWSConfig(ctx, region)
	if err != nil {
		return aws.Config{}, usagef("load the AWS configuration: %v\n%s", err, help)
	}
	credCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = cfg.Credentials.Retrieve(credCtx)
	cancel()
	if err != nil {
		return aws.Config{}, usagef("no AWS credentials: %v\n%s", err, help)
	}
	return cfg, nil
}

func runPreflight(e env, projectFlag string, args []string) int {
	return exit(e, "preflight", checkAccount(e, projectFlag, args))
}

func checkAccount(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "preflight", "preflight STACK [--format text|json] [--region R]",
		"Checks, read-only, that the AWS account and region can take STACK before a deploy:\n"+
			"  region       the region has at least network.azCount available availability zones\n"+
			"  quotas       EC2 vCPU quotas L-DB2E81BA (on-demand G and VT), L-3819A6DF (spot G\n"+
			"               and VT), L-1216C47A (on-demand standard) and L-34B43A08 (spot\n"+
			"               standard) cover every group at\n"+
			"               maxSize plus the one node an instance refresh adds\n"+
			"  offerings    every instance type (spot alternatives too) is offered in every\n"+
			"               availability zone the network spans\n"+
			"  AMIs         the public SSM parameters the nodes boot from resolve to an ami- id\n"+
			"  certificate  access.certificateArn is ISSUED, not expired, and covers access.hostname\n"+
			"  hosted zone  access.hostedZoneId exists and holds access.hostname, is public when the\n"+
			"               deploy requests the certificate, and has no A or CNAME record at the\n"+
			"               hostname that the alias record cannot be created over\n"+
			"Each finding says what to do. Credentials come from the standard AWS chain (AWS_PROFILE,\n"+
			"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, instance role); the region is the stack's\n"+
			"aws:region unless --region names another; AWS_ENDPOINT_URL points every call elsewhere\n"+
			"(an emulator). Progress goes to stderr. text prints one line per check and a summary;\n"+
			`json prints {"stack", "region", "checks": [{"name", "status", "detail", "advice"}]}.`+"\n"+
			"Exit 0 every check ok (warnings allowed), 1 a check failed or the stack file is invalid,\n"+
			"2 usage error, no AWS credentials or region, or AWS rejected the credentials.")
	format := formatFlag(fs)
	regionFlag := fs.String("region", "", "AWS `region` to check instead of the stack's aws:region")
	_, spec, err := parseOneStack(e, fs, args, format, projectFlag)
	if err != nil {
		return err
	}
	region := spec.Region
	if *regionFlag != "" {
		region = *regionFlag
	}
	if region == "" {
		return usagef("no AWS region: set aws:region in %s or pass --region", spec.Source)
	}

	ctx, cancel := context.WithTimeout(context.Background(), preflightTimeout)
	defer cancel()
	cfg, err := loadCredentials(ctx, region, credentialsHelp)
	if err != nil {
		return err
	}
	if region != spec.Region {
		fmt.Fprintf(e.stderr, "checking %s in %s, not the stack's aws:region %s\n", spec.Stack, region, spec.Region)
	}

	report, err := preflight.Run(ctx, spec, preflight.NewClients(cfg), preflight.Options{
		Region:   region,
		Progress: func(msg string) { fmt.Fprintln(e.stderr, msg) },
	})
	if err != nil {
		return usagef("%v\n%s", err, credentialsHelp)
	}

	if *format == "json" {
		out, _ := json.MarshalIndent(report, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
	} else {
		writePreflightText(e, report)
	}
	if report.Failed() {
		return errReported
	}
	return nil
}

// statusWord is a status as the text output's first column shows it.
func statusWord(s preflight.Status) string {
	switch s {
	case preflight.OK:
		return "ok"
	case preflight.Warn:
		return "WARN"
	}
	return "FAIL"
}

func writePreflightText(e env, r preflight.Report) {
	var b strings.Builder
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%-5s %s: %s", statusWord(c.Status), c.Name, c.Detail)
		if c.Advice != "" {
			fmt.Fprintf(&b, " -> %s", c.Advice)
		}
		b.WriteByte('\n')
	}
	fails, warns := r.Count(preflight.Fail), r.Count(preflight.Warn)
	fmt.Fprintf(&b, "%s in %s: %d check(s), %d ok, %d warning(s), %d failure(s)", r.Stack, r.Region,
		len(r.Checks), r.Count(preflight.OK), warns, fails)
	if fails > 0 {
		b.WriteString(": fix the failures before deploying\n")
	} else {
		b.WriteString(": ready to deploy\n")
	}
	fmt.Fprint(e.stdout, b.String())
}
