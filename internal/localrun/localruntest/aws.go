package localruntest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/node/awstest"
)

// T is what the helpers take: *testing.T, or a *localrun.Runner in commands.
type T = localrun.T

// Region is the AWS region of the emulated account: the one local node configs name.
const Region = localrun.Region

// motoImageID is one of the AMIs moto's EC2 backend starts with.
const motoImageID = "ami-12c6146b"

// Moto is tools/moto_server.py: moto's AWS emulator plus CompleteLifecycleAction, which
// records each completed action as one JSON line.
type Moto struct {
	URL    string
	record string
	// Log is the emulator's own log file.
	Log string
	asg *autoscaling.Client
}

// LifecycleRecord is one line of the emulator's record.
type LifecycleRecord struct {
	Group    string `json:"group"`
	Hook     string `json:"hook"`
	Instance string `json:"instance"`
	Result   string `json:"result"`
}

// StartMoto starts the emulator on a free loopback port and waits (at most 90 s) until it
// answers; a cleanup stops it.
func StartMoto(t T, motoPython, repo, dir string) *Moto {
	t.Helper()
	port := localrun.FreePort(t)
	m := &Moto{
		URL:    "http://127.0.0.1:" + strconv.Itoa(port),
		record: filepath.Join(dir, "lifecycle-actions.jsonl"),
		Log:    filepath.Join(dir, "moto.log"),
	}
	cmd := exec.Command(motoPython, filepath.Join(repo, "tools", "moto_server.py"), "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "LLM_SANDBOX_LIFECYCLE_RECORD="+m.record)
	exited := localrun.StartGroup(t, "moto", cmd, m.Log)

	m.asg = autoscaling.New(autoscaling.Options{
		Region:       Region,
		BaseEndpoint: aws.String(m.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	// Ready when it answers an Auto Scaling call (importing moto takes a few seconds).
	localrun.WaitReady(t, "moto", exited, m.Log, 90*time.Second, 300*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := m.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
		return err
	})
	return m
}

// SeedGroup creates what the ModelPool and Gateway components create for a group, in
// miniature: a launch configuration, an Auto Scaling group, and a launch lifecycle hook whose
// default result is ABANDON; then it scales the group to one instance and returns that
// instance's id.
func (m *Moto) SeedGroup(t T, group, hook string) string {
	t.Helper()
	return m.SeedGroupIn(t, Region, group, hook)
}

// SeedGroupIn is SeedGroup in another region of the emulated account: a node completes its
// lifecycle action in the region its config names.
func (m *Moto) SeedGroupIn(t T, region, group, hook string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inRegion := func(o *autoscaling.Options) { o.Region = region }
	if _, err := m.asg.CreateLaunchConfiguration(ctx, &autoscaling.CreateLaunchConfigurationInput{
		LaunchConfigurationName: aws.String(group),
		ImageId:                 aws.String(motoImageID),
		InstanceType:            aws.String("c7i.xlarge"),
	}, inRegion); err != nil {
		t.Fatalf("moto: create launch configuration: %v", err)
	}
	if _, err := m.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName:    aws.String(group),
		LaunchConfigurationName: aws.String(group),
		MinSize:                 aws.Int32(0),
		MaxSize:                 aws.Int32(1),
		DesiredCapacity:         aws.Int32(0),
		AvailabilityZones:       []string{region + "a"},
	}, inRegion); err != nil {
		t.Fatalf("moto: create Auto Scaling group: %v", err)
	}
	if _, err := m.asg.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String(group),
		LifecycleHookName:    aws.String(hook),
		LifecycleTransition:  aws.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
		DefaultResult:        aws.String("ABANDON"),
		HeartbeatTimeout:     aws.Int32(1800),
	}, inRegion); err != nil {
		t.Fatalf("moto: put lifecycle hook: %v", err)
	}
	if _, err := m.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: aws.String(group),
		DesiredCapacity:      aws.Int32(1),
	}, inRegion); err != nil {
		t.Fatalf("moto: set desired capacity: %v", err)
	}
	out, err := m.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}}, inRegion)
	if err != nil {
		t.Fatalf("moto: describe Auto Scaling group: %v", err)
	}
	// moto launches the instance itself; the launcher only accepts a completion for an
	// instance of the group, as AWS does, so a fixed id would not do.
	if len(out.AutoScalingGroups) != 1 || len(out.AutoScalingGroups[0].Instances) != 1 {
		t.Fatalf("moto: want one instance in group %s, got %+v", group, out.AutoScalingGroups)
	}
	return aws.ToString(out.AutoScalingGroups[0].Instances[0].InstanceId)
}

// Records returns the completed lifecycle actions of one group, in order.
func (m *Moto) Records(t T, group string) []LifecycleRecord {
	t.Helper()
	data, err := os.ReadFile(m.record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("%v", err)
	}
	var recs []LifecycleRecord
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var r LifecycleRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("lifecycle record %q: %v", line, err)
		}
		if r.Group == group {
			recs = append(recs, r)
		}
	}
	return recs
}

// S3 is a client of the emulator's S3, with path-style addressing (no bucket name resolves as
// a host on loopback).
func (m *Moto) S3() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(m.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
}

// CreateSecret stores a string secret in the emulator's Secrets Manager and returns its ARN.
//
// It speaks the service's JSON 1.1 protocol directly rather than through aws-sdk-go-v2's
// secretsmanager client, so the tests add no module of their own to go.mod: moto does not
// check signatures, and the agent under test reads the secret with the real SDK.
func (m *Moto) CreateSecret(t T, name, value string) string {
	t.Helper()
	return m.CreateSecretIn(t, Region, name, value)
}

// CreateSecretIn is CreateSecret in region.
func (m *Moto) CreateSecretIn(t T, region, name, value string) string {
	t.Helper()
	body, err := json.Marshal(map[string]string{"Name": name, "SecretString": value})
	if err != nil {
		t.Fatalf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%v", err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "secretsmanager.CreateSecret")
	// moto routes by the credential scope's service name.
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/"+region+"/secretsmanager/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("moto: create secret %s: %v", name, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moto: create secret %s: HTTP %d: %s", name, resp.StatusCode, out)
	}
	var created struct{ ARN string }
	if err := json.Unmarshal(out, &created); err != nil || !strings.HasPrefix(created.ARN, "arn:aws:secretsmanager:") {
		t.Fatalf("moto: create secret %s: unexpected answer %s (%v)", name, out, err)
	}
	return created.ARN
}

// IMDS is awstest's IMDSv2 fake for one instance of one group, served on loopback: no emulator
// provides IMDS (moto serves the AWS APIs, not the link-local metadata service).
type IMDS struct {
	*awstest.IMDS
	// URL is the fake's endpoint.
	URL string
}

// NewIMDS serves the fake for one instance of one group until the test ends.
func NewIMDS(t T, instance, group string) *IMDS {
	t.Helper()
	fake := &awstest.IMDS{InstanceID: instance, Group: group, Region: Region}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &IMDS{IMDS: fake, URL: srv.URL}
}
