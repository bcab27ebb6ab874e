package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/node/awstest"
	"github.com/llm-sandbox/llm-sandbox/node/litellmtest"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

const (
	testSecretArn = "arn:aws:secretsmanager:ca-central-1:123456789012:secret:llm-sandbox/chemistry/litellm-master-key-AbCdEf"
	// testMasterKey has the KeyStore's shape: sk- and 48 characters of [A-Za-z0-9].
	testMasterKey = "sk-Zq7Xw2Lr9Vb4Nc1Md8Kf3Hj6Gt5Ps0Ya2Ue7Wi4Ro9TyQx"
)

// liteEnv is one litellm-role agent under test: a fake runner standing in for python3, pip
// and `litellm --version`; a fake Secrets Manager reached by the real SDK client through
// AWS_ENDPOINT_URL_SECRETS_MANAGER; an httptest server standing in for LiteLLM's health
// endpoint (systemd mode) and a fake lifecycle.
type liteEnv struct {
	agentEnv
	sm    *awstest.SecretsManager
	files *fileServer
	// health is the status GET /health/liveliness answers.
	health atomic.Int32
	// version is what the venv's litellm reports.
	version string
	// venvFailures makes the next python3 -m venv calls fail as Ubuntu's does without
	// python3-venv (ensurepip missing); python3 -m venv --without-pip needs no ensurepip.
	venvFailures int
	// pip answers `pip install`, run as `python -m pip` or from a pip wheel; default: success,
	// marking the venv installed.
	pip func(args []string) ([]byte, error)
	// script is the venv's bin/litellm; default: a script that cannot run.
	script string
	// lock replaces the embedded lock when set (a wheelhouse of stand-in wheels needs a lock
	// with the stand-in pip wheel's hash).
	lock string
}

func newLiteEnv(t *testing.T) *liteEnv {
	t.Helper()
	e := &liteEnv{agentEnv: newAgentEnv(t), version: versions.LiteLLM.Version}
	e.health.Store(http.StatusOK)
	_, e.sm = awstest.Serve(t, &awstest.IMDS{})
	e.sm.Put(testSecretArn, testMasterKey)
	litellm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != LiteLLMHealthPath {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(e.health.Load()))
		fmt.Fprint(w, `"I'm alive!"`)
	}))
	t.Cleanup(litellm.Close)
	_, portText, _ := net.SplitHostPort(litellm.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)
	e.files = newFileServer(t, map[string][]byte{})
	e.cfg = &Config{
		Role: RoleLiteLLM, Department: "chemistry", Pool: "gateway", Region: "ca-central-1",
		Lifecycle: Lifecycle{AutoScalingGroup: "chemistry-gateway", Hook: "llm-sandbox-launch"},
		LiteLLM: &LiteLLMConfig{
			Port: port, Workers: 2, MasterKeySecretArn: testSecretArn,
			Models: []LiteLLMModel{
				{Name: "llama3.1:8b", APIBase: "http://127.0.0.1:21234"},
				{Name: "phi3:mini", APIBase: "http://127.0.0.1:21234"},
			},
			RequestTimeoutSeconds: 3600, KeepAliveSeconds: 960, NumRetries: 1,
		},
	}
	e.script = "#!/bin/sh\necho 'fake litellm cannot run here' >&2\nexit 1\n"
	e.pip = func(args []string) ([]byte, error) {
		if err := os.WriteFile(filepath.Join(e.root, LiteLLMVenv, "installed"), nil, 0o644); err != nil {
			return nil, err
		}
		return []byte("Successfully installed litellm-" + versions.LiteLLM.Version + "\n"), nil
	}
	e.runner = &fakeRunner{handlers: map[string]func([]string) ([]byte, error){
		"python3": func(args []string) ([]byte, error) {
			switch {
			case len(args) == 3 && args[0] == "-m" && args[1] == "venv":
				if e.venvFailures > 0 {
					e.venvFailures--
					// As ExecRunner reports it: the command, the status, the output's tail.
					out := "The virtual environment was not created successfully because ensurepip is not\navailable."
					return []byte(out), errors.New("python3 -m venv " + args[2] + ": exit status 1" + outputTail([]byte(out)))
				}
				return nil, e.makeVenv(args[2], true)
			case len(args) == 4 && args[0] == "-m" && args[1] == "venv" && args[2] == "--without-pip":
				return nil, e.makeVenv(args[3], false)
			}
			var pip []string
			switch {
			case len(args) > 2 && args[0] == "-m" && args[1] == "pip":
				// Only a venv made with pip has it.
				if _, err := os.Stat(filepath.Join(e.root, LiteLLMVenv, "fake-pip")); err != nil {
					out := "No module named pip"
					return []byte(out), errors.New("python3 -m pip: exit status 1" + outputTail([]byte(out)))
				}
				pip = args[2:]
			case len(args) > 1 && strings.HasSuffix(args[0], ".whl/pip"):
				// A pip wheel run in place: the wheel must be there.
				if _, err := os.Stat(filepath.Dir(args[0])); err != nil {
					return nil, fmt.Errorf("python3 %s: %v", args[0], err)
				}
				pip = args[1:]
			}
			switch {
			case len(pip) > 1 && pip[0] == "install":
				return e.pip(args)
			case len(pip) == 1 && pip[0] == "check":
				return []byte("No broken requirements found.\n"), nil
			}
			return nil, fmt.Errorf("python3 %q: unexpected in this test", args)
		},
		// `env VAR=... <venv>/bin/litellm --version`: reports only once pip has installed.
		"env": func(args []string) ([]byte, error) {
			if len(args) < 2 || args[len(args)-1] != "--version" || args[len(args)-2] != filepath.Join(e.root, LiteLLMBinary) {
				return nil, fmt.Errorf("env %q: unexpected in this test", args)
			}
			if _, err := os.Stat(filepath.Join(e.root, LiteLLMVenv, "installed")); err != nil {
				return []byte("ModuleNotFoundError: No module named 'litellm'"), errors.New("exit status 1")
			}
			return []byte("\nLiteLLM: Current Version = " + e.version + "\n"), nil
		},
	}}
	return e
}

// makeVenv lays out what `python3 -m venv` makes that the agent uses: bin/python3, a marker
// standing in for pip when the venv has it, and, standing in for what pip installs, bin/litellm.
func (e *liteEnv) makeVenv(dir string, withPip bool) error {
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bin, "python3"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		return err
	}
	if withPip {
		if err := os.WriteFile(filepath.Join(dir, "fake-pip"), nil, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(bin, "litellm"), []byte(e.script), 0o755)
}

// agent builds the agent as agentEnv does, with Options.LiteLLMLock e.lock when set.
func (e *liteEnv) agent(mutate ...func(*Options)) *Agent {
	e.t.Helper()
	if e.lock != "" {
		mutate = append(mutate, func(o *Options) { o.LiteLLMLock = []byte(e.lock) })
	}
	return e.agentEnv.agent(mutate...)
}

func (e *liteEnv) bootstrap(mutate ...func(*Options)) error {
	e.t.Helper()
	return e.agent(mutate...).Bootstrap(context.Background())
}

// detachedBootstrap bootstraps with --no-systemd, as agentEnv's does, with e.lock.
func (e *liteEnv) detachedBootstrap() error {
	return e.bootstrap(detachedOptions)
}

// keyContained asserts that the master key is in the environment file and nowhere else: no log
// line, no other file under the root.
func (e *liteEnv) keyContained(extraLogs ...string) {
	e.t.Helper()
	for _, l := range append([]string{e.log.String()}, extraLogs...) {
		if strings.Contains(l, testMasterKey) || strings.Contains(l, strings.TrimPrefix(testMasterKey, "sk-")) {
			e.t.Errorf("the master key is in a log:\n%s", l)
		}
	}
	envFile := filepath.Join(e.root, LiteLLMEnvFile)
	err := filepath.WalkDir(e.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || path == envFile {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(strings.TrimPrefix(testMasterKey, "sk-"))) {
			e.t.Errorf("the master key is in %s", path)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// pipInstalls are the pip install commands run, as `python -m pip` or from a pip wheel.
func (e *liteEnv) pipInstalls() []string {
	var out []string
	for _, c := range e.runner.matching(filepath.Join(e.root, LiteLLMPython) + " ") {
		if strings.Contains(c, " -m pip install ") || strings.Contains(c, ".whl/pip install ") {
			out = append(out, c)
		}
	}
	return out
}

func TestLiteLLMBootstrapSuccess(t *testing.T) {
	e := newLiteEnv(t)
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	wantResults(t, e.lc, ResultContinue)

	var want []string
	for _, s := range []string{StepInstall, StepUser, StepSecret, StepConfigure, StepStart, StepLifecycle} {
		want = append(want, s+" start", s+" ok")
	}
	if got := stepLines(e.log.String()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("step log = %v\nwant %v", got, want)
	}

	venv := filepath.Join(e.root, LiteLLMVenv)
	python := filepath.Join(e.root, LiteLLMPython)
	reqFile := filepath.Join(e.root, LiteLLMRequirementsFile)
	version := "env"
	for _, v := range LiteLLMEnv() {
		version += " " + v.Name + "=" + v.Value
	}
	version += " " + filepath.Join(e.root, LiteLLMBinary) + " --version"
	wantCmds := []string{
		"python3 -m venv " + venv,
		python + " -m pip install --require-hashes --no-deps --only-binary :all: --no-cache-dir --no-input --disable-pip-version-check --progress-bar off -r " + reqFile,
		python + " -m pip check",
		version,
		"systemctl daemon-reload",
		"systemctl enable litellm.service",
		"systemctl restart litellm.service",
	}
	if got := e.runner.commands(); fmt.Sprint(got) != fmt.Sprint(wantCmds) {
		t.Errorf("commands =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantCmds, "\n"))
	}
	if !strings.Contains(version, "LITELLM_LOCAL_MODEL_COST_MAP=True") {
		t.Errorf("the version check may fetch the cost map: %s", version)
	}

	// The files, their modes and contents.
	wantConfig, _ := RenderLiteLLMConfig(e.cfg.LiteLLM)
	wantUnit, _ := RenderLiteLLMUnit(e.cfg, DefaultLiteLLMUnitPaths())
	for file, want := range map[string]struct {
		mode os.FileMode
		data []byte
	}{
		LiteLLMConfigFile:       {0o644, wantConfig},
		LiteLLMUnitFile:         {0o644, wantUnit},
		LiteLLMRequirementsFile: {0o644, []byte(versions.LiteLLMRequirements)},
		LiteLLMEnvFile:          {0o600, nil},
	} {
		path := filepath.Join(e.root, file)
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want.mode {
			t.Errorf("%s: %v, %v; want mode %o", file, fi, err, want.mode)
			continue
		}
		if data, _ := os.ReadFile(path); want.data != nil && !bytes.Equal(data, want.data) {
			t.Errorf("%s does not hold the render", file)
		}
	}
	env, err := readEnvFile(filepath.Join(e.root, LiteLLMEnvFile))
	if err != nil || fmt.Sprint(env) != "["+MasterKeyVar+"="+testMasterKey+"]" {
		t.Errorf("%s holds %d variable(s) (%v), want exactly %s=<the key>", LiteLLMEnvFile, len(env), err, MasterKeyVar)
	}
	if calls := e.sm.Calls(); fmt.Sprint(calls) != "["+testSecretArn+"]" {
		t.Errorf("GetSecretValue calls = %v, want one for %s", calls, testSecretArn)
	}
	e.keyContained()
	if !strings.Contains(e.log.String(), "step user: ok: skipped: no system user in --root mode") {
		t.Errorf("log lacks the skipped user step:\n%s", e.log)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.root, CacheDir)); len(entries) != 0 {
		t.Errorf("downloads left behind in %s: %v", CacheDir, entries)
	}
}

func TestLiteLLMRerunIsIdempotent(t *testing.T) {
	e := newLiteEnv(t)
	if err := e.bootstrap(); err != nil {
		t.Fatalf("first Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	e.runner.cmds = nil
	e.lc.errs = []error{fmt.Errorf("CompleteLifecycleAction: %w", ErrNoLifecycleAction)}
	if err := e.bootstrap(); err != nil {
		t.Fatalf("second Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	got := e.runner.commands()
	if len(got) != 3 || !strings.HasPrefix(got[0], "env ") || got[1] != "systemctl daemon-reload" || got[2] != "systemctl enable --now litellm.service" {
		t.Errorf("re-run commands = %q, want only the version check and an enable --now (no pip, no restart)", got)
	}
	for _, want := range []string{
		"step install: ok: skipped: litellm " + versions.LiteLLM.Version + " already installed from this lock",
		"step secret: ok: master key unchanged",
		"step configure: ok: config and unit unchanged",
		"step lifecycle: ok: no active lifecycle action",
	} {
		if !strings.Contains(e.log.String(), want) {
			t.Errorf("re-run log lacks %q:\n%s", want, e.log)
		}
	}
	wantResults(t, e.lc, ResultContinue, ResultContinue)

	// A rotated key is written and LiteLLM restarted to read it.
	e.runner.cmds = nil
	rotated := "sk-Rotated0123456789abcdefghijklmnopqrstuvwxyzABCD"
	e.sm.Put(testSecretArn, rotated)
	if err := e.bootstrap(); err != nil {
		t.Fatalf("rotated Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if got := e.runner.matching("systemctl"); fmt.Sprint(got) != "[systemctl daemon-reload systemctl enable litellm.service systemctl restart litellm.service]" {
		t.Errorf("systemctl after a rotation = %q, want a restart", got)
	}
	if env, _ := readEnvFile(filepath.Join(e.root, LiteLLMEnvFile)); fmt.Sprint(env) != "["+MasterKeyVar+"="+rotated+"]" {
		t.Errorf("the rotated key was not written")
	}
	if strings.Contains(e.log.String(), rotated) {
		t.Errorf("the rotated key is in the log")
	}
}

// A lock installed by an interrupted run (no marker) or a different lock is installed again.
func TestLiteLLMReinstallsWithoutTheLockMarker(t *testing.T) {
	e := newLiteEnv(t)
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	marker := filepath.Join(e.root, LiteLLMInstalledLock)
	if err := os.WriteFile(marker, []byte(strings.Repeat("0", 64)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.runner.cmds = nil
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if n := len(e.pipInstalls()); n != 1 {
		t.Errorf("pip install ran %d times, want 1 (the marker names another lock)", n)
	}
	if got := e.runner.matching("systemctl restart"); len(got) != 1 {
		t.Errorf("a new install did not restart LiteLLM: %q", e.runner.commands())
	}
}

func TestLiteLLMSecretMissingAbandons(t *testing.T) {
	e := newLiteEnv(t)
	e.sm = &awstest.SecretsManager{} // holds nothing
	sm := httptest.NewServer(e.sm)
	defer sm.Close()
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", sm.URL)
	err := e.bootstrap()
	wantStepFailure(t, err, StepSecret, "read the master key", "ResourceNotFoundException", testSecretArn)
	if n := len(e.sm.Calls()); n != 1 {
		t.Errorf("GetSecretValue called %d times, want 1 (a missing secret stays missing)", n)
	}
	wantResults(t, e.lc, ResultAbandon)
	if _, err := os.Stat(filepath.Join(e.root, LiteLLMEnvFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an environment file was written without a key: %v", err)
	}
	if got := e.runner.matching("systemctl"); len(got) != 0 {
		t.Errorf("LiteLLM started without its key: %q", got)
	}
}

func TestLiteLLMSecretNotSkAbandons(t *testing.T) {
	for name, value := range map[string]string{
		"no sk- prefix":   "Zq7Xw2Lr9Vb4Nc1Md8Kf3Hj6Gt5Ps0Ya2Ue7Wi4Ro9TyQx",
		"a JSON document": `{"master_key": "sk-Zq7Xw2Lr9Vb4Nc1Md8Kf3Hj6Gt5Ps0Ya2Ue7Wi4Ro9TyQx"}`,
		"a newline":       "sk-Zq7Xw2Lr9Vb4Nc1Md8Kf3Hj6\nGt5Ps0Ya2Ue7Wi4Ro9TyQx",
		"only sk-":        "sk-",
	} {
		t.Run(name, func(t *testing.T) {
			e := newLiteEnv(t)
			e.sm.Put(testSecretArn, value)
			err := e.bootstrap()
			wantStepFailure(t, err, StepSecret, "the master key in "+testSecretArn)
			if strings.Contains(err.Error(), "Zq7Xw2") || strings.Contains(e.log.String(), "Zq7Xw2") {
				t.Errorf("the secret's value reached the error or the log: %v", err)
			}
			if n := len(e.sm.Calls()); n != 1 {
				t.Errorf("GetSecretValue called %d times, want 1 (a bad value is not retried)", n)
			}
			wantResults(t, e.lc, ResultAbandon)
			if _, err := os.Stat(filepath.Join(e.root, LiteLLMEnvFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a bad key was written: %v", err)
			}
		})
	}
}

func TestLiteLLMSecretThrottlingIsRetried(t *testing.T) {
	e := newLiteEnv(t)
	e.sm.FailNext(testRetry.Attempts - 1)
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if n := len(e.sm.Calls()); n != testRetry.Attempts {
		t.Errorf("GetSecretValue called %d times, want %d", n, testRetry.Attempts)
	}
	if !strings.Contains(e.log.String(), "ThrottlingException") {
		t.Errorf("the retried throttling is not logged:\n%s", e.log)
	}
	wantResults(t, e.lc, ResultContinue)
	e.keyContained()
}

// lockedPip is the pip version the embedded lock pins.
func lockedPip(t *testing.T) string {
	t.Helper()
	m := lockPipPin.FindStringSubmatch(versions.LiteLLMRequirements)
	if m == nil {
		t.Fatal("the embedded lock pins no pip")
	}
	return m[1]
}

// standInPipWheel is the body of the stand-in pip wheel of the test wheelhouses.
const standInPipWheel = "not really pip"

// lockWithPipHash is the embedded lock with the hashes of its pip pin replaced by sum.
func lockWithPipHash(t *testing.T, sum string) string {
	t.Helper()
	lock := lockPipPin.ReplaceAllString(versions.LiteLLMRequirements, "pip==${1} \\\n    --hash=sha256:"+sum)
	if lock == versions.LiteLLMRequirements || !strings.Contains(lock, sum) {
		t.Fatal("could not replace the lock's pip hashes")
	}
	return lock
}

// serveWheelhouse serves a .tar.zst of entries and points the config at it; sum "" is the
// archive's own SHA-256.
func (e *liteEnv) serveWheelhouse(sum string, entries []tarEntry) []byte {
	archive := tarZst(e.t, entries)
	e.files.mu.Lock()
	e.files.files["/litellm-wheelhouse.tar.zst"] = archive
	e.files.mu.Unlock()
	if sum == "" {
		sum = sha(archive)
	}
	e.cfg.LiteLLM.Wheelhouse = &Artifact{URL: e.files.URL + "/litellm-wheelhouse.tar.zst", SHA256: sum}
	return archive
}

// wheelhouse serves a .tar.zst of stand-in wheels, with a stand-in pip wheel of the lock's
// pip version, points the config at it and gives the role a lock that has the stand-in pip
// wheel's hash.
func (e *liteEnv) wheelhouse(sum string) []byte {
	e.lock = lockWithPipHash(e.t, sha([]byte(standInPipWheel)))
	return e.serveWheelhouse(sum, []tarEntry{
		{name: "litellm-" + versions.LiteLLM.Version + "-cp310-abi3-manylinux_2_28_x86_64.whl", body: "not really a wheel"},
		{name: "pip-" + lockedPip(e.t) + "-py3-none-any.whl", body: standInPipWheel},
		{name: "uvicorn-0.54.0-py3-none-any.whl", body: "not really a wheel either"},
	})
}

func readRecord(t *testing.T, file string) litellmtest.Record {
	t.Helper()
	var rec litellmtest.Record
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestLiteLLMWheelhouseInstallsWithoutAnIndex(t *testing.T) {
	e := newLiteEnv(t)
	e.wheelhouse("")
	var findLinks string
	installed := e.pip
	e.pip = func(args []string) ([]byte, error) {
		i := slices.Index(args, "--find-links")
		if i < 0 || !slices.Contains(args, "--no-index") {
			return nil, fmt.Errorf("pip install without --no-index --find-links: %q", args)
		}
		findLinks = args[i+1]
		if _, err := os.Stat(filepath.Join(findLinks, "uvicorn-0.54.0-py3-none-any.whl")); err != nil {
			return nil, fmt.Errorf("the wheelhouse is not extracted at pip time: %v", err)
		}
		return installed(args)
	}
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if !strings.HasPrefix(findLinks, filepath.Join(e.root, CacheDir)+"/") {
		t.Errorf("--find-links %s is not under %s", findLinks, CacheDir)
	}
	if _, err := os.Stat(findLinks); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the extracted wheelhouse was left behind: %v", err)
	}
	if n := e.files.hitsFor("/litellm-wheelhouse.tar.zst"); n != 1 {
		t.Errorf("wheelhouse requested %d times, want 1", n)
	}
	wantResults(t, e.lc, ResultContinue)

	// No package and no PyPI: the venv without pip (no ensurepip needed), pip run in place
	// from the wheelhouse's pip wheel by the venv's interpreter.
	venv := filepath.Join(e.root, LiteLLMVenv)
	python := filepath.Join(e.root, LiteLLMPython)
	reqFile := filepath.Join(e.root, LiteLLMRequirementsFile)
	pip := filepath.Join(findLinks, "pip-"+lockedPip(t)+"-py3-none-any.whl", "pip")
	want := []string{
		"python3 -m venv --without-pip " + venv,
		python + " " + pip + " install --require-hashes --no-deps --only-binary :all: --no-cache-dir --no-input --disable-pip-version-check --progress-bar off --no-index --find-links " + findLinks + " -r " + reqFile,
		python + " " + pip + " check",
	}
	got := e.runner.commands()
	if len(got) < len(want) || fmt.Sprint(got[:len(want)]) != fmt.Sprint(want) {
		t.Errorf("commands =\n%s\nwant them to start with\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range got {
		if strings.HasPrefix(c, "apt-get") || c == "python3 -m venv "+venv || strings.Contains(c, " -m pip ") {
			t.Errorf("with a wheelhouse the agent ran %q", c)
		}
	}
	if data, _ := os.ReadFile(reqFile); string(data) != e.lock {
		t.Errorf("%s does not hold the role's lock", LiteLLMRequirementsFile)
	}
	if data, _ := os.ReadFile(filepath.Join(e.root, LiteLLMInstalledLock)); string(data) != sha([]byte(e.lock))+"\n" {
		t.Errorf("%s = %q, want the SHA-256 of the installed lock", LiteLLMInstalledLock, data)
	}
}

// On a node whose python3 lacks ensurepip (Ubuntu's image without python3-venv), an install
// from a wheelhouse makes the venv without pip and never calls apt-get; when even that fails,
// the step fails at once, still without apt-get.
func TestLiteLLMWheelhouseVenvNeedsNoPackageOnANode(t *testing.T) {
	e := newLiteEnv(t)
	e.venvFailures = 1
	a := e.agent(func(o *Options) { o.Root = "/" }).role.(*liteLLMRole)
	venv := filepath.Join(t.TempDir(), "venv")
	if err := a.createVenv(context.Background(), venv, true); err != nil {
		t.Fatal(err)
	}
	if got := e.runner.commands(); fmt.Sprint(got) != fmt.Sprint([]string{"python3 -m venv --without-pip " + venv}) {
		t.Errorf("commands = %q, want only python3 -m venv --without-pip", got)
	}
	if _, err := os.Stat(filepath.Join(venv, "bin", "python3")); err != nil {
		t.Errorf("no venv: %v", err)
	}

	e.runner.cmds = nil
	e.runner.handlers["python3"] = func(args []string) ([]byte, error) {
		return nil, errors.New("python3 -m venv: exit status 1: Error: [Errno 28] No space left on device")
	}
	err := a.createVenv(context.Background(), venv, true)
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "--without-pip") || !strings.Contains(err.Error(), "No space left") {
		t.Errorf("createVenv = %v, want a permanent error naming --without-pip and the cause", err)
	}
	if got := e.runner.commands(); len(got) != 1 {
		t.Errorf("commands = %q, want the one failed venv (no apt-get, no retry)", got)
	}
}

// A wheelhouse without the pip wheel the lock pins fails before any venv is made.
func TestLiteLLMWheelhouseWithoutPipAbandons(t *testing.T) {
	e := newLiteEnv(t)
	e.serveWheelhouse("", []tarEntry{
		{name: "litellm-" + versions.LiteLLM.Version + "-cp310-abi3-manylinux_2_28_x86_64.whl", body: "not really a wheel"},
	})
	wantStepFailure(t, e.bootstrap(), StepInstall, e.cfg.LiteLLM.Wheelhouse.URL,
		"holds no pip-"+lockedPip(t)+"-py3-none-any.whl, the wheel of the pip=="+lockedPip(t)+" the lock pins")
	if got := e.runner.matching("python3"); len(got) != 0 {
		t.Errorf("python3 ran: %q", got)
	}
	if n := e.files.hitsFor("/litellm-wheelhouse.tar.zst"); n != 1 {
		t.Errorf("wheelhouse requested %d times, want 1 (a missing wheel stays missing)", n)
	}
	wantResults(t, e.lc, ResultAbandon)
}

// A pip wheel whose hash the lock lacks never runs: it is the pip that would check the others.
func TestLiteLLMWheelhousePipNotInTheLockAbandons(t *testing.T) {
	e := newLiteEnv(t)
	e.wheelhouse("")
	e.lock = "" // the embedded lock: the stand-in pip wheel matches none of its hashes
	wantStepFailure(t, e.bootstrap(), StepInstall, e.cfg.LiteLLM.Wheelhouse.URL,
		"pip-"+lockedPip(t)+"-py3-none-any.whl has SHA-256 "+sha([]byte(standInPipWheel)),
		"not one of the lock's hashes for pip=="+lockedPip(t))
	if got := e.runner.matching("python3"); len(got) != 0 {
		t.Errorf("python3 ran: %q", got)
	}
	if got := e.runner.matching(filepath.Join(e.root, LiteLLMPython)); len(got) != 0 {
		t.Errorf("pip ran: %q", got)
	}
	wantResults(t, e.lc, ResultAbandon)
}

// The embedded lock pins pip with the hash of every file PyPI publishes for it (the wheel and
// the sdist); lockedPipWheel finds it and wants the lock to have it.
func TestLockedPipWheel(t *testing.T) {
	m := lockPipPin.FindStringSubmatch(versions.LiteLLMRequirements)
	if m == nil {
		t.Fatal("the embedded lock pins no pip with hashes")
	}
	if hashes := lockHash.FindAllString(m[2], -1); len(hashes) != 2 {
		t.Errorf("the lock's pip==%s has %d hashes, want 2 (wheel and sdist)", m[1], len(hashes))
	}
	dir := t.TempDir()
	name := "pip-" + m[1] + "-py3-none-any.whl"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(standInPipWheel), 0o644); err != nil {
		t.Fatal(err)
	}
	lock := []byte(lockWithPipHash(t, sha([]byte(standInPipWheel))))
	if got, err := lockedPipWheel(dir, lock); err != nil || got != filepath.Join(dir, name) {
		t.Errorf("lockedPipWheel = %q, %v; want %s", got, err, filepath.Join(dir, name))
	}
	withoutPip := lockPipPin.ReplaceAll([]byte(versions.LiteLLMRequirements), nil)
	if _, err := lockedPipWheel(dir, withoutPip); err == nil || !strings.Contains(err.Error(), "pins no pip==") {
		t.Errorf("lockedPipWheel with a lock without pip = %v", err)
	}
}

func TestLiteLLMWheelhouseBadChecksumAbandonsWithoutRetry(t *testing.T) {
	e := newLiteEnv(t)
	wrong := strings.Repeat("ab", 32)
	archive := e.wheelhouse(wrong)
	err := e.bootstrap()
	wantStepFailure(t, err, StepInstall, "checksum mismatch", wrong, sha(archive))
	var ce *ChecksumError
	if !errors.As(err, &ce) {
		t.Errorf("error %v is not a ChecksumError", err)
	}
	if n := e.files.hitsFor("/litellm-wheelhouse.tar.zst"); n != 1 {
		t.Errorf("wheelhouse requested %d times, want 1 (a bad checksum is never retried)", n)
	}
	if n := len(e.pipInstalls()); n != 0 {
		t.Errorf("pip ran on an unverified wheelhouse")
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestLiteLLMPipFailureIsRetriedThenAbandons(t *testing.T) {
	e := newLiteEnv(t)
	e.pip = func([]string) ([]byte, error) {
		out := "WARNING: Retrying (Retry(total=0)) after connection broken: NewConnectionError('Failed to establish a new connection: [Errno 101] Network is unreachable')\nERROR: Could not find a version that satisfies the requirement aiohappyeyeballs==2.7.1"
		return []byte(out), errors.New("pip: exit status 1: " + out)
	}
	err := e.bootstrap()
	wantStepFailure(t, err, StepInstall, "pip install", "gave up after 3 attempts", "Network is unreachable")
	if n := len(e.pipInstalls()); n != testRetry.Attempts {
		t.Errorf("pip install ran %d times, want %d (PyPI may be briefly unreachable)", n, testRetry.Attempts)
	}
	if _, err := os.Stat(filepath.Join(e.root, LiteLLMInstalledLock)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed install was marked installed: %v", err)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestLiteLLMHashMismatchIsNotRetried(t *testing.T) {
	e := newLiteEnv(t)
	e.pip = func([]string) ([]byte, error) {
		out := "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated the package versions, please update the hashes. Otherwise, examine the package contents carefully; someone may have tampered with them.\n    uvicorn==0.54.0 from https://files.pythonhosted.org/...:\n        Expected sha256 1111\n             Got        2222\n"
		return []byte(out), errors.New("pip: exit status 1")
	}
	wantStepFailure(t, e.bootstrap(), StepInstall, "does not match the lock's hashes")
	if n := len(e.pipInstalls()); n != 1 {
		t.Errorf("pip install ran %d times, want 1", n)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestLiteLLMWheelhousePipFailureIsNotRetried(t *testing.T) {
	e := newLiteEnv(t)
	e.wheelhouse("")
	e.pip = func([]string) ([]byte, error) {
		return []byte("ERROR: Could not find a version that satisfies the requirement uvicorn==0.54.0"), errors.New("pip: exit status 1")
	}
	wantStepFailure(t, e.bootstrap(), StepInstall, "pip install")
	if n := len(e.pipInstalls()); n != 1 {
		t.Errorf("pip install from a wheelhouse ran %d times, want 1 (local files do not change)", n)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestLiteLLMInstalledVersionMustMatch(t *testing.T) {
	e := newLiteEnv(t)
	e.version = "1.84.1"
	wantStepFailure(t, e.bootstrap(), StepInstall, "reports version 1.84.1, the lock pins "+versions.LiteLLM.Version)
	wantResults(t, e.lc, ResultAbandon)
}

func TestLiteLLMNeverHealthyAbandons(t *testing.T) {
	e := newLiteEnv(t)
	e.health.Store(http.StatusServiceUnavailable)
	err := e.bootstrap(func(o *Options) { o.Timeouts[StepStart] = 300 * time.Millisecond })
	wantStepFailure(t, err, StepStart, "timed out after 300ms", "litellm never answered GET /health/liveliness with 200", "HTTP 503", "journalctl -u litellm")
	wantResults(t, e.lc, ResultAbandon)
}

func TestLiteLLMVenvInstallsPython3VenvOnANode(t *testing.T) {
	e := newLiteEnv(t)
	e.venvFailures = 1
	a := e.agent(func(o *Options) { o.Root = "/" }).role.(*liteLLMRole)
	venv := filepath.Join(t.TempDir(), "venv")
	if err := a.createVenv(context.Background(), venv, false); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"python3 -m venv " + venv,
		"apt-get -o DPkg::Lock::Timeout=120 install -y -q python3-venv",
		"python3 -m venv " + venv,
	}
	if got := e.runner.commands(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("commands = %q\nwant %q", got, want)
	}
	// A failed apt-get is retried after refreshing the package lists.
	e.runner.cmds = nil
	e.venvFailures = 1
	fails := 1
	e.runner.handlers["apt-get"] = func(args []string) ([]byte, error) {
		if slices.Contains(args, "install") && fails > 0 {
			fails--
			return nil, errors.New("apt-get: exit status 100: E: Unable to locate package python3-venv")
		}
		return nil, nil
	}
	if err := a.createVenv(context.Background(), venv, false); err != nil {
		t.Fatal(err)
	}
	if got := e.runner.matching("apt-get"); fmt.Sprint(got) != fmt.Sprint([]string{
		"apt-get -o DPkg::Lock::Timeout=120 install -y -q python3-venv",
		"apt-get -o DPkg::Lock::Timeout=120 update -q",
		"apt-get -o DPkg::Lock::Timeout=120 install -y -q python3-venv",
	}) {
		t.Errorf("apt-get commands = %q", got)
	}
}

func TestLiteLLMVenvInRootModeInstallsNoPackage(t *testing.T) {
	e := newLiteEnv(t)
	e.venvFailures = 1
	wantStepFailure(t, e.bootstrap(), StepInstall, "python3-venv", "ensurepip is not")
	if got := e.runner.matching("apt-get"); len(got) != 0 {
		t.Errorf("apt-get ran in --root mode: %q", got)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestLiteLLMUserStepCreatesSystemUser(t *testing.T) {
	for _, exists := range []bool{false, true} {
		e := newLiteEnv(t)
		e.runner.handlers["getent"] = func([]string) ([]byte, error) {
			if exists {
				return []byte("litellm:x:997:997::/nonexistent:/usr/sbin/nologin\n"), nil
			}
			return nil, errors.New("getent passwd litellm: exit status 2")
		}
		a := e.agent(func(o *Options) { o.Root = "/" }).role.(*liteLLMRole)
		if _, err := a.stepUser(context.Background(), &runState{}); err != nil {
			t.Fatal(err)
		}
		want := []string{"getent passwd litellm"}
		if !exists {
			want = append(want, "useradd --system --user-group --home-dir /nonexistent --shell /usr/sbin/nologin litellm")
		}
		if got := e.runner.commands(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("exists=%v: commands %q\nwant %q", exists, got, want)
		}
	}
}

func TestLiteLLMStepsAndTimeouts(t *testing.T) {
	e := newLiteEnv(t)
	var names []string
	for _, s := range e.agent(func(o *Options) { o.Timeouts = nil }).Steps() {
		names = append(names, s.Name)
		if s.Timeout != DefaultTimeouts()[s.Name] || s.Timeout <= 0 {
			t.Errorf("step %s timeout %s, want %s", s.Name, s.Timeout, DefaultTimeouts()[s.Name])
		}
	}
	if want := "[install user secret configure start lifecycle]"; fmt.Sprint(names) != want {
		t.Errorf("steps = %v, want %s", names, want)
	}
}

// detachedLiteLLM runs the litellm role with --no-systemd: the venv's bin/litellm runs this
// test binary as the litellmtest fake, which really listens on 127.0.0.1.
func detachedLiteLLM(t *testing.T, script string) (*liteEnv, string) {
	t.Helper()
	e := newLiteEnv(t)
	record := filepath.Join(t.TempDir(), "record.json")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if script == "" {
		script = "#!/bin/sh\nexport " + litellmtest.EnvExec + "=1 " + litellmtest.EnvVersion + "=" + versions.LiteLLM.Version +
			" " + litellmtest.EnvRecord + "='" + record + "'\nexec '" + exe + "' \"$@\"\n"
	}
	e.script = script
	e.cfg.LiteLLM.Port = freePort(t)
	e.stopDetachedAtCleanup(LiteLLMPidFile)
	return e, record
}

func TestNoSystemdRunsDetachedLiteLLM(t *testing.T) {
	e, record := detachedLiteLLM(t, "")
	if err := e.detachedBootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	wantResults(t, e.lc, ResultContinue)
	pid, ok := readPid(filepath.Join(e.root, LiteLLMPidFile))
	if !ok || !isOurProcess(pid, filepath.Join(e.root, LiteLLMConfigFile)) {
		t.Fatalf("pid file %s does not name a live session leader running our config (%d)", LiteLLMPidFile, pid)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(e.cfg.LiteLLM.Port)
	for key, want := range map[string]int{testMasterKey: http.StatusOK, "sk-wrong": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodGet, base+"/fake/auth", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /fake/auth with a key: %d, want %d (LiteLLM must get the key from the env file)", resp.StatusCode, want)
		}
	}
	rec := readRecord(t, record)
	wantArgs := liteLLMArgs(filepath.Join(e.root, LiteLLMConfigFile), "127.0.0.1", e.cfg.LiteLLM)
	if fmt.Sprint(rec.Args) != fmt.Sprint(wantArgs) {
		t.Errorf("litellm args = %q\nwant %q (loopback in --root mode)", rec.Args, wantArgs)
	}
	if rec.MasterKeySHA256 != litellmtest.KeySHA256(testMasterKey) {
		t.Errorf("litellm did not get the master key")
	}
	for _, v := range LiteLLMEnv() {
		if rec.Env[v.Name] != v.Value {
			t.Errorf("litellm's %s = %q, want %q", v.Name, rec.Env[v.Name], v.Value)
		}
	}
	logData, _ := os.ReadFile(filepath.Join(e.root, LiteLLMLogFile))
	if !strings.Contains(string(logData), "litellmtest: listening on 127.0.0.1:"+strconv.Itoa(e.cfg.LiteLLM.Port)) {
		t.Errorf("litellm's output is not in %s: %q", LiteLLMLogFile, logData)
	}
	e.keyContained(string(logData))

	// A re-run keeps the serving process; a changed config restarts it.
	if err := e.detachedBootstrap(); err != nil {
		t.Fatalf("re-run Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if again, _ := readPid(filepath.Join(e.root, LiteLLMPidFile)); again != pid {
		t.Errorf("re-run replaced litellm: pid %d, want %d kept", again, pid)
	}
	e.cfg.LiteLLM.Workers = 3
	if err := e.detachedBootstrap(); err != nil {
		t.Fatalf("changed Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if newPid, _ := readPid(filepath.Join(e.root, LiteLLMPidFile)); newPid == pid || processAlive(pid) {
		t.Errorf("changed config: pid %d -> %d, old alive %v; want a restart", pid, newPid, processAlive(pid))
	}
}

func TestNoSystemdLiteLLMCrashFailsFast(t *testing.T) {
	e, _ := detachedLiteLLM(t, "#!/bin/sh\necho 'ModuleNotFoundError: No module named async_timeout' >&2\nexit 1\n")
	start := time.Now()
	wantStepFailure(t, e.detachedBootstrap(), StepStart, "litellm exited before it answered", "exit status 1", LiteLLMLogFile)
	if time.Since(start) > 10*time.Second {
		t.Errorf("a crashed litellm took %s to notice", time.Since(start))
	}
	wantResults(t, e.lc, ResultAbandon)
}
