package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/node"
)

const terminateHook = "llm-sandbox-terminate"

// putTerminateHook adds the terminating hook the components create to a group in the emulator.
func putTerminateHook(t testing.TB, motoURL, group string) {
	t.Helper()
	client := autoscaling.New(autoscaling.Options{
		Region:       localruntest.Region,
		BaseEndpoint: aws.String(motoURL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.PutLifecycleHook(ctx, &autoscaling.PutLifecycleHookInput{
		AutoScalingGroupName: aws.String(group),
		LifecycleHookName:    aws.String(terminateHook),
		LifecycleTransition:  aws.String("autoscaling:EC2_INSTANCE_TERMINATING"),
		DefaultResult:        aws.String("CONTINUE"),
		HeartbeatTimeout:     aws.Int32(240),
	}); err != nil {
		t.Fatalf("moto: put the terminating hook: %v", err)
	}
}

// get GETs url on a new connection with the Host header a load balancer would send.
func get(url string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Host = "internal-chemistry-pools.ca-central-1.elb.amazonaws.com"
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestDrainWithRealOllama boots a pool node with Ollama behind the agent's accounting proxy,
// runs `sandbox-node serve`, starts a stream through the proxy and then makes Auto Scaling
// terminate the instance (the target lifecycle state in IMDS turns Terminated): new requests
// are refused at once, the stream finishes, and only then does the emulator record CONTINUE
// on the terminating hook.
func TestDrainWithRealOllama(t *testing.T) {
	h := localruntest.Require(t)
	d := localruntest.NewDeployment(t, h)
	const group = "chemistry-cpu-drain"
	n, cfg, config := bootProxiedPoolNode(t, d, group, 120)
	backend := fmt.Sprintf("http://127.0.0.1:%d", cfg.Ollama.BackendPort)
	// The premise of the proxy's Host rewrite: Ollama on loopback refuses a load balancer's Host.
	if code, err := get(backend + "/api/version"); err != nil || code != http.StatusForbidden {
		t.Logf("ollama on loopback answered a foreign Host with %d %v (the proxy rewrites it either way)", code, err)
	}

	n.IMDS.SetTargetLifecycleState("InService")
	logPath := filepath.Join(n.Dir, "serve.log")
	cmd := exec.Command(n.Agent, "serve", "--config", config, "--root", n.Root, "--poll", "200ms")
	cmd.Env = n.Env
	exited := localrun.StartGroup(t, "sandbox-node serve", cmd, logPath)
	api := n.URL()
	localrun.WaitReady(t, "sandbox-node serve", exited, logPath, 30*time.Second, 100*time.Millisecond, func() error {
		code, err := get(api + "/api/version")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /api/version through the proxy: %d", code)
		}
		return err
	})

	// Size the stream to last about 10 s at this machine's speed.
	var probe struct {
		EvalCount    int   `json:"eval_count"`
		EvalDuration int64 `json:"eval_duration"`
	}
	localruntest.Decode(t, "/api/generate", localruntest.PostJSON(t, api+"/api/generate", "", map[string]any{
		"model": modelName, "prompt": "Count", "stream": false, "options": map[string]any{"num_predict": 64, "temperature": 0},
	}), &probe)
	perSecond := float64(probe.EvalCount) / (float64(probe.EvalDuration) / 1e9)
	// At most 1,500 tokens: prompt and answer must fit in a request's context (the pool's
	// contextLength, 2,048 here), or Ollama cuts the stream short when it is full and the
	// test would see an unclean end that is not the drain's doing.
	tokens := min(max(int(perSecond*10), 200), 1500)
	t.Logf("tiny model: %.0f tokens/s; streaming %d tokens", perSecond, tokens)

	body, _ := json.Marshal(map[string]any{
		"model": modelName, "prompt": "Tell a long story", "stream": true,
		"options": map[string]any{"num_predict": tokens, "temperature": 0},
	})
	resp, err := http.Post(api+"/api/generate", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := bufio.NewReader(resp.Body)
	if _, err := stream.ReadString('\n'); err != nil {
		t.Fatalf("first chunk of the stream: %v", err)
	}
	streamDone := make(chan string, 1)
	go func() {
		// Read to the end; the last line says done.
		var last string
		for {
			line, err := stream.ReadString('\n')
			if strings.TrimSpace(line) != "" {
				last = line
			}
			if err != nil {
				if err != io.EOF {
					last = "read error: " + err.Error()
				}
				streamDone <- last
				return
			}
		}
	}()

	n.IMDS.SetTargetLifecycleState("Terminated")
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, err := get(api + "/api/version")
		if err == nil && code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new requests still answered %d %v 15 s after the termination began", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case last := <-streamDone:
		t.Fatalf("the stream ended before the drain began (last line %q): the test proves nothing; lengthen the stream", last)
	default:
	}
	for _, r := range d.Moto.Records(t, group) {
		if r.Hook == terminateHook {
			t.Fatalf("terminating hook completed with a stream in flight: %+v", r)
		}
	}

	var last string
	select {
	case last = <-streamDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("the stream did not finish within 2 minutes")
	}
	var final struct {
		Done  bool   `json:"done"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(last), &final); err != nil || !final.Done || final.Error != "" {
		t.Fatalf("the stream in flight did not finish cleanly during the drain: last line %q", last)
	}

	want := localruntest.LifecycleRecord{Group: group, Hook: terminateHook, Instance: n.Instance, Result: "CONTINUE"}
	deadline = time.Now().Add(15 * time.Second)
	for {
		var got []localruntest.LifecycleRecord
		for _, r := range d.Moto.Records(t, group) {
			if r.Hook == terminateHook {
				got = append(got, r)
			}
		}
		if len(got) == 1 && got[0] == want {
			break
		}
		if len(got) > 1 || time.Now().After(deadline) {
			t.Fatalf("terminating hook records %+v, want exactly [%+v]", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bootProxiedPoolNode bootstraps a pool node of group whose Ollama listens on a loopback
// backend port behind the agent's accounting proxy, with the terminating hook (added to group
// in the emulator) that serve's drain completes within drainSeconds. It returns the node, its
// config and the config's path, for `sandbox-node serve`.
func bootProxiedPoolNode(t *testing.T, d *localruntest.Deployment, group string, drainSeconds int) (*localruntest.Member, node.Config, string) {
	t.Helper()
	n := d.NewMember(t, group, hookName)
	putTerminateHook(t, d.Moto.URL, group)
	cfg := d.OllamaConfig(n, d.Release, localrun.OllamaOptions{})
	cfg.Ollama.BackendPort = localrun.FreePort(t)
	cfg.Lifecycle.TerminateHook, cfg.Lifecycle.DrainSeconds = terminateHook, drainSeconds
	config := n.WriteConfig(t, cfg)
	if code := n.Bootstrap(t, config, 5*time.Minute); code != 0 {
		t.Fatalf("sandbox-node bootstrap exited %d, want 0", code)
	}
	return n, cfg, config
}
