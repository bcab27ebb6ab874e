// Package usagetest runs the gateway's usage module (node.LiteLLMUsageModule) with its
// rendered settings under a real Python with the real boto3, outside LiteLLM: a stand-in for
// LiteLLM's CustomLogger (the one name the module imports) lets a driver feed the module the
// events LiteLLM would, so that tests of the module and of what reads its metrics (`sandboxctl
// keys usage`) get their metrics from the module's own code, published to an AWS emulator.
// The end-to-end tests run it inside the real LiteLLM.
package usagetest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/node"
)

// Event is one thing the driver does, in order.
type Event struct {
	// Kind is "success" (async_log_success_event with Team, KeyID and the token counts in
	// the standard logging payload), "failure" (async_post_call_failure_hook with an
	// exception answering Status, and Team and KeyID on the UserAPIKeyAuth, or on the
	// exception's llm_sandbox_identity when OnException, as the custom-auth module's 403),
	// "flush" (publish now), "cut" (point the module's CloudWatch client at a closed port),
	// "restore" (a fresh client at the emulator), "sleep" (Seconds), or "abort" (os._exit(0):
	// end without the exit-time flush).
	Kind             string  `json:"kind"`
	Team             string  `json:"team,omitempty"`
	KeyID            string  `json:"keyId,omitempty"`
	PromptTokens     int     `json:"promptTokens,omitempty"`
	CompletionTokens int     `json:"completionTokens,omitempty"`
	Status           int     `json:"status,omitempty"`
	OnException      bool    `json:"onException,omitempty"`
	Seconds          float64 `json:"seconds,omitempty"`
}

// standIns are the module's one LiteLLM import.
var standIns = map[string]string{
	"litellm/__init__.py":                   "",
	"litellm/integrations/__init__.py":      "",
	"litellm/integrations/custom_logger.py": "class CustomLogger:\n    def __init__(self, **kwargs):\n        pass\n",
	"llm_sandbox_usage_driver.py":           driver,
}

// driver runs the events of argv[1] (a JSON list) in this process, or, with argv[2] "spawn" or
// "fork", in a multiprocessing child started so: uvicorn spawns its workers (which end through
// sys.exit), a forked child ends through os._exit.
const driver = `import asyncio
import json
import multiprocessing
import os
import sys
import time
import types

import llm_sandbox_usage as usage


class Failure(Exception):
    pass


def run(events):
    h = usage.handler
    for ev in events:
        kind = ev["kind"]
        if kind == "success":
            payload = {
                "prompt_tokens": ev.get("promptTokens", 0),
                "completion_tokens": ev.get("completionTokens", 0),
                "metadata": {"user_api_key_team_id": ev.get("team") or None, "user_api_key_user_id": ev.get("keyId") or None},
            }
            asyncio.run(h.async_log_success_event({"standard_logging_object": payload}, None, None, None))
        elif kind == "failure":
            e = Failure("refused")
            # Odd statuses as a ProxyException carries them (code, a string), even ones as an
            # HTTPException or a LiteLLM exception does (status_code).
            if ev["status"] % 2:
                e.code = str(ev["status"])
            else:
                e.status_code = ev["status"]
            auth = types.SimpleNamespace(team_id=None, user_id=None)
            if ev.get("onException"):
                e.llm_sandbox_identity = (ev.get("team"), ev.get("keyId"))
            else:
                auth = types.SimpleNamespace(team_id=ev.get("team") or None, user_id=ev.get("keyId") or None)
            got = asyncio.run(h.async_post_call_failure_hook({}, e, auth))
            assert got is None, "the usage hook must not replace the error"
        elif kind == "flush":
            h.flush()
        elif kind == "cut":
            import boto3

            h._client = boto3.client("cloudwatch", region_name=h.settings["region"], endpoint_url="http://127.0.0.1:9")
        elif kind == "restore":
            h._client = None
        elif kind == "sleep":
            time.sleep(ev["seconds"])
        elif kind == "abort":
            sys.stdout.flush()
            os._exit(0)


if __name__ == "__main__":
    events = json.loads(sys.argv[1])
    if sys.argv[2:]:
        p = multiprocessing.get_context(sys.argv[2]).Process(target=run, args=(events,))
        p.start()
        p.join()
        sys.exit(p.exitcode)
    run(events)
`

// Options say how to run the module.
type Options struct {
	// Python has boto3 (the emulator's venv). Endpoint is the AWS emulator's URL.
	Python, Endpoint string
	// Settings is node.RenderLiteLLMUsageSettings's output.
	Settings []byte
	// Child, "spawn" or "fork", runs the events in a multiprocessing child started so (a
	// uvicorn worker is spawned); empty runs them in the driver's process.
	Child string
}

// Run runs the module on events and returns what it wrote to stderr; it fails the test when
// the driver fails.
func Run(t testing.TB, o Options, events []Event) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		filepath.Base(node.LiteLLMUsageFile):         node.LiteLLMUsageModule,
		filepath.Base(node.LiteLLMUsageSettingsFile): string(o.Settings),
	}
	for name, text := range standIns {
		files[name] = text
	}
	for name, text := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := json.Marshal(events)
	args := []string{"-s", "-B", filepath.Join(dir, "llm_sandbox_usage_driver.py"), string(data)}
	if o.Child != "" {
		args = append(args, o.Child)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.Python, args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PYTHONPATH=" + dir, "PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"AWS_ENDPOINT_URL=" + o.Endpoint, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "none"),
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("usage module driver: %v\n%s", err, stderr.String())
	}
	return stderr.String()
}
