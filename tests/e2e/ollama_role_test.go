// Package e2e holds the local end-to-end tests: the real sandbox-node agent installs and runs a
// real Ollama (built from the Go module proxy) serving a tiny model the test writes itself, and
// completes its lifecycle action against a real AWS emulator (moto). Everything binds to
// 127.0.0.1 and every process the tests start is stopped when they end.
//
// The helpers are prebuilt by `make e2e-deps`, which `make test` runs; the paths reach the tests
// through environment variables, and without them the tests skip.
package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/klauspost/compress/zstd"

	"github.com/llm-sandbox/llm-sandbox/node"
)

// Environment variables naming the helpers that `make e2e-deps` builds.
const (
	envOllamaBin    = "LLM_SANDBOX_OLLAMA_BIN"    // the real Ollama (tools/ollama/cmd/ollama)
	envTinyModelBin = "LLM_SANDBOX_TINYMODEL_BIN" // the tiny GGUF writer (tools/ollama/cmd/tinymodel)
	envMotoPython   = "LLM_SANDBOX_MOTO_PYTHON"   // the python of the venv holding moto[server]
)

const (
	modelName   = "llama3.1:8b"
	region      = "us-east-1"
	hookName    = "ollama-ready"
	motoImageID = "ami-12c6146b" // one of the AMIs moto's EC2 backend starts with
)

// helpers are the prebuilt programs the test runs, the repository it builds the agent from, and
// the Ollama version that tools/ollama/go.mod pins (and `make e2e-deps` stamps into the binary).
type helpers struct {
	ollama, tinymodel, python string
	repo                      string
	ollamaVersion             string
}

func requireHelpers(t *testing.T) helpers {
	t.Helper()
	h := helpers{ollama: os.Getenv(envOllamaBin), tinymodel: os.Getenv(envTinyModelBin), python: os.Getenv(envMotoPython)}
	if h.ollama == "" || h.tinymodel == "" || h.python == "" {
		t.Skipf("end-to-end helpers not configured: run `make e2e-deps` and set %s, %s and %s (`make test` and `make e2e` do both)",
			envOllamaBin, envTinyModelBin, envMotoPython)
	}
	for name, path := range map[string]string{envOllamaBin: h.ollama, envTinyModelBin: h.tinymodel, envMotoPython: h.python} {
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s=%s is not an executable file (run `make e2e-deps`): %v", name, path, err)
		}
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(repo, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", repo, err)
	}
	h.repo = repo
	pins, err := os.ReadFile(filepath.Join(repo, "tools", "ollama", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/ollama/ollama v(\S+)`).FindSubmatch(pins)
	if m == nil {
		t.Fatalf("tools/ollama/go.mod does not pin github.com/ollama/ollama")
	}
	h.ollamaVersion = string(m[1])
	return h
}

// TestOllamaRole runs `sandbox-node bootstrap` for the ollama role twice against the same
// mirror and emulator: once with good artifacts (the node serves real completions and sends
// CONTINUE) and once with a corrupted release (the node refuses it, sends ABANDON and serves
// nothing).
func TestOllamaRole(t *testing.T) {
	h := requireHelpers(t)
	work := t.TempDir()

	agent := buildAgent(t, h, work)

	release, releaseSum := packageRelease(t, h.ollama, work)
	corrupt := bytes.Clone(release)
	corrupt[len(corrupt)/2] ^= 0xff

	gguf := filepath.Join(work, "tiny.gguf")
	runCommand(t, time.Minute, h.tinymodel, "-o", gguf, "-seed", "1")
	model, err := os.ReadFile(gguf)
	if err != nil {
		t.Fatal(err)
	}
	modelSum := sha256Hex(model)

	mirror := newMirror(t, map[string][]byte{
		"/ollama/v" + h.ollamaVersion + "/ollama-linux-amd64.tar.zst":  release,
		"/corrupt/v" + h.ollamaVersion + "/ollama-linux-amd64.tar.zst": corrupt,
		"/models/tiny-llama.gguf":                                      model,
	})

	moto := startMoto(t, h, work)

	t.Run("ready node serves and continues", func(t *testing.T) {
		group := "chemistry-cpu-ready"
		instance := moto.seedGroup(t, group)
		imds := newIMDSStandIn(t, instance, group)
		n := newNode(t, agent, moto, imds)
		cfg := n.config(t, h.ollamaVersion, mirror.URL+"/ollama/v"+h.ollamaVersion+"/ollama-linux-amd64.tar.zst", releaseSum,
			mirror.URL+"/models/tiny-llama.gguf", modelSum)

		code := n.bootstrap(t, cfg)
		if code != 0 {
			t.Fatalf("sandbox-node bootstrap exited %d, want 0 (ready, CONTINUE sent)", code)
		}

		if !imds.usedToken() {
			t.Errorf("the agent read IMDS without an IMDSv2 token")
		}
		if got := imds.served(); !strings.Contains(got, "instance-id") || !strings.Contains(got, "aws:autoscaling:groupName") {
			t.Errorf("the agent read IMDS paths %q; want the instance id and the group tag (the config leaves the group empty)", got)
		}
		if fi, err := os.Stat(filepath.Join(n.root, "usr", "local", "bin", "ollama")); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("the release was not installed as <root>/usr/local/bin/ollama: %v", err)
		}

		api := "http://127.0.0.1:" + strconv.Itoa(n.port)
		var version struct {
			Version string `json:"version"`
		}
		getJSON(t, api+"/api/version", &version)
		if version.Version != h.ollamaVersion {
			t.Errorf("GET /api/version = %q, want %q (the packaged release)", version.Version, h.ollamaVersion)
		}

		// Preloaded by the agent, before any request of ours.
		assertLoaded(t, api)

		chat := postJSON(t, api+"/api/chat", map[string]any{
			"model":    modelName,
			"messages": []map[string]string{{"role": "user", "content": "Is the node ready?"}},
			"stream":   false,
			"options":  map[string]any{"temperature": 0, "num_predict": 8},
		})
		var native struct {
			Message struct{ Content string } `json:"message"`
			Done    bool                     `json:"done"`
		}
		decode(t, "/api/chat", chat, &native)
		if strings.TrimSpace(native.Message.Content) == "" || !native.Done {
			t.Errorf("/api/chat: empty or unfinished reply: %s", chat)
		}

		openAI := map[string]any{
			"model":       modelName,
			"messages":    []map[string]string{{"role": "user", "content": "Is the node ready?"}},
			"temperature": 0,
			"max_tokens":  8,
		}
		var completion struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		body := postJSON(t, api+"/v1/chat/completions", openAI)
		decode(t, "/v1/chat/completions", body, &completion)
		if len(completion.Choices) != 1 || strings.TrimSpace(completion.Choices[0].Message.Content) == "" {
			t.Fatalf("/v1/chat/completions: want one non-empty choice, got %s", body)
		}

		openAI["stream"] = true
		streamed := streamChat(t, api+"/v1/chat/completions", openAI)
		if strings.TrimSpace(streamed) == "" {
			t.Errorf("/v1/chat/completions (stream): empty content")
		}
		// Temperature 0 is greedy decoding: the same request gives the same words either way.
		if want := completion.Choices[0].Message.Content; streamed != want {
			t.Errorf("/v1/chat/completions: streamed %q, not streamed %q; want the same at temperature 0", streamed, want)
		}
		t.Logf("the tiny model answered %q", streamed)

		assertLoaded(t, api)

		if console, err := os.ReadFile(n.console); err != nil || !strings.Contains(string(console), "CONTINUE") {
			t.Errorf("the console log does not report the CONTINUE (err %v):\n%s", err, console)
		}

		want := []lifecycleRecord{{Group: group, Hook: hookName, Instance: instance, Result: "CONTINUE"}}
		if got := moto.records(t, group); !equalRecords(got, want) {
			t.Errorf("lifecycle actions for %s: got %+v, want exactly %+v", group, got, want)
		}
	})

	t.Run("corrupt release abandons", func(t *testing.T) {
		group := "chemistry-cpu-corrupt"
		instance := moto.seedGroup(t, group)
		imds := newIMDSStandIn(t, instance, group)
		n := newNode(t, agent, moto, imds)
		// The mirror serves a release with one byte flipped; the config holds the real hash.
		cfg := n.config(t, h.ollamaVersion, mirror.URL+"/corrupt/v"+h.ollamaVersion+"/ollama-linux-amd64.tar.zst", releaseSum,
			mirror.URL+"/models/tiny-llama.gguf", modelSum)

		code := n.bootstrap(t, cfg)
		if code != 1 {
			t.Fatalf("sandbox-node bootstrap exited %d, want 1 (failed, ABANDON sent)", code)
		}

		want := []lifecycleRecord{{Group: group, Hook: hookName, Instance: instance, Result: "ABANDON"}}
		if got := moto.records(t, group); !equalRecords(got, want) {
			t.Errorf("lifecycle actions for %s: got %+v, want exactly %+v", group, got, want)
		}
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.port), time.Second); err == nil {
			conn.Close()
			t.Errorf("something listens on the Ollama port %d after a failed bootstrap", n.port)
		}
		if _, err := os.Stat(filepath.Join(n.root, "usr", "local", "bin", "ollama")); err == nil {
			t.Errorf("the corrupt release was installed as <root>/usr/local/bin/ollama")
		}
		console, err := os.ReadFile(n.console)
		if err != nil {
			t.Fatalf("read the console log: %v", err)
		}
		if !regexp.MustCompile(`step install\b.*fail`).Match(console) {
			t.Errorf("the console log does not name the failed step (install):\n%s", console)
		}
		if !regexp.MustCompile(`(?i)sha-?256|checksum`).Match(console) {
			t.Errorf("the console log does not say the checksum did not match:\n%s", console)
		}
		if !strings.Contains(string(console), "ABANDON") {
			t.Errorf("the console log does not mention the ABANDON:\n%s", console)
		}
	})
}

// buildAgent builds ./cmd/sandbox-node the way a deployment does (static, CGO_ENABLED=0).
func buildAgent(t *testing.T, h helpers, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sandbox-node")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sandbox-node")
	cmd.Dir = h.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/sandbox-node: %v\n%s", err, out)
	}
	return bin
}

// packageRelease lays the real Ollama binary out as Ollama's release asset
// ollama-linux-amd64.tar.zst (bin/ollama; the real asset adds lib/ollama with GPU libraries)
// and returns the archive and its SHA-256.
func packageRelease(t *testing.T, ollamaBin, dir string) ([]byte, string) {
	t.Helper()
	bin, err := os.ReadFile(ollamaBin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, hdr := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime},
		{Name: "bin/ollama", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin)), ModTime: mtime},
	} {
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bin); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	release := buf.Bytes()
	// Kept beside the other artifacts for a look after a failure.
	if err := os.WriteFile(filepath.Join(dir, "ollama-linux-amd64.tar.zst"), release, 0o644); err != nil {
		t.Fatal(err)
	}
	return release, sha256Hex(release)
}

// newMirror serves the artifacts from loopback, standing in for the department's mirror.
func newMirror(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, filepath.Base(r.URL.Path), time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// motoServer is tools/moto_server.py: moto's AWS emulator plus CompleteLifecycleAction, which
// records each completed action as one JSON line.
type motoServer struct {
	url    string
	record string
	asg    *autoscaling.Client
}

// lifecycleRecord is one line of the emulator's record.
type lifecycleRecord struct {
	Group    string `json:"group"`
	Hook     string `json:"hook"`
	Instance string `json:"instance"`
	Result   string `json:"result"`
}

func startMoto(t *testing.T, h helpers, dir string) *motoServer {
	t.Helper()
	port := freePort(t)
	m := &motoServer{
		url:    "http://127.0.0.1:" + strconv.Itoa(port),
		record: filepath.Join(dir, "lifecycle-actions.jsonl"),
	}
	logPath := filepath.Join(dir, "moto.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(h.python, filepath.Join(h.repo, "tools", "moto_server.py"), "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "LLM_SANDBOX_LIFECYCLE_RECORD="+m.record)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start moto: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		stopGroup(t, "moto", cmd.Process.Pid, exited)
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("moto log:\n%s", tail(out, 60))
			}
		}
	})

	m.asg = autoscaling.New(autoscaling.Options{
		Region:       region,
		BaseEndpoint: aws.String(m.url),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	// Ready when it answers an Auto Scaling call (importing moto takes a few seconds).
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := m.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
		cancel()
		if err == nil {
			return m
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			t.Fatalf("moto exited before it answered:\n%s", tail(out, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto did not answer within 90s: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// seedGroup creates what the ModelPool component creates for a pool, in miniature: a launch
// configuration, an Auto Scaling group, and a launch lifecycle hook whose default result is
// ABANDON; then it scales the group to one instance and returns that instance's id.
func (m *motoServer) seedGroup(t *testing.T, group string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.asg.CreateLaunchConfiguration(ctx, &autoscaling.CreateLaunchConfigurationInput{
		LaunchConfigurationName: aws.String(group),
		ImageId:                 aws.String(motoImageID),
		InstanceType:            aws.String("c7i.xlarge"),
	}); err != nil {
		t.Fatalf("moto: create launch configuration: %v", err)
	}
	if _, err := m.asg.CreateAutoScalingGroup(ctx, &autoscaling.CreateAutoScalingGroupInput{
		AutoScalingGroupName:    aws.String(group),
		LaunchConfigurationName: aws.String(group),
		MinSize:                 aws.Int32(0),
		MaxSize:                 aws.Int32(1),
		DesiredCapacity:         aws.Int32(0),
		AvailabilityZones:       []string{region + "a"},
	}); err != nil {
		t.Fatalf("moto: create Auto Scaling group: %v", err)
	}
	if _, err := m.asg.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String(group),
		LifecycleHookName:    aws.String(hookName),
		LifecycleTransition:  aws.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
		DefaultResult:        aws.String("ABANDON"),
		HeartbeatTimeout:     aws.Int32(1800),
	}); err != nil {
		t.Fatalf("moto: put lifecycle hook: %v", err)
	}
	if _, err := m.asg.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: aws.String(group),
		DesiredCapacity:      aws.Int32(1),
	}); err != nil {
		t.Fatalf("moto: set desired capacity: %v", err)
	}
	out, err := m.asg.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
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

// records returns the completed lifecycle actions of one group, in order.
func (m *motoServer) records(t *testing.T, group string) []lifecycleRecord {
	t.Helper()
	data, err := os.ReadFile(m.record)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var recs []lifecycleRecord
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var r lifecycleRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("lifecycle record %q: %v", line, err)
		}
		if r.Group == group {
			recs = append(recs, r)
		}
	}
	return recs
}

func equalRecords(a, b []lifecycleRecord) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// imdsStandIn answers the IMDSv2 calls the agent makes: a session token, then the instance id
// and the instance's aws:autoscaling:groupName tag. It is a stand-in because no emulator
// provides IMDS (moto serves the AWS APIs, not the link-local metadata service); it insists on
// the IMDSv2 token, as the launch template's metadata options do.
type imdsStandIn struct {
	*httptest.Server
	token string

	mu       sync.Mutex
	paths    []string
	tokenHit bool
}

func newIMDSStandIn(t *testing.T, instance, group string) *imdsStandIn {
	t.Helper()
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	s := &imdsStandIn{token: hex.EncodeToString(raw)}
	metadata := map[string]string{
		"/latest/meta-data/instance-id":                             instance,
		"/latest/meta-data/tags/instance/aws:autoscaling:groupName": group,
		"/latest/meta-data/placement/region":                        region,
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			ttl := r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds")
			if n, err := strconv.Atoi(ttl); err != nil || n < 1 || n > 21600 {
				http.Error(w, "missing or bad X-aws-ec2-metadata-token-ttl-seconds", http.StatusBadRequest)
				return
			}
			s.mu.Lock()
			s.tokenHit = true
			s.mu.Unlock()
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
			io.WriteString(w, s.token)
		case r.Method == http.MethodGet:
			if r.Header.Get("X-Aws-Ec2-Metadata-Token") != s.token {
				http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
				return
			}
			value, ok := metadata[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			s.mu.Lock()
			s.paths = append(s.paths, r.URL.Path)
			s.mu.Unlock()
			io.WriteString(w, value)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *imdsStandIn) usedToken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenHit
}

func (s *imdsStandIn) served() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.paths, " ")
}

// testNode is one node's worth of state: a root to install into, a HOME, a port.
type testNode struct {
	agent, root, home, console string
	port                       int
	env                        []string
	stdout, stderr             bytes.Buffer
}

func newNode(t *testing.T, agent string, moto *motoServer, imds *imdsStandIn) *testNode {
	t.Helper()
	dir := t.TempDir()
	n := &testNode{
		agent:   agent,
		root:    filepath.Join(dir, "root"),
		home:    filepath.Join(dir, "home"),
		console: filepath.Join(dir, "console.log"),
		port:    freePort(t),
	}
	for _, d := range []string{n.root, n.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The agent appends to its console and never creates it: on a node it is the serial
	// console device, which always exists.
	if err := os.WriteFile(n.console, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Nothing from the caller's AWS set-up leaks in: fake credentials, the emulator for every
	// AWS API, the stand-in for IMDS.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
			n.env = append(n.env, kv)
		}
	}
	n.env = append(n.env,
		"HOME="+n.home,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_ENDPOINT_URL="+moto.url,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv4",
	)
	// Ollama runs on after a successful bootstrap: stop its whole process group (server and
	// model runners) through the pid file the agent wrote.
	t.Cleanup(func() {
		if t.Failed() {
			n.dumpLogs(t)
		}
		n.stopOllama(t)
	})
	return n
}

// config writes the node config that cloud-init would write on a CPU pool node and returns its
// path. The group name is left empty: the agent reads it from the instance's tag in IMDS.
func (n *testNode) config(t *testing.T, version, releaseURL, releaseSum, modelURL, modelSum string) string {
	t.Helper()
	cfg := node.Config{
		Role:       node.RoleOllama,
		Department: "chemistry",
		Pool:       "cpu",
		Region:     region,
		Lifecycle:  node.Lifecycle{Hook: hookName},
		Ollama: &node.OllamaConfig{
			Version:       version,
			Release:       node.Artifact{URL: releaseURL, SHA256: releaseSum},
			GPU:           false,
			Port:          n.port,
			Parallel:      2,
			ContextLength: 2048,
			MaxQueue:      16,
			Models: []node.Model{{
				Name:   modelName,
				Source: &node.Artifact{URL: modelURL, SHA256: modelSum},
			}},
		},
	}
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatalf("node config: %v", err) // a bug in this test, not in the agent
	}
	path := filepath.Join(filepath.Dir(n.root), "node.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// bootstrap runs `sandbox-node bootstrap` and returns its exit code.
func (n *testNode) bootstrap(t *testing.T, config string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.agent, "bootstrap", "--config", config, "--root", n.root, "--no-systemd", "--console", n.console)
	cmd.Env = n.env
	cmd.Stdout, cmd.Stderr = &n.stdout, &n.stderr
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	t.Logf("sandbox-node bootstrap took %s", time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("sandbox-node bootstrap did not finish within 5 minutes")
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	default:
		t.Fatalf("run sandbox-node: %v", err)
		return -1
	}
}

func (n *testNode) dumpLogs(t *testing.T) {
	t.Helper()
	t.Logf("sandbox-node stdout:\n%s", tail(n.stdout.Bytes(), 60))
	t.Logf("sandbox-node stderr:\n%s", tail(n.stderr.Bytes(), 80))
	if out, err := os.ReadFile(filepath.Join(n.root, "var", "log", "llm-sandbox", "ollama.log")); err == nil {
		t.Logf("ollama log:\n%s", tail(out, 60))
	}
}

func (n *testNode) stopOllama(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(n.root, "run", "llm-sandbox", "ollama.pid"))
	if err != nil {
		return // never started, or the failure path cleaned up
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Errorf("ollama pid file holds %q", data)
		return
	}
	stopGroup(t, "ollama", pid, nil)
}

// stopGroup sends SIGTERM to a process group, waits up to 15 s for it to go, then SIGKILLs it.
// exited, when not nil, closes when the leader has been reaped by this process.
func stopGroup(t *testing.T, name string, pgid int, exited <-chan struct{}) {
	if err := syscall.Kill(-pgid, syscall.SIGTERM); errors.Is(err, syscall.ESRCH) {
		return
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if exited != nil {
			select {
			case <-exited:
				// The leader is gone; make sure no child of it lingers.
				if syscall.Kill(-pgid, 0) != nil {
					return
				}
			default:
			}
		} else if syscall.Kill(-pgid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s (process group %d) ignored SIGTERM for 15s; killing it", name, pgid)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if exited != nil {
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (process group %d) survived SIGKILL", name, pgid)
		}
	}
}

// assertLoaded checks that GET /api/ps lists the model, kept loaded indefinitely.
func assertLoaded(t *testing.T, api string) {
	t.Helper()
	var ps struct {
		Models []struct {
			Name      string    `json:"name"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"models"`
	}
	getJSON(t, api+"/api/ps", &ps)
	for _, m := range ps.Models {
		if m.Name == modelName {
			// keep_alive -1 shows as an expiry centuries away; 5m (the default) would not.
			if time.Until(m.ExpiresAt) < 365*24*time.Hour {
				t.Errorf("/api/ps: %s expires at %s; want it kept loaded (keep_alive -1)", modelName, m.ExpiresAt)
			}
			return
		}
	}
	t.Errorf("/api/ps does not list %s: %+v", modelName, ps.Models)
}

var apiClient = &http.Client{Timeout: 2 * time.Minute}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := apiClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", url, resp.StatusCode, body)
	}
	decode(t, "GET "+url, body, v)
}

func postJSON(t *testing.T, url string, req any) []byte {
	t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := apiClient.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: HTTP %d: %s", url, resp.StatusCode, body)
	}
	return body
}

func decode(t *testing.T, what string, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: decode %s: %v", what, body, err)
	}
}

// streamChat posts a streamed OpenAI chat completion and reads the server-sent events until
// "data: [DONE]", returning the concatenated content of the deltas.
func streamChat(t *testing.T, url string, req any) string {
	t.Helper()
	data, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := apiClient.Post(url, "application/json", bytes.NewReader(data))
	if err != nil {
		t.Fatalf("POST %s (stream): %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s (stream): HTTP %d: %s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("POST %s (stream): Content-Type %q, want text/event-stream", url, ct)
	}
	var content strings.Builder
	chunks := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		payload, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("POST %s (stream): not a server-sent event line: %q", url, line)
		}
		if payload == "[DONE]" {
			if chunks == 0 {
				t.Fatalf("POST %s (stream): [DONE] before any chunk", url)
			}
			return content.String()
		}
		var chunk struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		decode(t, "stream chunk", []byte(payload), &chunk)
		for _, c := range chunk.Choices {
			content.WriteString(c.Delta.Content)
		}
		chunks++
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("POST %s (stream): read: %v", url, err)
	}
	t.Fatalf("POST %s (stream): the stream ended without data: [DONE] (%d chunks)", url, chunks)
	return ""
}

// runCommand runs a helper with a time limit and fails the test with its output on error.
func runCommand(t *testing.T, limit time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
