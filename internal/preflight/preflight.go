// Package preflight checks, read-only, that an AWS account and region can take a department's
// stack before it is deployed: the region has the availability zones the network spans, the
// EC2 vCPU quotas cover every group at its largest plus the extra node of an instance refresh,
// every instance type is offered in the network's zones, the public AMI parameters the nodes
// boot from resolve, the listener's certificate is issued, current and covers the hostname, and
// the Route 53 hosted zone the hostname's record goes in exists, holds the name and, when the
// deploy requests the certificate itself, can validate it. Each finding says what to do about
// it. `sandboxctl preflight` prints the report.
//
// The checks run against small interfaces over the aws-sdk-go-v2 clients (Clients); NewClients
// fills them from an aws.Config, whose endpoint may be an emulator (AWS_ENDPOINT_URL).
package preflight

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Status is a check's outcome.
type Status string

// The outcomes of a check.
const (
	// OK means the check passed.
	OK Status = "ok"
	// Warn means the deploy can go ahead, but something deserves a look.
	Warn Status = "warn"
	// Fail means the deploy would fail, or the check could not be made.
	Fail Status = "fail"
)

// Result is one check's finding.
type Result struct {
	// Name says what was checked, e.g. "quota L-DB2E81BA" or "offering g5.xlarge".
	Name string `json:"name"`
	// Status is ok, warn or fail.
	Status Status `json:"status"`
	// Detail is what was found, with the figures it rests on.
	Detail string `json:"detail"`
	// Advice is what to do about a warning or failure; empty when there is nothing to do.
	Advice string `json:"advice"`
}

// Report is every check of one stack in one region, in the order they ran.
type Report struct {
	// Stack is the stack checked.
	Stack string `json:"stack"`
	// Region is the region checked.
	Region string `json:"region"`
	// Checks are the findings.
	Checks []Result `json:"checks"`
}

// Failed reports whether any check failed.
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Count returns how many checks ended with status s.
func (r Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// QuotasAPI is what the quota check calls of Service Quotas.
type QuotasAPI interface {
	GetServiceQuota(ctx context.Context, in *servicequotas.GetServiceQuotaInput, optFns ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error)
	GetAWSDefaultServiceQuota(ctx context.Context, in *servicequotas.GetAWSDefaultServiceQuotaInput, optFns ...func(*servicequotas.Options)) (*servicequotas.GetAWSDefaultServiceQuotaOutput, error)
}

// EC2API is what the region and offering checks call of EC2.
type EC2API interface {
	DescribeAvailabilityZones(ctx context.Context, in *ec2.DescribeAvailabilityZonesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAvailabilityZonesOutput, error)
	ec2.DescribeInstanceTypeOfferingsAPIClient
}

// SSMAPI is what the AMI check calls of Systems Manager.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// ACMAPI is what the certificate check calls of Certificate Manager.
type ACMAPI interface {
	DescribeCertificate(ctx context.Context, in *acm.DescribeCertificateInput, optFns ...func(*acm.Options)) (*acm.DescribeCertificateOutput, error)
}

// Route53API is what the hosted-zone check calls of Route 53.
type Route53API interface {
	GetHostedZone(ctx context.Context, in *route53.GetHostedZoneInput, optFns ...func(*route53.Options)) (*route53.GetHostedZoneOutput, error)
	ListResourceRecordSets(ctx context.Context, in *route53.ListResourceRecordSetsInput, optFns ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error)
}

// Clients are the AWS APIs the checks read, all in the region checked (Route 53 is global: its
// client needs a region to sign with, and any will do).
type Clients struct {
	Quotas  QuotasAPI
	EC2     EC2API
	SSM     SSMAPI
	ACM     ACMAPI
	Route53 Route53API
}

// NewClients makes the clients from cfg (its region, credentials and endpoint).
func NewClients(cfg aws.Config) Clients {
	return Clients{
		Quotas:  servicequotas.NewFromConfig(cfg),
		EC2:     ec2.NewFromConfig(cfg),
		SSM:     ssm.NewFromConfig(cfg),
		ACM:     acm.NewFromConfig(cfg),
		Route53: route53.NewFromConfig(cfg),
	}
}

// Options tune a run.
type Options struct {
	// Region is the region to check. Optional. Defaults to the stack's aws:region.
	Region string
	// Progress, when set, is told as each group of checks starts ("checking quotas...").
	Progress func(string)
	// Now is the clock the certificate's expiry is judged by. Optional. Defaults to time.Now.
	Now func() time.Time
	// CallTimeout bounds each AWS call, retries included. Optional. Defaults to 30 s.
	CallTimeout time.Duration
	// OllamaRelease is the release the pools' nodes would install. Optional. Defaults to the
	// project's pin, versions.Ollama.
	OllamaRelease *versions.Release
}

// ErrCredentialsRejected is returned (wrapped) when AWS refuses the credentials themselves
// (unknown, expired or badly signed): every check would fail the same way, so Run stops.
var ErrCredentialsRejected = errors.New("AWS rejected the credentials")

// Run makes every check of spec and returns them as a report. Findings, including AWS errors
// on a single call, are results; the error is only ErrCredentialsRejected.
func Run(ctx context.Context, spec *config.Spec, c Clients, opts Options) (Report, error) {
	r := &run{ctx: ctx, spec: spec, c: c, opts: opts, region: opts.Region}
	if r.region == "" {
		r.region = spec.Region
	}
	if r.opts.Now == nil {
		r.opts.Now = time.Now
	}
	if r.opts.CallTimeout == 0 {
		r.opts.CallTimeout = 30 * time.Second
	}
	report := Report{Stack: spec.Stack, Region: r.region, Checks: []Result{}}

	// Not an account check, but a deploy with it is refused, so a preflight must not pass.
	release := versions.Ollama
	if opts.OllamaRelease != nil {
		release = *opts.OllamaRelease
	}
	report.Checks = append(report.Checks, checkOllamaRelease(release))

	r.progress("checking the region's availability zones...")
	region, zones, err := r.checkRegion()
	if err != nil {
		return report, err
	}
	report.Checks = append(report.Checks, region)
	r.progress("checking quotas...")
	report.Checks = append(report.Checks, r.checkQuotas()...)
	r.progress("checking instance type offerings...")
	report.Checks = append(report.Checks, r.checkOfferings(zones)...)
	r.progress("checking AMI parameters...")
	report.Checks = append(report.Checks, r.checkAMIs()...)
	if spec.Access.CertificateARN != "" {
		r.progress("checking the certificate...")
		report.Checks = append(report.Checks, r.checkCertificate()...)
	}
	if spec.Access.HostedZoneID != "" {
		r.progress("checking the hosted zone...")
		report.Checks = append(report.Checks, r.checkHostedZone()...)
	}
	return report, nil
}

// run is one Run's state.
type run struct {
	ctx    context.Context
	spec   *config.Spec
	c      Clients
	opts   Options
	region string
}

func (r *run) progress(msg string) {
	if r.opts.Progress != nil {
		r.opts.Progress(msg)
	}
}

// call bounds one AWS call.
func (r *run) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.ctx, r.opts.CallTimeout)
}

// Permissions are the IAM actions preflight calls, all read-only; docs/preflight.md shows them
// as a policy.
var Permissions = []string{
	"servicequotas:GetServiceQuota",
	"servicequotas:GetAWSDefaultServiceQuota",
	"ec2:DescribeAvailabilityZones",
	"ec2:DescribeInstanceTypeOfferings",
	"ssm:GetParameter",
	"acm:DescribeCertificate",
	"route53:GetHostedZone",
	"route53:ListResourceRecordSets",
}

// callFailed is the result for a call that returned an error other than the answers a check
// expects: it names the action, and the permission when access was denied.
func callFailed(name, action string, err error) Result {
	res := Result{Name: name, Status: Fail, Detail: fmt.Sprintf("could not check: %s: %v", action, err)}
	switch {
	case isAccessDenied(err):
		res.Advice = fmt.Sprintf("allow %s to the caller (docs/preflight.md lists the read-only policy preflight needs)", action)
	case errors.Is(err, context.DeadlineExceeded):
		res.Advice = "AWS did not answer in time: check the network path to the AWS endpoints and run preflight again"
	default:
		res.Advice = "run preflight again; if it persists, check the AWS service health for the region"
	}
	return res
}

// checkOllamaRelease fails when nodes would refuse the release: unpinned or below the floor.
func checkOllamaRelease(r versions.Release) Result {
	if p := versions.CheckOllama(r); p != "" {
		return Result{Name: "ollama release", Status: Fail, Detail: p,
			Advice: fmt.Sprintf("run `sandboxctl pin ollama %s` on a machine with internet access and commit the change to versions/versions.go", r.Version)}
	}
	return Result{Name: "ollama release", Status: OK, Detail: fmt.Sprintf("Ollama %s, SHA-256 %s pinned in versions/versions.go", r.Version, r.SHA256)}
}
