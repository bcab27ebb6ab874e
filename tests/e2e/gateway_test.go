package e2e

import (
	"fmt"
	"net"
	"net/http"
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

// TestGateway is the gateway path end to end: sandbox-node bootstraps a pool node (the real
// Ollama serving the tiny model as llama3.1:8b and as the embedding model) and a gateway node (the pinned LiteLLM,
// installed from a hash-checked wheelhouse in the mirror, its master key fetched from Secrets
// Manager), each completing its own lifecycle action with CONTINUE. Clients then reach the
// model only through LiteLLM and only with the master key, and nothing they send is written
// down: neither the prompts, nor the embedding inputs, nor the key appear in any log or file
// of either node.
func TestGateway(t *testing.T) {
	h := localruntest.RequireLiteLLM(t)
	d := localruntest.NewDeployment(t, h)

	// The pool serves a chat model and an embedding model (the tiny model under both names).
	d.AddTinyModel(t, embedModel)
	pool := d.StartOllama(t, "chemistry-cpu", localrun.OllamaOptions{Models: []string{localrun.ModelName, embedModel}})
	wantPool := []localruntest.LifecycleRecord{{Group: pool.Group, Hook: localruntest.OllamaHook, Instance: pool.Instance, Result: "CONTINUE"}}
	if got := d.Moto.Records(t, pool.Group); !slices.Equal(got, wantPool) {
		t.Errorf("lifecycle actions for %s: got %+v, want exactly %+v", pool.Group, got, wantPool)
	}

	masterKey := "sk-" + localrun.RandomAlphanumeric(t, 48)
	arn := d.Moto.CreateSecret(t, "llm-sandbox/chemistry/litellm-master-key", masterKey)

	gw := d.NewMember(t, "chemistry-gateway", localruntest.GatewayHook)
	cfg := gw.WriteConfig(t, d.LiteLLMConfig(gw, localrun.GatewayOptions{
		MasterKeySecretArn: arn,
		Routes: []node.LiteLLMModel{
			node.NewLiteLLMModel(localrun.ModelName, pool.URL(), 0),
			node.NewLiteLLMModel(embedModel, pool.URL(), 0),
		},
		Workers:               1,
		NumRetries:            1,
		RequestTimeoutSeconds: 120,
		KeepAliveSeconds:      75,
	}))
	if code := gw.Bootstrap(t, cfg, localrun.BootstrapLimit); code != 0 {
		t.Fatalf("sandbox-node bootstrap (litellm) exited %d, want 0 (ready, CONTINUE sent)", code)
	}
	wantGW := []localruntest.LifecycleRecord{{Group: gw.Group, Hook: localruntest.GatewayHook, Instance: gw.Instance, Result: "CONTINUE"}}
	if got := d.Moto.Records(t, gw.Group); !slices.Equal(got, wantGW) {
		t.Errorf("lifecycle actions for %s: got %+v, want exactly %+v", gw.Group, got, wantGW)
	}
	if console, err := os.ReadFile(gw.Console); err != nil || !strings.Contains(string(console), "CONTINUE") {
		t.Errorf("the gateway's console log does not report the CONTINUE (err %v):\n%s", err, console)
	}
	if addrs := listeners(t, gw.Port); len(addrs) == 0 || !allLoopback(addrs) {
		t.Errorf("LiteLLM listens on %v for port %d; want 127.0.0.1 only", addrs, gw.Port)
	}

	api := gw.URL()
	chatURL := api + "/v1/chat/completions"

	// The load balancer's health check: no key needed.
	if code, body := localruntest.Call(t, http.MethodGet, api+"/health/liveliness", "", nil); code != http.StatusOK {
		t.Errorf("GET /health/liveliness: HTTP %d: %s", code, body)
	}

	// Every prompt carries its own marker, which must never be written anywhere.
	run := localrun.RandomAlphanumeric(t, 16)
	var markers []string
	prompt := func(what string) []map[string]string {
		m := fmt.Sprintf("PRIVACY-MARKER-%s-%d-%s", run, len(markers), what)
		markers = append(markers, m)
		return []map[string]string{{"role": "user", "content": "Reference " + m + ": is the gateway ready?"}}
	}

	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	localruntest.GetJSON(t, api+"/v1/models", masterKey, &models)
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if !slices.Contains(ids, localrun.ModelName) || !slices.Contains(ids, embedModel) {
		t.Errorf("GET /v1/models lists %q, want %s and %s", ids, localrun.ModelName, embedModel)
	}

	var completion struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	same := prompt("chat")
	body := localruntest.PostJSON(t, chatURL, masterKey, map[string]any{
		"model": localrun.ModelName, "messages": same, "temperature": 0, "max_tokens": 8,
	})
	localruntest.Decode(t, "POST /v1/chat/completions", body, &completion)
	if len(completion.Choices) != 1 || strings.TrimSpace(completion.Choices[0].Message.Content) == "" {
		t.Fatalf("POST /v1/chat/completions through LiteLLM: want one non-empty choice, got %s", body)
	}
	answer := completion.Choices[0].Message.Content

	// The same request straight to the pool: the gateway routed to the right model when the
	// greedy (temperature 0) answers agree.
	var direct struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	localruntest.Decode(t, "POST /v1/chat/completions (Ollama)", localruntest.PostJSON(t, pool.URL()+"/v1/chat/completions", "", map[string]any{
		"model": localrun.ModelName, "messages": same, "temperature": 0, "max_tokens": 8,
	}), &direct)
	if len(direct.Choices) != 1 || strings.TrimSpace(direct.Choices[0].Message.Content) != strings.TrimSpace(answer) {
		t.Errorf("through LiteLLM the model answered %q, straight from Ollama %+v; want the same at temperature 0", answer, direct.Choices)
	}

	streamed := localruntest.StreamChat(t, chatURL, masterKey, map[string]any{
		"model": localrun.ModelName, "messages": prompt("stream"), "temperature": 0, "max_tokens": 8, "stream": true,
	})
	if strings.TrimSpace(streamed) == "" {
		t.Errorf("POST /v1/chat/completions (stream) through LiteLLM: empty content")
	}
	t.Logf("through LiteLLM the tiny model answered %q, streamed %q", answer, streamed)

	// Embedding inputs carry markers too: what is embedded is as private as a prompt.
	embedMarker := fmt.Sprintf("PRIVACY-MARKER-%s-%d-embed", run, len(markers))
	markers = append(markers, embedMarker)
	var embedded struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	localruntest.Decode(t, "POST /v1/embeddings", localruntest.PostJSON(t, api+"/v1/embeddings", masterKey, map[string]any{
		"model": embedModel, "input": []string{"Reference " + embedMarker + ": a passage to index."},
	}), &embedded)
	if len(embedded.Data) != 1 || len(embedded.Data[0].Embedding) == 0 {
		t.Errorf("POST /v1/embeddings through LiteLLM: want one vector, got %+v", embedded)
	}

	// Only the master key gets a completion: anything else gets 401 from the custom-auth module
	// the agent renders (without a database LiteLLM itself authenticates only the master key,
	// BerriAI/litellm#4880) and never reaches the pool.
	for _, c := range []struct{ name, key string }{
		{"wrong key refused", "sk-" + localrun.RandomAlphanumeric(t, 48)},
		{"missing key refused", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := poolChats(t, pool)
			code, body := localruntest.Call(t, http.MethodPost, chatURL, c.key, map[string]any{
				"model": localrun.ModelName, "messages": prompt("denied"), "temperature": 0, "max_tokens": 8,
			})
			if code != http.StatusUnauthorized {
				t.Errorf("POST /v1/chat/completions: HTTP %d, want 401: %s", code, body)
			}
			if strings.Contains(string(body), `"choices"`) {
				t.Errorf("POST /v1/chat/completions returned a completion: %s", body)
			}
			if code, body := localruntest.Call(t, http.MethodGet, api+"/v1/models", c.key, nil); code != http.StatusUnauthorized {
				t.Errorf("GET /v1/models: HTTP %d, want 401: %s", code, body)
			}
			if after := poolChats(t, pool); after != before {
				t.Errorf("Ollama logged %d chat requests during the refused one, want none", after-before)
			}
		})
	}

	// Stop both servers so that whatever they buffer reaches their logs, then look for the
	// markers and the key. The cleanups stop them again, harmlessly, if this is skipped.
	gw.StopAll(t)
	pool.StopAll(t)
	for _, m := range []*localruntest.Member{gw, pool} {
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(m.Port), time.Second); err == nil {
			conn.Close()
			t.Errorf("port %d still answers after its server was stopped", m.Port)
		}
	}

	logs := map[string][]byte{
		"LiteLLM log":            readFile(t, gw.LogPath("litellm")),
		"Ollama log":             readFile(t, pool.LogPath("ollama")),
		"gateway console":        readFile(t, gw.Console),
		"pool console":           readFile(t, pool.Console),
		"gateway agent's stdout": gw.Stdout.Bytes(),
		"gateway agent's stderr": gw.Stderr.Bytes(),
		"pool agent's stdout":    pool.Stdout.Bytes(),
		"pool agent's stderr":    pool.Stderr.Bytes(),
	}
	if len(logs["LiteLLM log"]) == 0 || len(logs["Ollama log"]) == 0 {
		t.Errorf("empty logs (LiteLLM %d bytes, Ollama %d bytes): the privacy checks below would prove nothing",
			len(logs["LiteLLM log"]), len(logs["Ollama log"]))
	}
	for name, data := range logs {
		for _, needle := range append([]string{masterKey}, markers...) {
			if strings.Contains(string(data), needle) {
				what := "a prompt's marker"
				if needle == masterKey {
					what = "the master key"
				}
				t.Errorf("the %s holds %s (%s)", name, what, needle)
			}
		}
	}

	// Every file of both nodes (roots, homes, configs, consoles), bounded at 1 GiB each: the
	// markers nowhere, the key only in files no one but the owner reads.
	const bound = 1 << 30
	scan := localruntest.FindInFiles([]string{gw.Dir, pool.Dir}, append([]string{masterKey}, markers...), bound)
	t.Logf("privacy scan: %d files, %d MiB read; %d over %d MiB skipped %v", scan.Files, scan.Bytes>>20, len(scan.Skipped), bound>>20, scan.Skipped)
	if scan.Files == 0 {
		t.Errorf("the privacy scan read no file")
	}
	if len(scan.Skipped) > 0 {
		t.Errorf("the privacy scan skipped files over the bound: %v", scan.Skipped)
	}
	keyFiles := 0
	for _, hit := range scan.Hits {
		switch {
		case hit.Needle == masterKey && hit.Mode.Perm()&0o077 == 0:
			keyFiles++
			t.Logf("the master key is in %s (mode %s)", hit.Path, hit.Mode.Perm())
		case hit.Needle == masterKey:
			t.Errorf("the master key is in %s, mode %s: readable beyond its owner", hit.Path, hit.Mode.Perm())
		default:
			t.Errorf("%s holds %s", hit.Path, hit.Needle)
		}
	}
	if keyFiles > 1 {
		t.Errorf("the master key is written to %d files; want at most the one root-only environment file", keyFiles)
	}
}

// poolChats counts the chat requests in Ollama's request log once the count has settled:
// Ollama writes a request's line when its handler returns, which may be a moment after the
// client read the last byte of the previous answer.
func poolChats(t *testing.T, pool *localruntest.Member) int {
	t.Helper()
	chats := regexp.MustCompile(`(?m)POST\s+"/(api/chat|v1/chat/completions)"`)
	count := func() int { return len(chats.FindAll(readFile(t, pool.LogPath("ollama")), -1)) }
	last := count()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		n := count()
		if n == last {
			return n
		}
		last = n
	}
	return last
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("read %s: %v", filepath.Base(path), err)
	}
	return data
}

// listeners returns the local addresses of the TCP sockets listening on port, from
// /proc/net/tcp and /proc/net/tcp6, as hex as the kernel writes them.
func listeners(t *testing.T, port int) []string {
	t.Helper()
	var addrs []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || f[3] != "0A" { // 0A is LISTEN
				continue
			}
			host, p, ok := strings.Cut(f[1], ":")
			if n, err := strconv.ParseInt(p, 16, 32); ok && err == nil && int(n) == port {
				addrs = append(addrs, host)
			}
		}
	}
	return addrs
}

// allLoopback reports whether every address is 127.0.0.1 (IPv4) or ::1 (IPv6).
func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		if a != "0100007F" && a != "00000000000000000000000001000000" {
			return false
		}
	}
	return true
}
