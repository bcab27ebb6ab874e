package main

// The verify and loadtest tests against a real deployment: localruntest's loopback gateway
// stack (the real sandbox-node agent installs a real Ollama serving the tiny model as
// llama3.1:8b, and the pinned LiteLLM in front of it, its master key in moto's Secrets
// Manager). Setting it up takes about a minute (installing LiteLLM), so every test here shares
// one, started by the first test that needs it and stopped by TestMain after the last.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
)

// shared is the one deployment of this test binary.
var shared struct {
	once   sync.Once
	runner *localrun.Runner
	log    bytes.Buffer
	stack  *localruntest.GatewayStack
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.runner != nil {
		shared.runner.Close() // stops every process the deployment started
		if shared.runner.Failed() {
			fmt.Fprintf(os.Stderr, "stopping the shared deployment failed:\n%s", shared.log.String())
			code = 1
		}
	}
	os.Exit(code)
}

// liveStack returns the shared deployment, starting it on first use. Without the helpers of
// `make e2e-deps` (the LLM_SANDBOX_* variables `make test` and `make e2e` set) it skips.
func liveStack(t *testing.T) *localruntest.GatewayStack {
	t.Helper()
	localruntest.RequireLiteLLM(t) // skips, naming make e2e-deps, when the helpers are not configured
	shared.once.Do(func() {
		shared.runner = localrun.NewRunner(&shared.log)
		shared.err = shared.runner.Run(func() {
			h := localruntest.RequireLiteLLM(shared.runner)
			// A queue long enough for the load tests' users; 2 parallel slots as on a small pool.
			shared.stack = localruntest.StartGatewayStack(shared.runner, h, localrun.OllamaOptions{MaxQueue: 64}, localrun.GatewayOptions{})
		})
	})
	if shared.err != nil || shared.stack == nil {
		t.Fatalf("the shared deployment did not start: %v\n%s", shared.err, shared.log.String())
	}
	return shared.stack
}

// noKey fails when the master key appears in any output.
func noKey(t *testing.T, key string, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		if strings.Contains(o, key) {
			t.Errorf("the master key was printed:\n%s", o)
		}
	}
}

// verifyJSON is the JSON report's shape, as a consumer (CI) reads it.
type verifyJSON struct {
	URL     string `json:"url"`
	OK      bool   `json:"ok"`
	Listing struct {
		OK      bool     `json:"ok"`
		Status  int      `json:"status"`
		Detail  string   `json:"detail"`
		TotalMs float64  `json:"totalMs"`
		Listed  []string `json:"listed"`
	} `json:"listing"`
	Auth struct {
		OK      bool    `json:"ok"`
		Status  int     `json:"status"`
		Detail  string  `json:"detail"`
		TotalMs float64 `json:"totalMs"`
	} `json:"auth"`
	Models []struct {
		Model  string `json:"model"`
		OK     bool   `json:"ok"`
		Listed bool   `json:"listed"`
		Chat   struct {
			OK           bool    `json:"ok"`
			Status       int     `json:"status"`
			Detail       string  `json:"detail"`
			TotalMs      float64 `json:"totalMs"`
			Tokens       int     `json:"tokens"`
			FinishReason string  `json:"finishReason"`
		} `json:"chat"`
		Stream struct {
			OK           bool    `json:"ok"`
			Status       int     `json:"status"`
			Detail       string  `json:"detail"`
			TotalMs      float64 `json:"totalMs"`
			TTFTMs       float64 `json:"ttftMs"`
			Tokens       int     `json:"tokens"`
			TokensFrom   string  `json:"tokensFrom"`
			FinishReason string  `json:"finishReason"`
			Done         bool    `json:"done"`
		} `json:"stream"`
	} `json:"models"`
}

func decodeStrict(t *testing.T, out string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields() // the documented shape, and nothing else
	if err := dec.Decode(v); err != nil {
		t.Fatalf("not the documented JSON (%v):\n%s", err, out)
	}
}

func TestVerifyLive(t *testing.T) {
	s := liveStack(t)
	url, key := s.URL(), s.MasterKey
	model := localrun.ModelName

	t.Run("healthy deployment passes", func(t *testing.T) {
		code, out, errOut := sandboxctl(t, projectRoot(t), "verify", "--url", url, "--key", key)
		if code != exitOK {
			t.Fatalf("exit %d, want 0:\n%s%s", code, out, errOut)
		}
		for _, want := range []string{
			"ok    listing: 1 listed: " + model + "\n",
			"ok    auth: a wrong key is refused with HTTP 401\n",
			"ok    " + model + " chat: ",
			"ok    " + model + " stream: first token ",
			"finish_reason length, ended with data: [DONE]\n",
			url + ": 4 check(s), 4 ok, 0 failed: the endpoint serves\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout does not say %q:\n%s", want, out)
			}
		}
		noKey(t, key, out, errOut)
	})

	t.Run("wait for a deployment that already serves", func(t *testing.T) {
		code, out, errOut := sandboxctl(t, projectRoot(t), "verify", "--url", url, "--key", key, "--wait", "2m")
		if code != exitOK {
			t.Fatalf("exit %d, want 0:\n%s%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "waiting up to 2m0s for the endpoint to serve\n") ||
			!strings.Contains(errOut, " (1 attempt(s))\n") || strings.Contains(errOut, "not ready") {
			t.Errorf("stderr does not say it was ready at the first attempt:\n%s", errOut)
		}
		if !strings.Contains(out, url+": 4 check(s), 4 ok, 0 failed: the endpoint serves\n") {
			t.Errorf("the checks did not run after the wait:\n%s", out)
		}
		noKey(t, key, out, errOut)
	})

	t.Run("JSON shape", func(t *testing.T) {
		// A trailing /v1 on the URL is accepted, and --model names the model to require.
		code, out, errOut := sandboxctl(t, projectRoot(t), "verify", "--url", url+"/v1", "--key", key, "--model", model, "--format", "json")
		if code != exitOK {
			t.Fatalf("exit %d, want 0:\n%s%s", code, out, errOut)
		}
		var r verifyJSON
		decodeStrict(t, out, &r)
		if !r.OK || r.URL != url || !r.Listing.OK || r.Listing.Status != 200 || len(r.Listing.Listed) != 1 || r.Listing.Listed[0] != model {
			t.Errorf("report: %+v", r)
		}
		if !r.Auth.OK || r.Auth.Status != 401 {
			t.Errorf("auth: %+v", r.Auth)
		}
		if len(r.Models) != 1 {
			t.Fatalf("models: %+v", r.Models)
		}
		m := r.Models[0]
		if m.Model != model || !m.OK || !m.Listed {
			t.Errorf("model: %+v", m)
		}
		if c := m.Chat; !c.OK || c.Status != 200 || c.Tokens < 1 || c.FinishReason == "" || c.TotalMs <= 0 {
			t.Errorf("chat: %+v", c)
		}
		if st := m.Stream; !st.OK || st.Status != 200 || !st.Done || st.TTFTMs <= 0 || st.TotalMs < st.TTFTMs ||
			st.Tokens < 1 || st.TokensFrom != "usage" || st.FinishReason == "" {
			t.Errorf("stream: %+v", st)
		}
		noKey(t, key, out, errOut)
	})

	t.Run("wrong key fails the listing", func(t *testing.T) {
		wrong := "sk-" + localrun.RandomAlphanumeric(t, 48)
		// A refused key is not something waiting changes: --wait stops at once.
		code, _, errOut := sandboxctl(t, projectRoot(t), "verify", "--url", url, "--key", wrong, "--wait", "10m")
		if code != exitInvalid || !strings.Contains(errOut, "stopped waiting after ") ||
			!strings.Contains(errOut, "listing: GET /v1/models: HTTP 401 (the key was refused) is an answer waiting does not change") {
			t.Errorf("--wait with a wrong key: exit %d, want %d and the wait stopped:\n%s", code, exitInvalid, errOut)
		}
		code, out, errOut := sandboxctl(t, projectRoot(t), "verify", "--url", url, "--key", wrong)
		if code != exitInvalid {
			t.Fatalf("exit %d, want 1:\n%s%s", code, out, errOut)
		}
		for _, want := range []string{
			"FAIL  listing: GET /v1/models: HTTP 401 (the key was refused)\n",
			"ok    auth: a wrong key is refused with HTTP 401\n",
			"FAIL  models: no model to check",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout does not say %q:\n%s", want, out)
			}
		}
		noKey(t, wrong, out, errOut)
		noKey(t, key, out, errOut)
		// With --model, the model's own checks fail on the key too.
		code, out, _ = sandboxctl(t, projectRoot(t), "verify", "--url", url, "--key", wrong, "--model", model, "--format", "json")
		var r verifyJSON
		decodeStrict(t, out, &r)
		if code != exitInvalid || r.OK || r.Listing.OK || r.Listing.Status != 401 || len(r.Models) != 1 ||
			r.Models[0].Chat.Status != 401 || r.Models[0].Stream.Status != 401 || r.Models[0].Stream.OK {
			t.Errorf("exit %d, report %+v", code, r)
		}
	})

	t.Run("missing model fails", func(t *testing.T) {
		code, out, errOut := sandboxctl(t, projectRoot(t), "verify", "--url", url, "--key", key, "--model", "mistral:7b", "--format", "json")
		if code != exitInvalid {
			t.Fatalf("exit %d, want 1:\n%s%s", code, out, errOut)
		}
		var r verifyJSON
		decodeStrict(t, out, &r)
		if r.OK || r.Listing.OK || r.Listing.Detail != "mistral:7b not listed (listed: "+model+")" || !r.Auth.OK {
			t.Errorf("report %+v", r)
		}
		// The gateway answers an unknown model as OpenAI does: 404 model_not_found.
		if len(r.Models) != 1 || r.Models[0].Listed || r.Models[0].OK || r.Models[0].Chat.Status != 404 || r.Models[0].Stream.Status != 404 ||
			!strings.Contains(r.Models[0].Chat.Detail, `"code":"model_not_found"`) {
			t.Errorf("models %+v: want mistral:7b unlisted, its chat and stream refused with 404 model_not_found", r.Models)
		}
		code, out, _ = sandboxctl(t, projectRoot(t), "verify", "--url", url, "--key", key, "--model", "mistral:7b")
		if code != exitInvalid || !strings.Contains(out, "FAIL  mistral:7b: not listed by GET /v1/models\n") || !strings.Contains(out, "FAIL  mistral:7b chat: HTTP 404: ") {
			t.Errorf("text: exit %d\n%s", code, out)
		}
	})

	t.Run("STACK reads the endpoint and the key", func(t *testing.T) {
		record := standInPulumi(t, map[string]any{
			"department": localrun.Department, "region": localruntest.Region,
			"endpointUrl": url, "masterKeySecretArn": s.MasterKeySecretArn,
		}, "", 0)
		t.Setenv("AWS_ENDPOINT_URL", s.Moto.URL) // the key comes from moto's Secrets Manager
		t.Setenv("AWS_ACCESS_KEY_ID", "testing")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
		t.Setenv("AWS_SESSION_TOKEN", "")
		t.Setenv("AWS_PROFILE", "")
		code, out, errOut := sandboxctl(t, projectRoot(t), "verify", "chemistry")
		if code != exitOK {
			t.Fatalf("exit %d, want 0:\n%s%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "verifying "+url+"/v1 (from stack chemistry (endpointUrl, master key from "+s.MasterKeySecretArn+"))") {
			t.Errorf("stderr does not say where the endpoint came from:\n%s", errOut)
		}
		if args, err := os.ReadFile(record); err != nil || !strings.HasSuffix(string(args), "|stack output --json -s chemistry\n") {
			t.Errorf("the Pulumi CLI was run as %q (%v)", args, err)
		}
		noKey(t, key, out, errOut)

		// A secret that does not exist: no key, exit 2.
		standInPulumi(t, map[string]any{"endpointUrl": url, "masterKeySecretArn": s.MasterKeySecretArn + "-gone"}, "", 0)
		code, out, errOut = sandboxctl(t, projectRoot(t), "verify", "chemistry")
		if code != exitUsage || !strings.Contains(errOut, "read the master key: GetSecretValue") || out != "" {
			t.Errorf("missing secret: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
}

// loadJSON is loadtest's JSON report, as a consumer reads it.
type loadJSON struct {
	Settings struct {
		URL                  string  `json:"url"`
		Model                string  `json:"model"`
		Users                int     `json:"users"`
		DurationSeconds      float64 `json:"durationSeconds"`
		Requests             int     `json:"requests"`
		MaxTokens            int     `json:"maxTokens"`
		TimeoutSeconds       float64 `json:"timeoutSeconds"`
		TargetTokensPerUser  float64 `json:"targetTokensPerUser"`
		VerdictPercentile    int     `json:"verdictPercentile"`
		MaxErrorRate         float64 `json:"maxErrorRate"`
		TokensPerSecondBasis string  `json:"tokensPerSecondBasis"`
	} `json:"settings"`
	Summary struct {
		Users           int     `json:"users"`
		DurationSeconds float64 `json:"durationSeconds"`
		Requests        struct {
			Sent                 int `json:"sent"`
			Completed            int `json:"completed"`
			Failed               int `json:"failed"`
			Unfinished           int `json:"unfinished"`
			WaitingForFirstToken int `json:"waitingForFirstToken"`
		} `json:"requests"`
		ErrorRate     float64           `json:"errorRate"`
		Errors        map[string]int    `json:"errors"`
		ErrorExamples map[string]string `json:"errorExamples"`
		TTFT          struct {
			P50Ms   float64 `json:"p50Ms"`
			P95Ms   float64 `json:"p95Ms"`
			Samples int     `json:"samples"`
		} `json:"ttft"`
		UserTokensPerSecond struct {
			P50 float64 `json:"p50"`
			P5  float64 `json:"p5"`
			Min float64 `json:"min"`
			Max float64 `json:"max"`
		} `json:"userTokensPerSecond"`
		AggregateTokensPerSecond float64 `json:"aggregateTokensPerSecond"`
		Tokens                   int     `json:"tokens"`
		TokensFrom               string  `json:"tokensFrom"`
	} `json:"summary"`
	Verdict struct {
		Met                     bool     `json:"met"`
		TargetTokensPerSecond   float64  `json:"targetTokensPerSecond"`
		Percentile              int      `json:"percentile"`
		ObservedTokensPerSecond float64  `json:"observedTokensPerSecond"`
		MaxErrorRate            float64  `json:"maxErrorRate"`
		Reasons                 []string `json:"reasons"`
	} `json:"verdict"`
}

func TestLoadtestLive(t *testing.T) {
	s := liveStack(t)
	url, key := s.URL(), s.MasterKey

	t.Run("a handful of users for a few seconds, low target met", func(t *testing.T) {
		code, out, errOut := sandboxctl(t, projectRoot(t), "loadtest", "--url", url, "--key", key,
			"--users", "3", "--duration", "5s", "--max-tokens", "8", "--target-tokens-per-user", "0.5",
			"--progress", "1s", "--format", "json")
		if code != exitOK {
			t.Fatalf("exit %d, want 0:\n%s%s", code, out, errOut)
		}
		var r loadJSON
		decodeStrict(t, out, &r)
		st, sm, v := r.Settings, r.Summary, r.Verdict
		if st.URL != url+"/v1" || st.Model != localrun.ModelName || st.Users != 3 || st.DurationSeconds != 5 || st.MaxTokens != 8 ||
			st.TargetTokensPerUser != 0.5 || st.VerdictPercentile != 50 || st.MaxErrorRate != 0.01 || st.TokensPerSecondBasis == "" {
			t.Errorf("settings %+v (the model is the first one listed)", st)
		}
		q := sm.Requests
		// Short answers, so that requests complete even on a busy 2-core machine; the figures
		// are checked for consistency, not speed.
		if q.Completed < 1 || q.Failed != 0 || q.Sent != q.Completed+q.Failed+q.Unfinished || q.Unfinished > 3 || len(sm.Errors) != 0 {
			t.Errorf("requests %+v, errors %v: want completed requests, none failed, at most one unfinished per user", q, sm.Errors)
		}
		if sm.Users != 3 || sm.DurationSeconds < 4.9 || sm.DurationSeconds > 5.5 {
			t.Errorf("users %d over %.2fs, want 3 over about 5s", sm.Users, sm.DurationSeconds)
		}
		if sm.TTFT.Samples < q.Completed || sm.TTFT.P50Ms <= 0 || sm.TTFT.P95Ms < sm.TTFT.P50Ms {
			t.Errorf("TTFT %+v", sm.TTFT)
		}
		u := sm.UserTokensPerSecond
		if u.P50 <= 0 || u.P5 < 0 || u.P5 > u.P50 || u.Min > u.P5 || u.Max < u.P50 {
			t.Errorf("per-user tokens/s %+v", u)
		}
		// The tiny model always runs to max_tokens, and LiteLLM sends the usage block.
		if sm.Tokens < 8*q.Completed || sm.AggregateTokensPerSecond <= 0 || !strings.HasPrefix(sm.TokensFrom, "usage") {
			t.Errorf("tokens %d from %q for %d completed requests of 8, aggregate %g", sm.Tokens, sm.TokensFrom, q.Completed, sm.AggregateTokensPerSecond)
		}
		if !v.Met || v.Percentile != 50 || v.ObservedTokensPerSecond != u.P50 || v.TargetTokensPerSecond != 0.5 || len(v.Reasons) != 0 {
			t.Errorf("verdict %+v", v)
		}
		if !strings.Contains(errOut, "streams open") || !strings.Contains(errOut, "loadtest: 3 users for 5s against "+url+"/v1") {
			t.Errorf("stderr has no progress:\n%s", errOut)
		}
		noKey(t, key, out, errOut)
	})

	t.Run("high target not met", func(t *testing.T) {
		code, out, errOut := sandboxctl(t, projectRoot(t), "loadtest", "--url", url, "--key", key,
			"--users", "2", "--requests", "6", "--max-tokens", "8", "--target-tokens-per-user", "1000000", "--progress", "0")
		if code != exitInvalid {
			t.Fatalf("exit %d, want 1:\n%s%s", code, out, errOut)
		}
		for _, want := range []string{
			"requests:    6 sent, 6 completed, 0 failed, 0 unfinished at the end",
			"errors:      none\n",
			"verdict:     NOT MET (median user p50, target 1e+06 tokens/s, at most 1% failed): the median user streamed ",
			"below the target 1e+06\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(errOut, "streams open") {
			t.Errorf("--progress 0 still printed progress:\n%s", errOut)
		}
	})

	t.Run("wrong key: every request refused", func(t *testing.T) {
		wrong := "sk-" + localrun.RandomAlphanumeric(t, 48)
		code, out, errOut := sandboxctl(t, projectRoot(t), "loadtest", "--url", url, "--key", wrong, "--model", localrun.ModelName,
			"--users", "2", "--requests", "4", "--target-tokens-per-user", "0", "--progress", "0", "--format", "json")
		if code != exitInvalid {
			t.Fatalf("exit %d, want 1:\n%s%s", code, out, errOut)
		}
		var r loadJSON
		decodeStrict(t, out, &r)
		if r.Summary.Requests.Failed != 4 || r.Summary.Errors["http_401"] != 4 || len(r.Summary.Errors) != 1 || r.Summary.ErrorRate != 1 {
			t.Errorf("requests %+v, errors %v", r.Summary.Requests, r.Summary.Errors)
		}
		if r.Verdict.Met || len(r.Verdict.Reasons) != 2 || r.Verdict.Reasons[0] != "no request completed" ||
			r.Verdict.Reasons[1] != "4 of 4 requests failed (100.0%, more than 1%)" {
			t.Errorf("verdict %+v: want not met, for no completion and the failures, not for speed against a 0 target", r.Verdict)
		}
		noKey(t, wrong, out, errOut)
		// Without --model, the model list is refused first: exit 1 before any load.
		code, out, errOut = sandboxctl(t, projectRoot(t), "loadtest", "--url", url, "--key", wrong, "--users", "1", "--requests", "1")
		if code != exitInvalid || out != "" || !strings.Contains(errOut, "GET /v1/models (to pick a model; or pass --model): HTTP 401") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
}
