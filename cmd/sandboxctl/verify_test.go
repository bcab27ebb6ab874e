package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// standInPulumi puts a stand-in for the Pulumi CLI first on PATH: a script that records its
// arguments and answers `pulumi stack output` with outputs (JSON) and exit code exit. It
// stands in because no stack is deployed here; what it prints is the shape the real CLI prints
// for the program's exports. It returns the file its arguments are recorded in.
func standInPulumi(t *testing.T, outputs map[string]any, stderr string, exit int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "stand-in-pulumi-cli")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "args")
	out, err := json.Marshal(outputs)
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n" +
		"echo \"$(pwd)|$*\" >> '" + record + "'\n" +
		"cat <<'EOF'\n" + string(out) + "\nEOF\n" +
		"echo '" + stderr + "' >&2\n" +
		"exit " + string(rune('0'+exit)) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "pulumi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return record
}

func TestEndpointUsageErrors(t *testing.T) {
	t.Setenv(apiKeyEnv, "") // the cases without --key have no key
	root := projectRoot(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"verify: no endpoint", []string{"verify"}, "want STACK, or --url with the key in SANDBOX_API_KEY (or --key)"},
		{"verify: url without key", []string{"verify", "--url", "http://127.0.0.1:1"}, "want STACK, or --url with the key in SANDBOX_API_KEY (or --key)"},
		{"verify: stack and url", []string{"verify", "chemistry", "--url", "http://127.0.0.1:1"}, "give STACK or --url (with --key or SANDBOX_API_KEY), not both"},
		{"verify: two stacks", []string{"verify", "chemistry", "physics"}, "want at most one STACK (got 2: chemistry physics)"},
		{"verify: not http", []string{"verify", "--url", "ftp://x", "--key", "k"}, "--url must start with http:// or https://"},
		{"verify: format", []string{"verify", "--url", "http://x", "--key", "k", "--format", "yaml"}, "--format must be text or json"},
		{"verify: timeout", []string{"verify", "--url", "http://x", "--key", "k", "--timeout", "0s"}, "--timeout must be positive"},
		{"verify: negative wait", []string{"verify", "--url", "http://x", "--key", "k", "--wait", "-1s"}, "--wait must be 0 or more"},
		{"verify: unknown flag", []string{"verify", "--users", "3"}, "flag provided but not defined: -users"},
		{"loadtest: no users", []string{"loadtest", "--url", "http://x", "--key", "k"}, "--users must be at least 1 (got 0)"},
		{"loadtest: duration and requests", []string{"loadtest", "--url", "http://x", "--key", "k", "--users", "2", "--duration", "5s", "--requests", "9"}, "give --duration or --requests, not both"},
		{"loadtest: no endpoint", []string{"loadtest", "--users", "2"}, "want STACK, or --url with the key in SANDBOX_API_KEY (or --key)"},
		{"loadtest: max tokens", []string{"loadtest", "--url", "http://x", "--key", "k", "--users", "2", "--max-tokens", "0"}, "--max-tokens must be at least 1"},
		{"loadtest: format", []string{"loadtest", "--url", "http://x", "--key", "k", "--users", "2", "--format", "csv"}, "--format must be text or json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := sandboxctl(t, root, c.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr %q, want it to say %q", errOut, c.want)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

func TestEndpointCommandsHelp(t *testing.T) {
	for cmd, want := range map[string][]string{
		"verify":   {"Usage: sandboxctl [--project DIR] verify STACK | --url URL [--key KEY]", "masterKeySecretArn", "Exit 0 every check passed, 1 a check failed, 2 usage"},
		"loadtest": {"Usage: sandboxctl [--project DIR] loadtest STACK | --url URL [--key KEY] --users N", "the median user (p50)", "--target-tokens-per-user N", "Exit 0 verdict met, 1 not met"},
	} {
		code, out, _ := sandboxctl(t, projectRoot(t), cmd, "--help")
		if code != exitOK {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help does not say %q:\n%s", cmd, w, out)
			}
		}
	}
	_, out, _ := sandboxctl(t, projectRoot(t), "--help")
	for _, w := range []string{"  verify STACK ", "  loadtest STACK "} {
		if !strings.Contains(out, w) {
			t.Errorf("sandboxctl --help does not list %q", w)
		}
	}
}

func TestStackWithoutThePulumiCLI(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no pulumi anywhere on it
	for _, cmd := range [][]string{{"verify", "chemistry"}, {"loadtest", "chemistry", "--users", "1"}} {
		code, out, errOut := sandboxctl(t, projectRoot(t), cmd...)
		want := "sandboxctl " + cmd[0] + ": the pulumi CLI is not installed (no pulumi on PATH): install it to read stack chemistry's outputs, or pass --url (the key in SANDBOX_API_KEY or --key) instead of STACK\n"
		if code != exitUsage || errOut != want || out != "" {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", cmd, code, errOut, want)
		}
	}
}

func TestStackOutputsMissingOrFailing(t *testing.T) {
	root := projectRoot(t)
	t.Run("not deployed", func(t *testing.T) {
		record := standInPulumi(t, map[string]any{"department": "chemistry", "region": "ca-central-1"}, "", 0)
		code, _, errOut := sandboxctl(t, filepath.Join(root, "config"), "verify", "chemistry")
		if code != exitUsage || !strings.Contains(errOut, "stack chemistry has no endpointUrl or masterKeySecretArn output (outputs: department, region)") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
		// Run from a subfolder: the CLI runs in the project directory, with exactly these arguments.
		args, err := os.ReadFile(record)
		if err != nil || string(args) != root+"|stack output --json -s chemistry\n" {
			t.Errorf("the CLI was run as %q (%v), want %q", args, err, root+"|stack output --json -s chemistry\n")
		}
	})
	t.Run("CLI fails", func(t *testing.T) {
		standInPulumi(t, nil, "error: no stack named \"nosuch\" found", 1)
		code, _, errOut := sandboxctl(t, root, "verify", "nosuch")
		if code != exitUsage || !strings.Contains(errOut, "pulumi stack output --json -s nosuch: exit status 1\nerror: no stack named \"nosuch\" found") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("not a secret ARN", func(t *testing.T) {
		standInPulumi(t, map[string]any{"endpointUrl": "https://llm.example.org", "masterKeySecretArn": "sk-oops"}, "", 0)
		code, _, errOut := sandboxctl(t, root, "loadtest", "chemistry", "--users", "1")
		if code != exitUsage || !strings.Contains(errOut, `masterKeySecretArn "sk-oops" is not a Secrets Manager secret ARN`) {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

// With STACK and a team key in SANDBOX_API_KEY, the key is that one, never the master key
// (deployed gateways refuse it): no masterKeySecretArn output is needed.
func TestStackWithATeamKey(t *testing.T) {
	const teamKey = "sk-lsb-0123456789abcdef_team-key-from-the-environment"
	t.Setenv(apiKeyEnv, teamKey)
	srv, seen := keyRecorder(t)
	standInPulumi(t, map[string]any{"endpointUrl": srv.URL}, "", 0)
	code, out, errOut := sandboxctl(t, projectRoot(t), "verify", "chemistry", "--model", "m")
	if code != exitInvalid || !strings.Contains(errOut, "(from stack chemistry (endpointUrl, key from "+apiKeyEnv+"))") {
		t.Errorf("exit %d (want %d, the stand-in answers no completion), stderr:\n%s", code, exitInvalid, errOut)
	}
	// Besides the team key, only the deliberately wrong key of the 401 check is sent.
	if keys := seen(); !slices.Contains(keys, teamKey) || slices.ContainsFunc(keys, func(k string) bool {
		return k != teamKey && !strings.HasPrefix(k, "sk-verify-wrong-")
	}) {
		t.Errorf("requests carried the keys %q, want %q", keys, teamKey)
	}
	noKey(t, teamKey, out, errOut)
}

// docs/verify-loadtest.md shows verify's and loadtest's help as the commands print it.
func TestVerifyAndLoadtestHelpAreDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/verify-loadtest.md", "verify", "loadtest")
}

// keyRecorder is an endpoint that records the API key of each request and lists one model; it
// answers nothing else, so the checks after the listing fail.
func keyRecorder(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		mu.Unlock()
		if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
			_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"m","object":"model"}]}`))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(keys)
	}
}

// With --url and no --key, the key comes from SANDBOX_API_KEY; --key wins over it; neither is
// ever printed.
func TestAPIKeyFromTheEnvironment(t *testing.T) {
	const envKey, flagKey = "sk-from-the-environment-0123", "sk-from-the-flag-4567"
	for _, cmd := range [][]string{{"verify", "--model", "m"}, {"loadtest", "--model", "m", "--users", "1", "--requests", "1"}} {
		t.Run(cmd[0], func(t *testing.T) {
			t.Setenv(apiKeyEnv, envKey)
			srv, seen := keyRecorder(t)
			code, out, errOut := sandboxctl(t, projectRoot(t), append(cmd, "--url", srv.URL)...)
			if code != exitInvalid || !strings.Contains(errOut, "(from --url and "+apiKeyEnv+")") {
				t.Errorf("key from %s: exit %d (want %d, the stand-in answers no completion), stderr:\n%s", apiKeyEnv, code, exitInvalid, errOut)
			}
			if keys := seen(); len(keys) == 0 || !slices.Contains(keys, envKey) {
				t.Errorf("requests carried the keys %q, want %q from %s", keys, envKey, apiKeyEnv)
			}
			noKey(t, envKey, out, errOut)

			srv, seen = keyRecorder(t)
			_, out, errOut = sandboxctl(t, projectRoot(t), append(cmd, "--url", srv.URL, "--key", flagKey)...)
			if keys := seen(); len(keys) == 0 || !slices.Contains(keys, flagKey) || slices.Contains(keys, envKey) ||
				!strings.Contains(errOut, "(from --url and --key)") {
				t.Errorf("with --key: requests carried %q, want %q and never %q; stderr:\n%s", keys, flagKey, envKey, errOut)
			}
			noKey(t, flagKey, out, errOut)

			// Without either, it says where the key may come from.
			t.Setenv(apiKeyEnv, "")
			code, _, errOut = sandboxctl(t, projectRoot(t), append(cmd, "--url", srv.URL)...)
			if code != exitUsage || !strings.Contains(errOut, "want STACK, or --url with the key in "+apiKeyEnv+" (or --key)") {
				t.Errorf("no key: exit %d (want %d), stderr:\n%s", code, exitUsage, errOut)
			}
		})
	}
}
