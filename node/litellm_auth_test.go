package node

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// authStandIns are the two LiteLLM-side imports of LiteLLMAuthModule, reduced to what the
// module uses, so that the module's own code runs under a real Python without LiteLLM: a
// fastapi.Request, and litellm.proxy._types' roles, error types, ProxyException and
// UserAPIKeyAuth (keyword arguments kept as given).
var authStandIns = map[string]string{
	"fastapi/__init__.py":       "class Request:\n    def __init__(self, body=b''):\n        self._body = body\n\n    async def body(self):\n        return self._body\n",
	"litellm/__init__.py":       "",
	"litellm/proxy/__init__.py": "",
	"litellm/proxy/_types.py": `import enum


class LitellmUserRoles(str, enum.Enum):
    PROXY_ADMIN = "proxy_admin"
    INTERNAL_USER = "internal_user"


class ProxyErrorTypes(str, enum.Enum):
    auth_error = "auth_error"
    team_model_access_denied = "team_model_access_denied"
    internal_server_error = "internal_server_error"


class ProxyException(Exception):
    def __init__(self, message, type, param, code):
        super().__init__(message)
        self.message, self.type, self.param, self.code = message, type, param, code


class UserAPIKeyAuth:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
`,
	// The driver records every hmac.compare_digest call (the module looks the function up at
	// call time), then runs user_api_key_auth on each key of argv[1] (a JSON list; null is
	// a missing key) and prints one JSON result per key.
	"drive_auth.py": `import asyncio
import hmac
import json
import sys

calls = []
_real = hmac.compare_digest


def recording(a, b):
    calls.append([a.decode() if isinstance(a, bytes) else a, b.decode() if isinstance(b, bytes) else b])
    return _real(a, b)


hmac.compare_digest = recording

import llm_sandbox_auth as auth
from fastapi import Request
from litellm.proxy._types import ProxyException

results = []
for key in json.loads(sys.argv[1]):
    del calls[:]
    r = {"key": key}
    try:
        got = asyncio.run(auth.user_api_key_auth(Request(), key))
        r["accepted"] = {k: str(getattr(v, "value", v)) for k, v in got.kwargs.items()}
    except ProxyException as e:
        r["refused"] = {"code": e.code, "type": str(getattr(e.type, "value", e.type)), "param": e.param, "message": e.message}
    r["compared"] = list(calls)
    results.append(r)
print(json.dumps(results))
`,
}

// authResult is one key's outcome, as drive_auth.py prints it.
type authResult struct {
	Key      *string           `json:"key"`
	Accepted map[string]string `json:"accepted"`
	Refused  *struct {
		Code    int    `json:"code"`
		Type    string `json:"type"`
		Param   string `json:"param"`
		Message string `json:"message"`
	} `json:"refused"`
	Compared [][2]string `json:"compared"`
}

// authDir writes the module, the stand-ins and extra files (name → text) into a temporary
// directory, which the driver runs in.
func authDir(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{filepath.Base(LiteLLMAuthFile): LiteLLMAuthModule}
	for _, m := range []map[string]string{authStandIns, extra} {
		for name, text := range m {
			files[name] = text
		}
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
	return dir
}

// runAuthModule runs the rendered module under python3 with masterKey in its environment
// and returns the outcome for each key (nil for a missing one).
func runAuthModule(t *testing.T, masterKey string, keys []*string) []authResult {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	dir := authDir(t, nil)
	arg, _ := json.Marshal(keys)
	cmd := exec.Command(python, "-s", "-B", filepath.Join(dir, "drive_auth.py"), string(arg))
	cmd.Dir = dir
	// PYTHONPATH puts the module and the stand-ins ahead of anything installed, so an
	// installed LiteLLM or FastAPI is never what runs.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHON") && !strings.HasPrefix(kv, MasterKeyVar+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PYTHONPATH="+dir, MasterKeyVar+"="+masterKey)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("python3 drive_auth.py: %v\n%s", err, stderr)
	}
	var results []authResult
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(keys) {
		t.Fatalf("drive_auth.py printed %q (%v), want %d results", out, err, len(keys))
	}
	return results
}

func str(s string) *string { return &s }

// TestAuthModuleAcceptsOnlyTheMasterKey runs the rendered custom-auth module with a real
// Python: the master key, bare or as a Bearer token, is accepted as the proxy admin; anything
// else, a key one character off included, is refused with 401; and every comparison goes
// through hmac.compare_digest, against the master key.
func TestAuthModuleAcceptsOnlyTheMasterKey(t *testing.T) {
	const master = "sk-llm-sandbox-test-0123456789abcdefghijklmnopqrstuv"
	oneOff := master[:len(master)-1] + "w"
	accept := []*string{str(master), str("Bearer " + master), str("bearer " + master), str("BEARER  " + master + " "), str("  " + master + "\n")}
	refuse := []*string{
		str(oneOff), str("Bearer " + oneOff), str(master + "x"), str(master[:len(master)-1]), str(strings.ToUpper(master)),
		str("sk-wrong"), str(""), nil, str("Bearer "), str("Bearer"), str("Basic " + master), str("Bearer Bearer " + master),
	}
	results := runAuthModule(t, master, append(append([]*string{}, accept...), refuse...))
	for i, r := range results {
		name := "missing key"
		if r.Key != nil {
			name = "key " + strconvQuote(*r.Key)
		}
		if i < len(accept) {
			if r.Accepted == nil {
				t.Errorf("%s: refused (%+v), want accepted", name, r.Refused)
				continue
			}
			if r.Accepted["api_key"] != master || r.Accepted["user_role"] != "proxy_admin" {
				t.Errorf("%s: accepted as %v, want api_key the master key and user_role proxy_admin", name, r.Accepted)
			}
		} else {
			if r.Accepted != nil {
				t.Errorf("%s: accepted as %v, want refused", name, r.Accepted)
				continue
			}
			if r.Refused == nil || r.Refused.Code != 401 || r.Refused.Type != "auth_error" || r.Refused.Param != "api_key" {
				t.Errorf("%s: refused with %+v, want code 401, type auth_error, param api_key", name, r.Refused)
			}
		}
		// The key is compared, in constant time, with the master key, once.
		if len(r.Compared) != 1 || r.Compared[0][1] != master {
			t.Errorf("%s: hmac.compare_digest calls %q, want one, against the master key", name, r.Compared)
		}
	}
}

// With no master key in its environment the module refuses every key, the empty one included,
// rather than compare with "".
func TestAuthModuleWithoutAMasterKeyRefusesAll(t *testing.T) {
	for _, r := range runAuthModule(t, "", []*string{str(""), nil, str("Bearer "), str("sk-anything")}) {
		if r.Accepted != nil || r.Refused == nil || r.Refused.Code != 401 {
			t.Errorf("key %v with no master key: accepted %v, refused %+v; want 401", r.Key, r.Accepted, r.Refused)
		}
	}
}

func strconvQuote(s string) string { q, _ := json.Marshal(s); return string(q) }
