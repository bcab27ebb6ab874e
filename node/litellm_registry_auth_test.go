package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
)

// driveRegistryAuth is an interactive driver of the module in registry mode: each line of
// stdin is a JSON step, each line of stdout its result. A step either calls the module
// ({"key", "model"}: the request body names model when set), moves the module's clock
// ({"advance": seconds}, time.monotonic and time.time), or cuts the module off from the
// registry ({"cut": true}: its boto3 client then points at a closed port). Each result
// carries the number of registry reads so far.
const driveRegistryAuth = `import asyncio
import json
import sys
import time

offset = [0.0]
_mono, _wall = time.monotonic, time.time
time.monotonic = lambda: _mono() + offset[0]
time.time = lambda: _wall() + offset[0]

import llm_sandbox_auth as auth
from fastapi import Request
from litellm.proxy._types import ProxyException

reads = [0]
_real_read = auth._read


def counting(key_id):
    reads[0] += 1
    return _real_read(key_id)


auth._read = counting

for line in sys.stdin:
    step = json.loads(line)
    r = {}
    if "advance" in step:
        offset[0] += step["advance"]
    elif step.get("cut"):
        import boto3
        from botocore.config import Config

        auth._client = boto3.client("dynamodb", region_name="ca-central-1", endpoint_url="http://127.0.0.1:9",
                                    config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1))
    else:
        body = json.dumps({"model": step["model"]}).encode() if step.get("model") else b""
        try:
            got = asyncio.run(auth.user_api_key_auth(Request(body), step["key"]))
            r["accepted"] = {k: (v if isinstance(v, (list, int)) else str(getattr(v, "value", v))) for k, v in got.kwargs.items()}
        except ProxyException as e:
            r["refused"] = {"code": e.code, "type": str(getattr(e.type, "value", e.type))}
    r["reads"] = reads[0]
    print(json.dumps(r), flush=True)
`

// registryAuth is the module running in registry mode under the emulator's python.
type registryAuth struct {
	t      *testing.T
	stdin  io.WriteCloser
	stdout *bufio.Scanner
}

type registryStep struct {
	Accepted map[string]any `json:"accepted"`
	Refused  *struct {
		Code int    `json:"code"`
		Type string `json:"type"`
	} `json:"refused"`
	Reads int `json:"reads"`
}

func (a *registryAuth) step(v map[string]any) registryStep {
	a.t.Helper()
	line, _ := json.Marshal(v)
	if _, err := a.stdin.Write(append(line, '\n')); err != nil {
		a.t.Fatal(err)
	}
	if !a.stdout.Scan() {
		a.t.Fatalf("the driver stopped: %v", a.stdout.Err())
	}
	var r registryStep
	if err := json.Unmarshal(a.stdout.Bytes(), &r); err != nil {
		a.t.Fatalf("driver printed %q: %v", a.stdout.Text(), err)
	}
	return r
}

func (a *registryAuth) call(key, model string) registryStep {
	return a.step(map[string]any{"key": key, "model": model})
}

// authBackend is where the module under test reads its records: the registry table in the
// emulator, or a local run's key store file.
type authBackend struct {
	python string
	env    []string
	store  keyregistry.Store
	// place puts the registry into the node config (table or file, and the platform).
	place func(*Config)
	// cut makes the registry stop answering the driver.
	cut func(*registryAuth)
}

// TestAuthModuleResolvesKeysThroughTheRegistry runs the rendered module with its rendered
// settings under a real Python with the real boto3, against the AWS emulator holding a
// registry table whose records the Go registry client wrote: a team's key is accepted with
// its team's models and limits, as an internal user, never with the key itself as the
// api_key; a model the gateway serves outside the team is 403, one it does not serve passes
// on to LiteLLM's 404; an unknown, altered, expired, revoked key, a key
// of an undeclared team and the master key are 401; a revoke takes effect once the record's
// cache time has passed; a registry that stops answering is bridged for staleSeconds, then
// 503.
func TestAuthModuleResolvesKeysThroughTheRegistry(t *testing.T) {
	m := keyregistrytest.Start(t)
	cfg := m.Config("ca-central-1")
	keyregistrytest.CreateTable(t, cfg, "chem")
	checkRegistryAuth(t, authBackend{
		python: m.Python,
		env: []string{
			"AWS_ENDPOINT_URL=" + m.URL, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent",
		},
		store: keyregistry.New(dynamodb.NewFromConfig(cfg), keyregistry.TableName("chem")),
		place: func(c *Config) { c.LiteLLM.KeyRegistry.Table = keyregistry.TableName("chem") },
		cut:   func(a *registryAuth) { a.step(map[string]any{"cut": true}) },
	})
}

// TestAuthModuleResolvesKeysThroughTheLocalStore is the same run on the local platform: the
// records are in a local run's key store file, which the Go store wrote, and the module reads
// it with the same checks, the same answers and the same cache window; a store that cannot be
// read is bridged and then refused as a table that does not answer. No AWS is involved: the
// module never imports boto3.
func TestAuthModuleResolvesKeysThroughTheLocalStore(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	file := filepath.Join(t.TempDir(), keyregistry.LocalStoreFile)
	store, err := keyregistry.CreateFileStore(file)
	if err != nil {
		t.Fatal(err)
	}
	checkRegistryAuth(t, authBackend{
		python: python,
		store:  store,
		place: func(c *Config) {
			c.Platform = PlatformLocal
			c.LiteLLM.KeyRegistry.File = file
		},
		cut: func(*registryAuth) {
			if err := os.Rename(file, file+".away"); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// checkRegistryAuth is the module's behaviour over one backend.
func checkRegistryAuth(t *testing.T, b authBackend) {
	t.Helper()
	reg := b.store
	ctx := context.Background()
	now := time.Now()
	alice, err := reg.Issue(ctx, "students", "alice", now, now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := reg.Issue(ctx, "staff", "bob", now, now.Add(time.Hour), "")
	expired, _ := reg.Issue(ctx, "staff", "carol", now.Add(-2*time.Hour), now.Add(-time.Hour), "")
	ghost, _ := reg.Issue(ctx, "alumni", "dave", now, now.Add(time.Hour), "")

	c := &Config{Region: "ca-central-1", LiteLLM: &LiteLLMConfig{
		Models: []LiteLLMModel{{Name: "llama3.1:8b"}, {Name: "qwen2.5:7b"}},
		KeyRegistry: &KeyRegistry{Teams: []LiteLLMTeam{
			{Name: "students", Models: []string{"llama3.1:8b"}, RequestsPerMinute: 10, TokensPerMinute: 20000, ParallelPerKey: 1},
			{Name: "staff", Models: []string{"llama3.1:8b", "qwen2.5:7b"}, RequestsPerMinute: 60, TokensPerMinute: 100000, ParallelPerKey: 2},
		}},
	}}
	b.place(c)
	settings, err := RenderLiteLLMAuthSettings(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := authDir(t, map[string]string{
		filepath.Base(LiteLLMAuthSettingsFile): string(settings),
		"drive.py":                             driveRegistryAuth,
	})
	const master = "sk-Zq7Xw2Lr9Vb4Nc1Md8Kf3Hj6Gt5Ps0Ya2Ue7Wi4Ro9TyQx"
	cmd := exec.Command(b.python, "-s", "-B", filepath.Join(dir, "drive.py"))
	cmd.Dir = dir
	cmd.Env = append([]string{"PYTHONPATH=" + dir, MasterKeyVar + "=" + master, "PATH=" + os.Getenv("PATH")}, b.env...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Logf("driver: %v\n%s", err, stderr.String())
		}
	})
	a := &registryAuth{t: t, stdin: stdin, stdout: bufio.NewScanner(stdout)}

	r := a.call(alice.Key, "llama3.1:8b")
	want := map[string]any{
		"api_key": keyregistry.Hash(alice.Key), "token": keyregistry.Hash(alice.Key), "user_id": alice.Record.KeyID,
		"team_id": "students", "models": []any{"llama3.1:8b"}, "rpm_limit": 10.0, "tpm_limit": 20000.0,
		"max_parallel_requests": 1.0, "user_role": "internal_user",
	}
	if r.Accepted == nil || len(r.Accepted) != len(want) {
		t.Fatalf("alice: %+v, want accepted as %v\n%s", r, want, stderr.String())
	}
	for k, v := range want {
		if got, _ := json.Marshal(r.Accepted[k]); string(got) != mustJSON(v) {
			t.Errorf("alice: %s = %s, want %s", k, got, mustJSON(v))
		}
	}
	if r.Reads != 1 {
		t.Errorf("registry reads after alice's first call: %d, want 1", r.Reads)
	}
	if r := a.call("Bearer "+alice.Key, ""); r.Accepted == nil || r.Reads != 1 {
		t.Errorf("alice without a model (GET /v1/models), as a Bearer token: %+v, want accepted from the cache", r)
	}
	refused := func(name string, r registryStep, code int, typ string) {
		t.Helper()
		if r.Accepted != nil || r.Refused == nil || r.Refused.Code != code || r.Refused.Type != typ {
			t.Errorf("%s: %+v, want refused %d %s", name, r, code, typ)
		}
	}
	refused("alice asking for a model outside her team", a.call(alice.Key, "qwen2.5:7b"), 403, "team_model_access_denied")
	// A model the gateway does not serve is not the team's business: the module lets the call
	// through, and LiteLLM's router answers 404 model_not_found as it does for every client.
	if r := a.call(alice.Key, "no-such-model:1b"); r.Accepted == nil || r.Accepted["team_id"] != "students" {
		t.Errorf("alice asking for a model the gateway does not serve: %+v, want accepted (LiteLLM answers 404)", r)
	}
	if r := a.call(bob.Key, "qwen2.5:7b"); r.Accepted == nil || r.Accepted["team_id"] != "staff" {
		t.Errorf("bob (staff) asking for qwen2.5:7b: %+v, want accepted", r)
	}
	before := a.call(alice.Key, "").Reads
	for name, key := range map[string]string{
		"the master key": master, "a key of another shape": "sk-AbCdEfGh", "empty": "",
	} {
		r := a.call(key, "llama3.1:8b")
		refused(name, r, 401, "auth_error")
		if r.Reads != before {
			t.Errorf("%s: read the registry (%d reads, want %d)", name, r.Reads, before)
		}
	}
	altered := alice.Key[:len(alice.Key)-1] + map[bool]string{true: "A", false: "B"}[!strings.HasSuffix(alice.Key, "A")]
	refused("alice's key with its last character changed", a.call(altered, "llama3.1:8b"), 401, "auth_error")
	unknown, _, _ := keyregistry.NewRandomKey()
	refused("a key the registry never issued", a.call(unknown, "llama3.1:8b"), 401, "auth_error")
	refused("an expired key", a.call(expired.Key, "llama3.1:8b"), 401, "auth_error")
	refused("a key of a team the stack no longer declares", a.call(ghost.Key, "llama3.1:8b"), 401, "auth_error")

	// Revoked: refused as soon as the worker's cached record is older than cacheSeconds.
	if err := reg.Revoke(ctx, alice.Record.KeyID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := a.call(alice.Key, "llama3.1:8b"); r.Accepted == nil {
		t.Errorf("alice right after revoke: %+v; the cached record (under %d s old) still admits her", r, KeyCacheSeconds)
	}
	a.step(map[string]any{"advance": KeyCacheSeconds})
	refused("alice after revoke and cacheSeconds", a.call(alice.Key, "llama3.1:8b"), 401, "auth_error")

	// The registry stops answering: bob's record is bridged until staleSeconds, then 503.
	a.call(bob.Key, "")
	b.cut(a)
	a.step(map[string]any{"advance": KeyCacheSeconds})
	if r := a.call(bob.Key, ""); r.Accepted == nil {
		t.Errorf("bob with the registry cut off, record %d s old: %+v, want accepted from the stale record", KeyCacheSeconds, r)
	}
	a.step(map[string]any{"advance": KeyStaleSeconds})
	refused("bob with the registry cut off past staleSeconds", a.call(bob.Key, ""), 503, "internal_server_error")
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
