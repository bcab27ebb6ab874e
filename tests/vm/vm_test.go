// Package vm boots a node from the user data the plan renders, in a real Linux VM under QEMU:
// cloud-init runs the fetch script, which downloads the agent from the emulated bucket on the
// host and checks it; systemd runs the agent, which installs Ollama and the model from the
// mirror and completes the launch lifecycle action in the emulator. docs/node-agent.md ("The
// VM boot test") says how it is built and what differs from an instance on AWS.
package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/llm-sandbox/llm-sandbox/components/sandbox"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/endpoints"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror/mirrortest"
	"github.com/llm-sandbox/llm-sandbox/internal/privacy"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/node/awstest"
	"github.com/llm-sandbox/llm-sandbox/program"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// EnvOllamaBin names the Ollama the VM's node installs: built as the end-to-end tests' Ollama
// is, but reporting the pinned release's version (versions.Ollama), since a node on / refuses
// a release below the floor (`make vmtest` builds it as bin/ollama-vm).
const EnvOllamaBin = "LLM_SANDBOX_VM_OLLAMA_BIN"

// bootLimit bounds a boot from QEMU's start to the lifecycle action (docs/performance.md has
// the times measured), so a hung boot fails rather than waiting for the test's timeout.
const bootLimit = 12 * time.Minute

// stack is the department the VM's node belongs to: the dev example without a NAT, whose
// nodes fetch everything from the mirror in the artifacts bucket.
const stack = "dev"

// TestPoolNodeBootsFromItsUserData boots a CPU pool node of an air-gapped department in a VM
// from the user data the plan renders for its launch template, byte for byte. The plan renders
// it with the artifacts the test serves: the release is the real Ollama packed as its release
// asset, the model the tiny model as a real Ollama stores it, both pinned and synced into the
// emulated bucket by mirror.Sync, as the deploy does; the agent is the one the plan built.
//
// The VM's network reaches only what the test forwards: the IMDS stand-in at 169.254.169.254
// (with the instance role's credentials) and, by the endpoint names the VPC gives an
// air-gapped node, a TLS front to the emulator. Asserted: cloud-init fetches and checks the
// agent, the agent completes the launch lifecycle action with CONTINUE, and the model answers
// a chat completion through a port forwarded to the node. Then a node whose agent object in the
// bucket is corrupted abandons, from the fetch script, and its agent never runs.
func TestPoolNodeBootsFromItsUserData(t *testing.T) {
	img := requireImage(t)
	localruntest.RequireMoto(t)
	ollamaBin, tiny := os.Getenv(EnvOllamaBin), os.Getenv(localrun.EnvTinyModelBin)
	if ollamaBin == "" || tiny == "" {
		t.Skipf("set %s and %s (`make vmtest` does)", EnvOllamaBin, localrun.EnvTinyModelBin)
	}
	h, err := localrun.NewHelpers("", ollamaBin, tiny, "")
	if err != nil {
		t.Fatal(err)
	}
	// The release is packed and named as the pinned version; the agent checks that the binary
	// it installed reports it.
	out, err := exec.Command(ollamaBin, "--version").CombinedOutput()
	if !strings.Contains(string(out), "client version is "+versions.Ollama.Version+"\n") {
		t.Fatalf("%s --version: %v\n%s\nthe VM's node needs an Ollama reporting the pinned %s (`make bin/ollama-vm`)", ollamaBin, err, out, versions.Ollama.Version)
	}
	h.OllamaVersion = versions.Ollama.Version
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := localruntest.NewDeployment(t, h)

	spec, err := config.Load(h.Repo, stack)
	if err != nil {
		t.Fatal(err)
	}
	// The project pins no model yet, and validation refuses a mirrored stack with an unpinned
	// model, so the stack goes air-gapped after loading, with the test's pin.
	spec.Network.NAT, spec.Artifacts.Mirror = config.NATNone, true
	pool, ok := spec.Pools["cpu"]
	if !ok || len(pool.Models) != 1 {
		t.Fatalf("stack %s: want a pool cpu with one model, got %+v", stack, spec.Pools)
	}
	model := pool.Models[0]

	// The model as a real Ollama stores it, created from the tiny model under the pool's tag.
	d.AddTinyModel(t, model)
	source := localrun.NewNode(t, "", d.Agent)
	source.Start(t, d.Deployment.OllamaConfig(source.Port, d.Release, localrun.OllamaOptions{Models: []string{model}}), localrun.BootstrapLimit)
	stored := localruntest.ReadStoredModel(t, source, model)
	source.StopAll(t)

	upstream := mirrortest.NewServer(t)
	releaseData, err := os.ReadFile(filepath.Join(d.Work, versions.OllamaAsset))
	if err != nil {
		t.Fatal(err)
	}
	release := upstream.AddRelease(h.OllamaVersion, releaseData)
	pinned := upstream.AddStoredModel(t, model, stored.Manifest, stored.Blobs)
	pins := map[string]versions.ModelPin{model: pinned.Pin}

	// The plan takes the release as versions.Ollama pins it, at its upstream URL, with the
	// test's hash; the mirrored node config names it by that hash alone.
	pinnedRelease := versions.Ollama
	pinnedRelease.SHA256 = release.SHA256
	plan, err := program.PlanWith(spec, h.Repo, &sandbox.SandboxArgs{OllamaRelease: &pinnedRelease, ModelPins: pins})
	if err != nil {
		t.Fatal(err)
	}
	userData, cfg := poolUserData(t, plan, pool.Name)
	agentURL, agentSHA := fetchScriptPins(t, userData)
	agent, err := os.ReadFile(d.Agent)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(agent); hex.EncodeToString(sum[:]) != agentSHA {
		t.Fatalf("the plan pins agent %s, the deployment built %s", agentSHA, d.Agent)
	}
	bucketSuffix := ".s3." + spec.Region + ".amazonaws.com"
	u, err := url.Parse(agentURL)
	if err != nil {
		t.Fatal(err)
	}
	bucket, ok := strings.CutSuffix(u.Host, bucketSuffix)
	if !ok || !strings.HasPrefix(cfg.Ollama.Release.URL, "s3://"+bucket+"/") {
		t.Fatalf("the agent URL %s and the release %s do not name one artifacts bucket", agentURL, cfg.Ollama.Release.URL)
	}
	agentKey := strings.TrimPrefix(u.Path, "/")

	// The deploy's side: the mirror synced into the bucket, the agent beside it.
	s3c := d.Moto.S3()
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("moto: create bucket %s: %v", bucket, err)
	}
	set := mirror.Set{Ollama: release, Models: []mirror.Model{{Name: model, Pin: pinned.Pin}}}
	var progress bytes.Buffer
	if _, err := mirror.Sync(ctx, s3c, bucket, set, mirror.Sources{Registry: upstream.URL}, t.TempDir(), &progress); err != nil {
		t.Fatalf("mirror.Sync: %v\n%s", err, progress.String())
	}
	putAgent(t, s3c, bucket, agentKey, agent)
	upstream.Close()
	d.Mirror.Close()

	hosts := []string{bucket + bucketSuffix}
	for _, service := range endpoints.Services(endpoints.NodeCalled()) {
		hosts = append(hosts, service+"."+spec.Region+".amazonaws.com")
	}
	front := newAWSFront(t, d.Moto.URL, bucketSuffix, hosts)

	// A node of the pool's group: the group and its launch hook in the emulator, the instance
	// pending on it; IMDS names the instance, its group and its role.
	launch := func(t *testing.T, group string) (*machine, *awstest.IMDS, string) {
		instance := d.Moto.SeedGroupIn(t, spec.Region, group, cfg.Lifecycle.Hook)
		meta := &awstest.IMDS{InstanceID: instance, Group: group, Region: spec.Region, Role: group + "-node"}
		imds := httptest.NewServer(meta)
		t.Cleanup(imds.Close)
		fwd := []forward{
			{guest: imdsAddress + ":80", port: imds.Listener.Addr().(*net.TCPAddr).Port},
			{guest: frontAddress + ":443", port: front.Port},
		}
		hostPort := localrun.FreePort(t)
		vm := boot(t, img, t.TempDir(), seed{userData: userData, metaData: metaData(instance), vendorData: vendorData(front)}, fwd, hostPort, cfg.Ollama.Port)
		return vm, meta, "http://127.0.0.1:" + strconv.Itoa(hostPort)
	}

	const group = "dev-cpu"
	vm, meta, nodeURL := launch(t, group)
	ready := vm.waitFor(t, "lifecycle action", bootLimit, func() bool { return len(d.Moto.Records(t, group)) > 0 })
	t.Logf("boot to lifecycle action (%s): %s", accelerator(t), ready.Round(time.Second))
	want := []localruntest.LifecycleRecord{{Group: group, Hook: cfg.Lifecycle.Hook, Instance: meta.InstanceID, Result: "CONTINUE"}}
	if got := d.Moto.Records(t, group); !slices.Equal(got, want) {
		t.Fatalf("lifecycle actions for %s: got %+v, want %+v\nconsole:\n%s", group, got, want, localrun.Tail([]byte(vm.console()), 80))
	}
	if console := vm.console(); !strings.Contains(console, "llm-sandbox: agent installed") {
		t.Errorf("the console does not show the fetch script installing the agent:\n%s", localrun.Tail([]byte(console), 80))
	}
	// Through the endpoint names, the node asked only for the bucket's objects (the agent, the
	// mirrored release and model), Auto Scaling (the lifecycle action) and CloudWatch (its
	// in-flight metric).
	reqs := front.Requests()
	if !slices.Contains(reqs, "GET "+bucket+bucketSuffix+"/"+agentKey) {
		t.Errorf("the agent was not fetched from the bucket through its endpoint name; the front passed on %v", reqs)
	}
	for _, r := range reqs {
		method, target, _ := strings.Cut(r, " ")
		host, path, _ := strings.Cut(target, "/")
		switch host {
		case bucket + bucketSuffix, "autoscaling." + spec.Region + ".amazonaws.com", "monitoring." + spec.Region + ".amazonaws.com":
		default:
			t.Errorf("the node called %s: %s", host, r)
		}
		if host == bucket+bucketSuffix && (method != "GET" || !strings.HasPrefix(path, "agent/") && !strings.HasPrefix(path, "mirror/")) {
			t.Errorf("the node read something of the bucket other than the agent and the mirror: %s", r)
		}
	}
	answer := localruntest.Chat(t, nodeURL+"/v1/chat/completions", "", map[string]any{
		"model": model, "messages": []map[string]string{{"role": "user", "content": "Ready?"}}, "max_tokens": 8, "temperature": 0,
	})
	t.Logf("the node's model answered %q", answer)
	vm.stop()

	t.Run("a corrupted agent abandons", func(t *testing.T) {
		corrupt := slices.Clone(agent)
		corrupt[len(corrupt)/2] ^= 0xff
		putAgent(t, s3c, bucket, agentKey, corrupt)
		const group = "dev-cpu-corrupt"
		vm, meta, _ := launch(t, group)
		vm.waitFor(t, "lifecycle action", bootLimit, func() bool { return len(d.Moto.Records(t, group)) > 0 })
		want := []localruntest.LifecycleRecord{{Group: group, Hook: cfg.Lifecycle.Hook, Instance: meta.InstanceID, Result: "ABANDON"}}
		if got := d.Moto.Records(t, group); !slices.Equal(got, want) {
			t.Errorf("lifecycle actions for %s: got %+v, want %+v", group, got, want)
		}
		console := vm.console()
		for _, line := range []string{"llm-sandbox: agent checksum mismatch for " + agentURL, "llm-sandbox: launch lifecycle action completed with ABANDON"} {
			if !strings.Contains(console, line) {
				t.Errorf("the console does not show %q:\n%s", line, localrun.Tail([]byte(console), 80))
			}
		}
		if strings.Contains(console, "agent installed") {
			t.Errorf("the corrupted agent was installed:\n%s", localrun.Tail([]byte(console), 80))
		}
	})
}

// poolUserData returns the user data of pool's launch template in plan, decoded, and the node
// config it writes.
func poolUserData(t *testing.T, plan *program.Plan, pool string) (string, *node.Config) {
	t.Helper()
	for _, lt := range plan.ByType("aws:ec2/launchTemplate:LaunchTemplate") {
		encoded, _ := lt.Inputs["userData"].(string)
		cfg, err := privacy.NodeConfig(encoded)
		if err != nil {
			t.Fatalf("%s: %v", lt.Name, err)
		}
		if cfg.Role != node.RoleOllama || cfg.Pool != pool {
			continue
		}
		doc, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			t.Fatal(err)
		}
		return string(doc), cfg
	}
	t.Fatalf("the plan has no launch template for pool %s", pool)
	return "", nil
}

var (
	agentURLLine = regexp.MustCompile(`(?m)^\s*url='([^']+)'$`)
	agentSHALine = regexp.MustCompile(`(?m)^\s*want='([0-9a-f]{64})'$`)
)

// fetchScriptPins returns the agent URL and SHA-256 the user data's fetch script pins.
func fetchScriptPins(t *testing.T, userData string) (string, string) {
	t.Helper()
	u, sum := agentURLLine.FindStringSubmatch(userData), agentSHALine.FindStringSubmatch(userData)
	if u == nil || sum == nil {
		t.Fatalf("the user data's fetch script pins no agent URL and SHA-256:\n%s", userData)
	}
	return u[1], sum[1]
}

// putAgent puts the agent into the bucket as the fetch script reads it: without credentials.
// On AWS the bucket's policy admits such reads only through the VPC's S3 endpoint; the
// emulator does not evaluate bucket policies, so the object is readable by anyone who reaches
// it, and only the VM does.
func putAgent(t *testing.T, c *s3.Client, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data), ACL: types.ObjectCannedACLPublicRead,
	}); err != nil {
		t.Fatalf("moto: put %s/%s: %v", bucket, key, err)
	}
}
