// Package e2e holds the local end-to-end tests: the real sandbox-node agent installs and runs a
// real Ollama (built from the Go module proxy) serving a tiny model the test writes itself, and
// a real pinned LiteLLM in front of it, and completes each node's lifecycle action against a
// real AWS emulator (moto). Everything binds to 127.0.0.1 and every process the tests start is
// stopped when they end. The nodes are internal/localrun's, which `sandboxctl local` and the
// gateway benchmark run too; internal/localrun/localruntest adds the AWS emulator.
//
// The helpers are prebuilt by `make e2e-deps`, which `make test` runs; the paths reach the tests
// through environment variables, and without them the tests skip.
package e2e

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/node"
)

const (
	modelName = localrun.ModelName
	hookName  = localruntest.OllamaHook
)

// TestOllamaRole runs `sandbox-node bootstrap` for the ollama role twice against the same
// mirror and emulator: once with good artifacts (the node serves real completions and sends
// CONTINUE) and once with a corrupted release (the node refuses it, sends ABANDON and serves
// nothing).
func TestOllamaRole(t *testing.T) {
	h := localruntest.Require(t)
	d := localruntest.NewDeployment(t, h)

	release, err := os.ReadFile(filepath.Join(d.Work, "ollama-linux-amd64.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(release)
	corrupt[len(corrupt)/2] ^= 0xff
	corruptRelease := node.Artifact{
		URL:    d.Mirror.Add("/corrupt/v"+h.OllamaVersion+"/ollama-linux-amd64.tar.zst", corrupt),
		SHA256: d.Release.SHA256, // the mirror serves a release with one byte flipped; the config holds the real hash
	}

	t.Run("ready node serves and continues", func(t *testing.T) {
		n := d.NewMember(t, "chemistry-cpu-ready", hookName)
		cfg := n.WriteConfig(t, d.OllamaConfig(n, d.Release, localrun.OllamaOptions{}))

		code := n.Bootstrap(t, cfg, 5*time.Minute)
		if code != 0 {
			t.Fatalf("sandbox-node bootstrap exited %d, want 0 (ready, CONTINUE sent)", code)
		}

		if !n.IMDS.UsedToken() {
			t.Errorf("the agent read IMDS without an IMDSv2 token")
		}
		if got := n.IMDS.Served(); !strings.Contains(got, "instance-id") || !strings.Contains(got, "aws:autoscaling:groupName") {
			t.Errorf("the agent read IMDS paths %q; want the instance id and the group tag (the config leaves the group empty)", got)
		}
		if fi, err := os.Stat(filepath.Join(n.Root, node.OllamaBinary)); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("the release was not installed as <root>%s: %v", node.OllamaBinary, err)
		}

		api := n.URL()
		var version struct {
			Version string `json:"version"`
		}
		localruntest.GetJSON(t, api+"/api/version", "", &version)
		if version.Version != h.OllamaVersion {
			t.Errorf("GET /api/version = %q, want %q (the packaged release)", version.Version, h.OllamaVersion)
		}

		// Preloaded by the agent, before any request of ours.
		assertLoaded(t, api)

		chat := localruntest.PostJSON(t, api+"/api/chat", "", map[string]any{
			"model":    modelName,
			"messages": []map[string]string{{"role": "user", "content": "Is the node ready?"}},
			"stream":   false,
			"options":  map[string]any{"temperature": 0, "num_predict": 8},
		})
		var native struct {
			Message struct{ Content string } `json:"message"`
			Done    bool                     `json:"done"`
		}
		localruntest.Decode(t, "/api/chat", chat, &native)
		if strings.TrimSpace(native.Message.Content) == "" || !native.Done {
			t.Errorf("/api/chat: empty or unfinished reply: %s", chat)
		}

		openAI := map[string]any{
			"model":       modelName,
			"messages":    []map[string]string{{"role": "user", "content": "Is the node ready?"}},
			"temperature": 0,
			"max_tokens":  8,
		}
		answer := localruntest.Chat(t, api+"/v1/chat/completions", "", openAI)

		openAI["stream"] = true
		streamed := localruntest.StreamChat(t, api+"/v1/chat/completions", "", openAI)
		if strings.TrimSpace(streamed) == "" {
			t.Errorf("/v1/chat/completions (stream): empty content")
		}
		// Temperature 0 is greedy decoding: the same request gives the same words either way.
		if want := answer; streamed != want {
			t.Errorf("/v1/chat/completions: streamed %q, not streamed %q; want the same at temperature 0", streamed, want)
		}
		t.Logf("the tiny model answered %q", streamed)

		assertLoaded(t, api)

		if console, err := os.ReadFile(n.Console); err != nil || !strings.Contains(string(console), "CONTINUE") {
			t.Errorf("the console log does not report the CONTINUE (err %v):\n%s", err, console)
		}

		want := []localruntest.LifecycleRecord{{Group: n.Group, Hook: hookName, Instance: n.Instance, Result: "CONTINUE"}}
		if got := d.Moto.Records(t, n.Group); !slices.Equal(got, want) {
			t.Errorf("lifecycle actions for %s: got %+v, want exactly %+v", n.Group, got, want)
		}
	})

	t.Run("corrupt release abandons", func(t *testing.T) {
		n := d.NewMember(t, "chemistry-cpu-corrupt", hookName)
		cfg := n.WriteConfig(t, d.OllamaConfig(n, corruptRelease, localrun.OllamaOptions{}))

		code := n.Bootstrap(t, cfg, 5*time.Minute)
		if code != 1 {
			t.Fatalf("sandbox-node bootstrap exited %d, want 1 (failed, ABANDON sent)", code)
		}

		want := []localruntest.LifecycleRecord{{Group: n.Group, Hook: hookName, Instance: n.Instance, Result: "ABANDON"}}
		if got := d.Moto.Records(t, n.Group); !slices.Equal(got, want) {
			t.Errorf("lifecycle actions for %s: got %+v, want exactly %+v", n.Group, got, want)
		}
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.Port), time.Second); err == nil {
			conn.Close()
			t.Errorf("something listens on the Ollama port %d after a failed bootstrap", n.Port)
		}
		if _, err := os.Stat(filepath.Join(n.Root, node.OllamaBinary)); err == nil {
			t.Errorf("the corrupt release was installed as <root>%s", node.OllamaBinary)
		}
		console, err := os.ReadFile(n.Console)
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

// assertLoaded checks that GET /api/ps lists the model, kept loaded indefinitely.
func assertLoaded(t *testing.T, api string) {
	t.Helper()
	var ps struct {
		Models []struct {
			Name      string    `json:"name"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"models"`
	}
	localruntest.GetJSON(t, api+"/api/ps", "", &ps)
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
