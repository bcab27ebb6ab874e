package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/llm-sandbox/llm-sandbox/internal/cwclient"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// TestGatewayKeys is department access end to end: the pinned LiteLLM, installed and
// configured by sandbox-node with the department's key registry (a table in the AWS emulator),
// two teams and usage metrics on, running two workers, in front of the real Ollama. A key the
// Go registry client issued gets completions; the master key, an unknown key and a request
// for a served model outside the team are refused (a model the gateway does not serve is
// LiteLLM's 404); the team's per-key requests-per-minute limit answers 429 with Retry-After
// (counted per worker: within rpm and workers × rpm answers); and a revoked key is refused
// within the revocation window.
//
// Every request is counted: the workers publish to the emulator's CloudWatch, and the
// usage reader (and `sandboxctl keys usage`, the built binary) reports per team and key id
// exactly the requests, tokens, errors and 429s the clients saw, 401s nowhere. Every prompt
// carries a marker: no marker and no key is in the usage metrics, the registry, or any log
// or file of either node. LiteLLM runs behind the agent's accounting proxy, as the Gateway
// component renders it, and checkGatewayInFlight follows one key's streams in the gateway's
// published in-flight requests before Auto Scaling terminates the node.
func TestGatewayKeys(t *testing.T) {
	h := localruntest.RequireLiteLLM(t)
	sandboxctl := buildSandboxctl(t, h.Repo)
	d := localruntest.NewDeployment(t, h)
	pool := d.StartOllama(t, "chemistry-cpu", localrun.OllamaOptions{})

	cfg := aws.Config{
		Region:       localrun.Region,
		BaseEndpoint: aws.String(d.Moto.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	}
	table := keyregistrytest.CreateTable(t, cfg, localrun.Department)
	reg := keyregistry.New(table, keyregistry.TableName(localrun.Department))
	ctx := context.Background()
	now := time.Now()
	since := now
	const rpm, workers = 4, 2
	alice, err := reg.Issue(ctx, "students", "alice", now, now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := reg.Issue(ctx, "students", "bob", now, now.Add(time.Hour), "")
	carol, _ := reg.Issue(ctx, "staff", "carol", now, now.Add(time.Hour), "")
	unknown := mustKey(t)

	masterKey := "sk-" + localrun.RandomAlphanumeric(t, 48)
	arn := d.Moto.CreateSecret(t, "llm-sandbox/"+localrun.Department+"/litellm-master-key", masterKey)
	gw := d.NewMember(t, "chemistry-gateway", localruntest.GatewayHook)
	gwCfg := d.LiteLLMConfig(gw, localrun.GatewayOptions{
		MasterKeySecretArn: arn,
		// The gateway serves a second model the team may not use (no pool answers it: the
		// 403 comes before any upstream call).
		Routes: []node.LiteLLMModel{
			node.NewLiteLLMModel(localrun.ModelName, pool.URL(), 2048),
			node.NewLiteLLMModel("qwen2.5:7b", pool.URL(), 2048),
		},
		Workers: workers,
		KeyRegistry: &node.KeyRegistry{Table: keyregistry.TableName(localrun.Department), Teams: []node.LiteLLMTeam{
			{Name: "students", Models: []string{localrun.ModelName}, RequestsPerMinute: rpm, TokensPerMinute: 100000, ParallelPerKey: 1},
			{Name: "staff", Models: []string{localrun.ModelName}, RequestsPerMinute: 60, TokensPerMinute: 100000, ParallelPerKey: 2},
			// ops holds the one key of the in-flight check at the end, whose streams the
			// usage comparisons leave out.
			{Name: "ops", Models: []string{localrun.ModelName}, RequestsPerMinute: 60, TokensPerMinute: 1000000, ParallelPerKey: 1},
		}},
		// Published every second, so the counts are in CloudWatch moments after the requests.
		Usage: &node.LiteLLMUsage{FlushSeconds: 1},
	})
	behindProxy(t, d.Moto.URL, gw.Group, &gwCfg)
	conf := gw.WriteConfig(t, gwCfg)
	if code := gw.Bootstrap(t, conf, localrun.BootstrapLimit); code != 0 {
		t.Fatalf("sandbox-node bootstrap (litellm) exited %d, want 0", code)
	}
	stopServe := serveGateway(t, gw, conf)

	// Every prompt carries its own marker, which must never be stored anywhere.
	run := localrun.RandomAlphanumeric(t, 16)
	var markers []string
	marker := func() string {
		m := fmt.Sprintf("PRIVACY-MARKER-%s-%d", run, len(markers))
		markers = append(markers, m)
		return m
	}
	teamOf := map[string]string{alice.Key: "students", bob.Key: "students", carol.Key: "staff"}
	tally := newUsageTally()
	chatURL := gw.URL() + "/v1/chat/completions"
	chatWith := func(key, model, content string) (int, http.Header, string) {
		t.Helper()
		code, h, body := chatOnce(t, chatURL, key, model, content, 4)
		if team, ok := teamOf[key]; ok {
			id, _ := keyregistry.KeyID(key)
			tally.add(t, team, id, code, []byte(body))
		}
		return code, h, body
	}
	chat := func(key, model string) (int, http.Header, string) {
		t.Helper()
		return chatWith(key, model, "Reference "+marker()+": hello")
	}

	if code, _, body := chat(alice.Key, localrun.ModelName); code != http.StatusOK || !strings.Contains(body, `"choices"`) {
		t.Fatalf("alice's key: HTTP %d, want a completion: %s", code, body)
	}
	for name, key := range map[string]string{"the master key": masterKey, "a key never issued": unknown} {
		if code, _, body := chat(key, localrun.ModelName); code != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401: %s", name, code, body)
		}
	}
	if code, _, body := chat(bob.Key, "qwen2.5:7b"); code != http.StatusForbidden {
		t.Errorf("bob asking for a model outside his team: HTTP %d, want 403: %s", code, body)
	}
	if code, _, body := chat(bob.Key, "no-such-model:1b"); code != http.StatusNotFound || !strings.Contains(body, "model_not_found") {
		t.Errorf("bob asking for a model the gateway does not serve: HTTP %d, want 404 model_not_found: %s", code, body)
	}

	// alice has made one request this minute. Without a rate-limit cache each worker counts
	// her limit on its own (docs/keys.md, "Limits across the gateway"): her first 429 comes
	// after at least rpm and at most workers × rpm answers.
	answered := 1
	for {
		code, header, body := chat(alice.Key, localrun.ModelName)
		if code == http.StatusTooManyRequests {
			if header.Get("Retry-After") == "" {
				t.Errorf("alice's 429: no Retry-After: %s", body)
			}
			break
		}
		if code != http.StatusOK {
			t.Fatalf("alice's request %d this minute: HTTP %d: %s", answered+1, code, body)
		}
		if answered++; answered > workers*rpm {
			t.Fatalf("alice got %d answers this minute; want at most %d (%d per worker, %d workers)", answered, workers*rpm, rpm, workers)
		}
	}
	if answered < rpm {
		t.Errorf("alice got a 429 after %d answers this minute; want at least %d", answered, rpm)
	}
	t.Logf("alice's first 429 came after %d answers (rpm %d, %d workers)", answered, rpm, workers)
	// The limit is alice's, not her team's.
	if code, _, body := chat(bob.Key, localrun.ModelName); code != http.StatusOK {
		t.Errorf("bob while alice is limited: HTTP %d, want 200: %s", code, body)
	}
	// carol, of the other team: three answers and a prompt longer than the context (400).
	for i := 0; i < 3; i++ {
		if code, _, body := chat(carol.Key, localrun.ModelName); code != http.StatusOK {
			t.Errorf("carol's request %d: HTTP %d, want 200: %s", i+1, code, body)
		}
	}
	if code, _, body := chatWith(carol.Key, localrun.ModelName, marker()+" "+strings.Repeat("word ", 3000)); code != http.StatusBadRequest {
		t.Errorf("carol's prompt over the context: HTTP %d, want 400: %s", code, body)
	}

	// Revoked: refused within the window (the module's cache time), polled every second.
	if err := reg.Revoke(ctx, bob.Record.KeyID, time.Now()); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		code, _, body := chat(bob.Key, localrun.ModelName)
		if code == http.StatusUnauthorized {
			t.Logf("bob's key refused %.1f s after the revoke", time.Since(revoked).Seconds())
			break
		}
		// 200, or 429 once the polling exceeds his own limit: still authenticated.
		if code != http.StatusOK && code != http.StatusTooManyRequests {
			t.Fatalf("bob after the revoke: HTTP %d: %s", code, body)
		}
		if time.Since(revoked) > time.Duration(node.KeyCacheSeconds+10)*time.Second {
			t.Fatalf("bob's key still works %s after the revoke", time.Since(revoked))
		}
		time.Sleep(time.Second)
	}

	// The usage the workers published, per team and key id, is what the clients saw.
	want := tally.teams()
	cw := cwclient.New(cfg)
	waited := time.Now()
	report := waitForUsage(t, cw, localrun.Department, since, want, 20*time.Second)
	diffUsage(t, "usage read back from CloudWatch", report.Teams, want)
	t.Logf("usage complete in CloudWatch %.1f s after the last request", time.Since(waited).Seconds())

	stackFile := fmt.Sprintf(usageStack, localrun.Region, localrun.Department, localrun.ModelName, localrun.ModelName, localrun.ModelName)
	out := runKeysUsage(t, sandboxctl(), h.Repo, d.Moto.URL, localrun.Department, stackFile, "--since", "1h", "--format", "json")
	var printed struct {
		Stack string `json:"stack"`
		usage.Report
	}
	if err := json.Unmarshal([]byte(out), &printed); err != nil {
		t.Fatalf("keys usage --format json: %v\n%s", err, out)
	}
	if printed.Stack != localrun.Department || printed.Department != localrun.Department {
		t.Errorf("keys usage --format json: stack %q, department %q", printed.Stack, printed.Department)
	}
	diffUsage(t, "keys usage --format json", printed.Teams, want)
	checkKeysUsageText(t, runKeysUsage(t, sandboxctl(), h.Repo, d.Moto.URL, localrun.Department, stackFile), want)

	// The gateway's in-flight requests follow one client's streams (a key of team ops, left
	// out of the usage comparisons), then Auto Scaling terminates the node.
	dave, err := reg.Issue(ctx, "ops", "dave", time.Now(), time.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	checkGatewayInFlight(t, d.Moto, gw, gwCfg, dave.Key)

	// Stop both servers, so that every worker publishes what it has left and every log is
	// complete: nothing was left, so the counts do not change.
	stopServe()
	gw.StopAll(t)
	pool.StopAll(t)
	// uvicorn logs each worker process it starts.
	started := regexp.MustCompile(`Started server process \[(\d+)\]`).FindAllStringSubmatch(string(readFile(t, gw.LogPath("litellm"))), -1)
	pids := map[string]bool{}
	for _, m := range started {
		pids[m[1]] = true
	}
	if len(pids) < workers {
		t.Errorf("LiteLLM's log names %d worker processes %v, want %d", len(pids), pids, workers)
	}
	report = waitForUsage(t, cw, localrun.Department, since, nil, 2*time.Second)
	diffUsage(t, "usage after the gateway stopped", slices.DeleteFunc(report.Teams, func(tm usage.Team) bool { return tm.Team == "ops" }), want)

	// Nothing stores a prompt or a key: not the usage metrics (whose every name and value is
	// the department, a team, an issued key id or a count), not the registry (a hash per key),
	// no log or file of either node.
	keys := []string{alice.Key, bob.Key, carol.Key, dave.Key, unknown}
	needles := append(slices.Clone(markers), keys...)
	allowed := map[string]bool{localrun.Department: true, "students": true, "staff": true, "ops": true,
		alice.Record.KeyID: true, bob.Record.KeyID: true, carol.Record.KeyID: true, dave.Record.KeyID: true}
	if n := checkUsageStore(t, cw, allowed, append(slices.Clone(needles), masterKey)); n == 0 {
		t.Errorf("the emulator's CloudWatch holds no metric: the usage privacy check proved nothing")
	}
	items := keyregistrytest.Items(t, table, localrun.Department)
	if len(items) != 4 {
		t.Errorf("the registry holds %d items, want 4", len(items))
	}
	for _, item := range items {
		for attr, v := range item {
			for _, n := range append(slices.Clone(needles), masterKey) {
				if strings.Contains(v, n) {
					t.Errorf("the registry's %s holds %q", attr, n)
				}
			}
		}
	}
	scan := localruntest.FindInFiles([]string{gw.Dir, pool.Dir, d.Moto.Log}, needles, 1<<30)
	if scan.Files == 0 || len(scan.Skipped) > 0 {
		t.Errorf("the privacy scan read %d files and skipped %v", scan.Files, scan.Skipped)
	}
	for _, hit := range scan.Hits {
		t.Errorf("%s holds %s", hit.Path, hit.Needle)
	}
}

func mustKey(t *testing.T) string {
	t.Helper()
	key, _, err := keyregistry.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}
