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
	"fmt"
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
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/llm-sandbox/llm-sandbox/components/sandbox"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/endpoints"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
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

// EnvGateway, set to 1, boots a gateway node too. It is opt-in because under TCG the gateway's
// boot takes about 13 minutes of a two-core machine (docs/performance.md, "Booting a node in a
// VM"), more than CI's run has room for.
const EnvGateway = "LLM_SANDBOX_VM_GATEWAY"

// bootLimit bounds a boot from QEMU's start to the lifecycle action (docs/performance.md has
// the times measured), so a hung boot fails rather than waiting for the test's timeout.
const bootLimit = 30 * time.Minute

// tcgGatewayHeartbeat is the launch heartbeat a gateway node's config carries under TCG, in
// seconds. The agent gives its boot the heartbeat less a margin; the plan's
// gateway.HeartbeatSeconds fits an instance, but under TCG, which runs the node's code about
// 17 times slower than the host, pip's install of the wheelhouse alone takes over six minutes
// and LiteLLM's start several more (docs/performance.md, "Booting a node in a VM").
const tcgGatewayHeartbeat = 2400

// stack is the department the VM's node belongs to: the dev example without a NAT, whose
// nodes fetch everything from the mirror in the artifacts bucket.
const stack = "dev"

// vmPython is the X.Y of the image's python3 (Debian 12's), which the gateway node makes
// LiteLLM's venv with: the wheelhouse is built for it.
const vmPython = "3.11"

// Addresses in the VM's network (vmNet) at which the test serves what a VPC would hold: the
// department's cache, and the internal load balancer in front of the pools.
const (
	cacheAddress = "169.254.0.101"
	poolsAddress = "169.254.0.102"
)

// TestNodesBootFromTheirUserData boots a CPU pool node and, with EnvGateway set, a gateway
// node of an air-gapped department, each in a VM of its own, from the user data the plan renders for their launch
// templates, byte for byte (under TCG but for the gateway's heartbeat, see
// tcgGatewayHeartbeat). The plan renders it with the artifacts the test serves: the release is
// the real Ollama packed as its release asset, the model the tiny model as a real Ollama stores
// it, the wheelhouse the pinned LiteLLM's wheels for the image's Python, all pinned and synced
// into the emulated bucket by mirror.Sync, as the deploy does; the agent is the one the plan
// built.
//
// Each VM's network reaches only what the test forwards: the IMDS stand-in at
// 169.254.169.254 (with the instance role's credentials) and, by the endpoint names the VPC
// gives an air-gapped node, a TLS front to the emulator; the gateway node also reaches the
// cache (a TLS redis-server holding the AUTH token the plan's secret names) and, by the
// internal load balancer's name, the pool node. Asserted for each node: cloud-init fetches and
// checks the agent, the agent completes the launch lifecycle action with CONTINUE, the node
// called only the services it needs, and it answers a chat completion through a port forwarded
// to it; the gateway's with a key of the department's registry, which LiteLLM looks up in the
// emulated table, routed to the pool node. A pool node whose agent object in the bucket is
// corrupted abandons, from the fetch script, and its agent never runs.
func TestNodesBootFromTheirUserData(t *testing.T) {
	img := requireImage(t)
	localruntest.RequireMoto(t)
	ollamaBin, tiny := os.Getenv(EnvOllamaBin), os.Getenv(localrun.EnvTinyModelBin)
	if ollamaBin == "" || tiny == "" {
		t.Skipf("set %s and %s (`make vmtest` does)", EnvOllamaBin, localrun.EnvTinyModelBin)
	}
	gateway := os.Getenv(EnvGateway) == "1"
	wheels := os.Getenv(localrun.EnvLiteLLMWheels)
	var pip []string
	if gateway {
		if wheels == "" {
			t.Fatalf("%s=1 needs %s, the LiteLLM wheels (`make vmtest` sets it)", EnvGateway, localrun.EnvLiteLLMWheels)
		}
		pip = mirrortest.PipEnv(t)
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
	var progress bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mirror progress:\n%s", progress.String())
		}
	})
	cache := t.TempDir()
	src := mirror.Sources{Registry: upstream.URL, Pip: pip, PipFindLinks: wheels}
	// With the gateway node, the wheelhouse for the image's Python, built as `sandboxctl pin
	// wheelhouse` builds it (the repository's pin is for the AMI's Python 3.12), from the
	// wheels `make e2e-deps` downloaded. Without, the plan renders the repository's pin.
	var wheelhouse *versions.WheelhousePin
	if gateway {
		pin, archive, err := mirror.BuildWheelhouse(ctx, src, vmPython, mirror.NodePlatform, t.TempDir(), &progress)
		if err != nil {
			t.Fatalf("build the wheelhouse: %v", err)
		}
		if _, err := mirror.StoreInCache(cache, archive, pin.SHA256); err != nil {
			t.Fatal(err)
		}
		wheelhouse = &pin
	}

	// The plan takes the release as versions.Ollama pins it, at its upstream URL, with the
	// test's hash; the mirrored node config names it by that hash alone.
	pinnedRelease := versions.Ollama
	pinnedRelease.SHA256 = release.SHA256
	plan, err := program.PlanWith(spec, h.Repo, &sandbox.SandboxArgs{OllamaRelease: &pinnedRelease, ModelPins: pins, Wheelhouse: wheelhouse})
	if err != nil {
		t.Fatal(err)
	}
	poolData, poolCfg := nodeUserData(t, plan, node.RoleOllama, pool.Name)
	gwData, gwCfg := nodeUserData(t, plan, node.RoleLiteLLM, "gateway")
	if accelerator(t) == "tcg" {
		gwData = withHeartbeat(t, gwData, gwCfg.Lifecycle.HeartbeatSeconds, tcgGatewayHeartbeat)
	}
	agentURL, agentSHA := fetchScriptPins(t, poolData)
	if u, sum := fetchScriptPins(t, gwData); u != agentURL || sum != agentSHA {
		t.Fatalf("the gateway's user data pins agent %s (%s), the pool's %s (%s)", u, sum, agentURL, agentSHA)
	}
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
	if !ok || !strings.HasPrefix(poolCfg.Ollama.Release.URL, "s3://"+bucket+"/") || !strings.HasPrefix(gwCfg.LiteLLM.Wheelhouse.URL, "s3://"+bucket+"/") {
		t.Fatalf("the agent URL %s, the release %s and the wheelhouse %s do not name one artifacts bucket", agentURL, poolCfg.Ollama.Release.URL, gwCfg.LiteLLM.Wheelhouse.URL)
	}
	agentKey := strings.TrimPrefix(u.Path, "/")

	// The deploy's side: the mirror synced into the bucket, the agent beside it.
	s3c := d.Moto.S3()
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("moto: create bucket %s: %v", bucket, err)
	}
	set := mirror.Set{Ollama: release, Wheelhouse: wheelhouse, Models: []mirror.Model{{Name: model, Pin: pinned.Pin}}}
	if _, err := mirror.Sync(ctx, s3c, bucket, set, src, cache, &progress); err != nil {
		t.Fatalf("mirror.Sync: %v", err)
	}
	putAgent(t, s3c, bucket, agentKey, agent)
	upstream.Close()
	d.Mirror.Close()

	// A node of a group: the group and its launch hook in the emulator, the instance pending
	// on it; IMDS names the instance, its group and its role. Each node has a front of its
	// own, so that what each called can be told apart.
	launch := func(t *testing.T, group, userData, hook string, guestPort int, s surroundings) (*machine, *awstest.IMDS, *awsFront, int) {
		t.Helper()
		instance := d.Moto.SeedGroupIn(t, spec.Region, group, hook)
		meta := &awstest.IMDS{InstanceID: instance, Group: group, Region: spec.Region, Role: group + "-node"}
		imds := httptest.NewServer(meta)
		t.Cleanup(imds.Close)
		hosts := []string{bucket + bucketSuffix}
		for _, service := range endpoints.Services(endpoints.NodeCalled()) {
			hosts = append(hosts, service+"."+spec.Region+".amazonaws.com")
		}
		front := newAWSFront(t, d.Moto.URL, bucketSuffix, hosts)
		s.forwards = append(s.forwards,
			forward{guest: imdsAddress + ":80", port: imds.Listener.Addr().(*net.TCPAddr).Port},
			forward{guest: frontAddress + ":443", port: front.Port})
		s.names = append(s.names, hostsLine{frontAddress, hosts})
		s.cas = append(s.cas, front.CAPEM)
		hostPort := localrun.FreePort(t)
		vm := boot(t, img, t.TempDir(), seed{userData: userData, metaData: metaData(instance), vendorData: vendorData(s)}, s.forwards, hostPort, guestPort)
		return vm, meta, front, hostPort
	}
	// ready waits for the node's lifecycle action and checks it is CONTINUE and that the fetch
	// script installed the agent.
	ready := func(t *testing.T, vm *machine, meta *awstest.IMDS, hook string) {
		t.Helper()
		took := vm.waitFor(t, "lifecycle action", bootLimit, func() bool { return len(d.Moto.Records(t, meta.Group)) > 0 })
		t.Logf("%s: boot to lifecycle action (%s): %s", meta.Group, accelerator(t), took.Round(time.Second))
		want := []localruntest.LifecycleRecord{{Group: meta.Group, Hook: hook, Instance: meta.InstanceID, Result: "CONTINUE"}}
		if got := d.Moto.Records(t, meta.Group); !slices.Equal(got, want) {
			t.Fatalf("lifecycle actions for %s: got %+v, want %+v\nconsole:\n%s", meta.Group, got, want, localrun.Tail([]byte(vm.console()), 80))
		}
		if console := vm.console(); !strings.Contains(console, "llm-sandbox: agent installed") {
			t.Errorf("the console does not show the fetch script installing the agent:\n%s", localrun.Tail([]byte(console), 80))
		}
	}
	// calledOnly checks that the node behind front fetched the agent through the bucket's
	// endpoint name, read nothing of the bucket but the agent and the mirror, and called each
	// service in services and no other.
	calledOnly := func(t *testing.T, group string, front *awsFront, services ...string) {
		t.Helper()
		reqs := front.Requests()
		if !slices.Contains(reqs, "GET "+bucket+bucketSuffix+"/"+agentKey) {
			t.Errorf("%s: the agent was not fetched from the bucket through its endpoint name; the front passed on %v", group, reqs)
		}
		called := map[string]bool{}
		for _, r := range reqs {
			method, target, _ := strings.Cut(r, " ")
			host, path, _ := strings.Cut(target, "/")
			if host == bucket+bucketSuffix {
				if method != "GET" || !strings.HasPrefix(path, "agent/") && !strings.HasPrefix(path, "mirror/") {
					t.Errorf("%s read something of the bucket other than the agent and the mirror: %s", group, r)
				}
				continue
			}
			service, _, _ := strings.Cut(host, ".")
			if !slices.Contains(services, service) || host != service+"."+spec.Region+".amazonaws.com" {
				t.Errorf("%s called %s: %s", group, host, r)
			}
			called[service] = true
		}
		for _, s := range services {
			if !called[s] {
				t.Errorf("%s never called %s; the front passed on %v", group, s, reqs)
			}
		}
	}

	// The pool node boots first, then the gateway node, whose route reaches the pool node's
	// port as the internal load balancer's listener does on AWS.
	poolVM, poolMeta, poolFront, poolPort := launch(t, "dev-cpu", poolData, poolCfg.Lifecycle.Hook, poolCfg.Ollama.Port, surroundings{})
	var gw *gatewayRun
	if gateway {
		gw = startGateway(t, ctx, d, spec, gwCfg.LiteLLM)
		gw.vm, gw.meta, gw.front, gw.port = launch(t, "dev-gateway", gwData, gwCfg.Lifecycle.Hook, gwCfg.LiteLLM.Port, gw.surroundings(poolPort))
	}

	// The pool node: in-flight metrics to CloudWatch, the lifecycle action.
	ready(t, poolVM, poolMeta, poolCfg.Lifecycle.Hook)
	answer := localruntest.Chat(t, loopbackURL(poolPort)+"/v1/chat/completions", "", map[string]any{
		"model": model, "messages": []map[string]string{{"role": "user", "content": "Ready?"}}, "max_tokens": 8, "temperature": 0,
	})
	t.Logf("the pool node's model answered %q", answer)
	if gw == nil {
		poolVM.stop()
	}

	t.Run("a corrupted agent abandons", func(t *testing.T) {
		corrupt := slices.Clone(agent)
		corrupt[len(corrupt)/2] ^= 0xff
		putAgent(t, s3c, bucket, agentKey, corrupt)
		defer putAgent(t, s3c, bucket, agentKey, agent)
		vm, meta, _, _ := launch(t, "dev-cpu-corrupt", poolData, poolCfg.Lifecycle.Hook, poolCfg.Ollama.Port, surroundings{})
		vm.waitFor(t, "lifecycle action", bootLimit, func() bool { return len(d.Moto.Records(t, meta.Group)) > 0 })
		want := []localruntest.LifecycleRecord{{Group: meta.Group, Hook: poolCfg.Lifecycle.Hook, Instance: meta.InstanceID, Result: "ABANDON"}}
		if got := d.Moto.Records(t, meta.Group); !slices.Equal(got, want) {
			t.Errorf("lifecycle actions for %s: got %+v, want %+v", meta.Group, got, want)
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

	t.Run("gateway node", func(t *testing.T) {
		if gw == nil {
			t.Skipf("set %s=1 (`make vmtest VM_GATEWAY=1`) to boot a gateway node too: about 13 minutes under TCG", EnvGateway)
		}
		// The master key and the cache's token from Secrets Manager, the key's record from the
		// registry, usage counts to CloudWatch, the lifecycle action.
		ready(t, gw.vm, gw.meta, gwCfg.Lifecycle.Hook)
		answer := localruntest.Chat(t, loopbackURL(gw.port)+"/v1/chat/completions", gw.key, map[string]any{
			"model": model, "messages": []map[string]string{{"role": "user", "content": "Ready?"}}, "max_tokens": 8, "temperature": 0,
		})
		t.Logf("the gateway answered %q with a key of team %s, through the pool node", answer, gw.team)
		if stored := gw.redis.Dump(t); len(stored) == 0 {
			t.Errorf("the gateway's request left nothing in the cache: its rate limits are not kept there")
		}
		gw.vm.stop()
		calledOnly(t, gw.meta.Group, gw.front, "secretsmanager", "autoscaling", "monitoring", "dynamodb")
	})
	poolVM.stop()
	calledOnly(t, poolMeta.Group, poolFront, "autoscaling", "monitoring")
}

// gatewayRun is a gateway node's VM and what the test serves it beside the emulator.
type gatewayRun struct {
	vm    *machine
	meta  *awstest.IMDS
	front *awsFront
	// port is the host port forwarded to the node's port.
	port int
	// redis is the department's cache.
	redis *localruntest.Redis
	// key is a key of team, issued into the department's registry.
	key, team string
	// cache and route are the cache's and the pool route's host and port.
	cache, route hostPort
}

// loopbackURL is the base URL of a port on the host's loopback.
func loopbackURL(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// hostPort is a host name and a port.
type hostPort struct {
	host string
	port int
}

// startGateway serves the department's side of the gateway node whose LiteLLM config is lc: the
// master key and the cache's AUTH token in Secrets Manager under the names the plan's ARNs end
// in (the emulator finds a secret by an ARN's name part), the cache, and the key registry with
// one key of a team.
func startGateway(t *testing.T, ctx context.Context, d *localruntest.Deployment, spec *config.Spec, lc *node.LiteLLMConfig) *gatewayRun {
	t.Helper()
	if lc.RateLimitCache == nil || lc.KeyRegistry == nil || len(lc.KeyRegistry.Teams) == 0 || len(lc.Models) != 1 {
		t.Fatalf("the gateway's node config has no cache, key registry with a team, or single route: %+v", lc)
	}
	gw := &gatewayRun{redis: localruntest.StartRedis(t, lc.RateLimitCache.Host), team: lc.KeyRegistry.Teams[0].Name}
	gw.cache = hostPort{lc.RateLimitCache.Host, lc.RateLimitCache.Port}
	masterKey := "sk-" + localrun.RandomAlphanumeric(t, 48)
	for arn, value := range map[string]string{lc.MasterKeySecretArn: masterKey, lc.RateLimitCache.AuthTokenSecretArn: gw.redis.Token} {
		d.Moto.CreateSecretIn(t, spec.Region, arn[strings.LastIndex(arn, ":")+1:], value)
	}
	awsCfg := aws.Config{
		Region:       spec.Region,
		BaseEndpoint: aws.String(d.Moto.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	}
	registry := keyregistry.New(keyregistrytest.CreateTable(t, awsCfg, spec.Department), lc.KeyRegistry.Table)
	issued, err := registry.Issue(ctx, gw.team, "vm-test", time.Now(), time.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatalf("issue a key of team %s: %v", gw.team, err)
	}
	gw.key = issued.Key
	route, err := url.Parse(lc.Models[0].APIBase)
	if err != nil {
		t.Fatal(err)
	}
	gw.route.host = route.Hostname()
	if gw.route.port, err = strconv.Atoi(route.Port()); err != nil {
		t.Fatalf("the gateway's route %s names no port", lc.Models[0].APIBase)
	}
	return gw
}

// surroundings are the gateway node's: the cache and, under the internal load balancer's name,
// the pool node's port forwarded to poolPort on the host. botocore, which LiteLLM's custom auth
// and usage callback use, trusts the CA bundle of the certifi package in LiteLLM's venv rather
// than the system's: pointed at the system's, it trusts the front's CA too.
func (gw *gatewayRun) surroundings(poolPort int) surroundings {
	return surroundings{
		forwards: []forward{
			{guest: cacheAddress + ":" + strconv.Itoa(gw.cache.port), port: gw.redis.Port},
			{guest: poolsAddress + ":" + strconv.Itoa(gw.route.port), port: poolPort},
		},
		names: []hostsLine{{cacheAddress, []string{gw.cache.host}}, {poolsAddress, []string{gw.route.host}}},
		cas:   []string{string(gw.redis.CAPEM)},
		env:   map[string][]string{node.LiteLLMUnit: {"AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt"}},
	}
}

// nodeUserData returns the user data of the launch template in plan whose node config has
// role and pool, decoded, and that config.
func nodeUserData(t *testing.T, plan *program.Plan, role, pool string) (string, *node.Config) {
	t.Helper()
	for _, lt := range plan.ByType("aws:ec2/launchTemplate:LaunchTemplate") {
		encoded, _ := lt.Inputs["userData"].(string)
		cfg, err := privacy.NodeConfig(encoded)
		if err != nil {
			t.Fatalf("%s: %v", lt.Name, err)
		}
		if cfg.Role != role || cfg.Pool != pool {
			continue
		}
		doc, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil {
			t.Fatal(err)
		}
		return string(doc), cfg
	}
	t.Fatalf("the plan has no launch template for a %s node of pool %s", role, pool)
	return "", nil
}

// withHeartbeat returns userData with the launch heartbeat of its node config changed from
// from to to seconds: the one change the test makes to a node's user data.
func withHeartbeat(t *testing.T, userData string, from, to int) string {
	t.Helper()
	old := fmt.Sprintf(`"heartbeatSeconds": %d,`, from)
	if n := strings.Count(userData, old); n != 1 {
		t.Fatalf("the user data holds %q %d times, want once:\n%s", old, n, userData)
	}
	return strings.Replace(userData, old, fmt.Sprintf(`"heartbeatSeconds": %d,`, to), 1)
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
