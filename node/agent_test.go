package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/node/ollamatest"
)

// stepLines returns the agent's "step <name>: start|ok|failed" lines, reduced to "name state".
func stepLines(log string) []string {
	re := regexp.MustCompile(`(?m)^step (\w+): (start|ok|failed)\b`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		out = append(out, m[1]+" "+m[2])
	}
	return out
}

func TestBootstrapSuccessOnGPUPool(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	wantResults(t, e.lc, ResultContinue)

	var want []string
	for _, s := range []string{StepGPU, StepInstall, StepUser, StepConfigure, StepStart, StepModels, StepPreload, StepResident, StepLifecycle} {
		want = append(want, s+" start", s+" ok")
	}
	if got := stepLines(e.log.String()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("step log = %v\nwant %v", got, want)
	}

	bin := filepath.Join(e.root, OllamaBinary)
	wantCmds := []string{
		"nvidia-smi --query-gpu=name,memory.total --format=csv,noheader",
		bin + " --version",
		"systemctl daemon-reload",
		"systemctl enable ollama.service",
		"systemctl restart ollama.service",
	}
	if got := e.runner.commands(); fmt.Sprint(got) != fmt.Sprint(wantCmds) {
		t.Errorf("commands = %q\nwant %q", got, wantCmds)
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("installed binary: %v, %v", fi, err)
	}
	if link, err := os.Readlink(filepath.Join(e.root, OllamaPrefix, "lib/ollama/libggml-base.so")); err != nil || link != "libggml-base.so.0.0.0" {
		t.Errorf("library symlink = %q, %v", link, err)
	}
	for _, f := range []string{OllamaEnvFile, OllamaUnitFile} {
		fi, err := os.Stat(filepath.Join(e.root, f))
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, %v; want mode 0644", f, fi, err)
		}
	}
	c := e.ollama.Counts()
	if c.Pulls != 1 || c.BlobUploads != 1 || c.Creates != 1 {
		t.Errorf("ollama calls = %+v, want 1 pull, 1 blob upload, 1 create", c)
	}
	if got := fmt.Sprint(e.ollama.Loaded()); got != "[llama3.1:8b tiny:latest]" {
		t.Errorf("loaded models = %s", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.root, CacheDir)); len(entries) != 0 {
		t.Errorf("downloads left behind in %s: %v", CacheDir, entries)
	}
	if !strings.Contains(e.log.String(), "step gpu: ok: 1 GPU(s): NVIDIA A10G, 23028 MiB") {
		t.Errorf("log does not name the GPU:\n%s", e.log)
	}
}

func TestRerunOnReadyNodeDownloadsAndPullsNothing(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	if err := e.bootstrap(); err != nil {
		t.Fatalf("first Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	first := e.ollama.Counts()
	releaseHits := e.files.hitsFor("/ollama-linux-amd64.tar.zst")
	ggufHits := e.files.hitsFor("/models/tiny.gguf")
	e.runner.cmds = nil
	// After a reboot there is no pending lifecycle action.
	e.lc.errs = []error{fmt.Errorf("CompleteLifecycleAction: %w", ErrNoLifecycleAction)}

	if err := e.bootstrap(); err != nil {
		t.Fatalf("second Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if n := e.files.hitsFor("/ollama-linux-amd64.tar.zst"); n != releaseHits {
		t.Errorf("release downloaded again: %d requests, want %d", n, releaseHits)
	}
	if n := e.files.hitsFor("/models/tiny.gguf"); n != ggufHits {
		t.Errorf("GGUF downloaded again: %d requests, want %d", n, ggufHits)
	}
	second := e.ollama.Counts()
	if second.Pulls != first.Pulls || second.Creates != first.Creates || second.BlobUploads != first.BlobUploads {
		t.Errorf("second run changed models: before %+v, after %+v", first, second)
	}
	// Nothing changed, so Ollama is not restarted.
	if got := e.runner.matching("systemctl"); fmt.Sprint(got) != "[systemctl daemon-reload systemctl enable --now ollama.service]" {
		t.Errorf("systemctl on re-run = %q", got)
	}
	wantResults(t, e.lc, ResultContinue, ResultContinue)
	if !strings.Contains(e.log.String(), "step install: ok: skipped: ollama "+testVersion+" already installed") ||
		!strings.Contains(e.log.String(), "step configure: ok: unit and environment unchanged") ||
		!strings.Contains(e.log.String(), "step lifecycle: ok: no active lifecycle action") {
		t.Errorf("re-run log does not show the skips:\n%s", e.log)
	}
}

func TestBadChecksumFailsWithoutRetryAndAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	wrong := strings.Repeat("ab", 32)
	e.cfg.Ollama.Release.SHA256 = wrong
	err := e.bootstrap()
	wantStepFailure(t, err, StepInstall, "checksum mismatch", wrong, sha(e.release))
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Want != wrong || ce.Got != sha(e.release) {
		t.Errorf("error %v is not a ChecksumError with both hashes", err)
	}
	if n := e.files.hitsFor("/ollama-linux-amd64.tar.zst"); n != 1 {
		t.Errorf("release requested %d times, want 1 (a bad checksum is never retried)", n)
	}
	wantResults(t, e.lc, ResultAbandon)
	if _, err := os.Stat(filepath.Join(e.root, OllamaBinary)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a release with a bad checksum was installed: %v", err)
	}
	if !strings.Contains(e.log.String(), "step install: failed: ") {
		t.Errorf("log lacks the failed step:\n%s", e.log)
	}
}

func TestDownloadErrorIsRetriedThenAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.files.status = 503
	err := e.bootstrap()
	wantStepFailure(t, err, StepInstall, "gave up after 3 attempts", "503")
	if n := e.files.hitsFor("/ollama-linux-amd64.tar.zst"); n != testRetry.Attempts {
		t.Errorf("release requested %d times, want %d", n, testRetry.Attempts)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestDownloadRecoversFromTransientErrors(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.files.failFirst = testRetry.Attempts - 1
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if n := e.files.hitsFor("/ollama-linux-amd64.tar.zst"); n != testRetry.Attempts {
		t.Errorf("release requested %d times, want %d", n, testRetry.Attempts)
	}
	wantResults(t, e.lc, ResultContinue)
}

func TestMissingReleaseIsNotRetried(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.cfg.Ollama.Release.URL = e.files.URL + "/no-such-release.tar.zst"
	wantStepFailure(t, e.bootstrap(), StepInstall, "404")
	if n := e.files.hitsFor("/no-such-release.tar.zst"); n != 1 {
		t.Errorf("missing release requested %d times, want 1", n)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestReleaseWithPathTraversalIsRejected(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	evil := tarZst(t, []tarEntry{
		{name: "bin/ollama", body: "#!/bin/sh\n", mode: 0o755},
		{name: "../../escaped", body: "owned"},
	})
	e.files.files["/ollama-linux-amd64.tar.zst"] = evil
	e.cfg.Ollama.Release.SHA256 = sha(evil)
	err := e.bootstrap()
	wantStepFailure(t, err, StepInstall, "escapes the destination")
	if !errors.Is(err, ErrUnsafePath) {
		t.Errorf("error %v does not wrap ErrUnsafePath", err)
	}
	if _, err := os.Stat(filepath.Join(e.root, OllamaPrefix, "..", "..", "escaped")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the traversal wrote outside %s: %v", OllamaPrefix, err)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestNoGPUAbandonsBeforeInstalling(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.nvidia = func([]string) ([]byte, error) {
		return nil, errors.New("nvidia-smi: exit status 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver")
	}
	wantStepFailure(t, e.bootstrap(), StepGPU, "verify the GPU", "couldn't communicate with the NVIDIA driver")
	if got := len(e.runner.matching("nvidia-smi")); got != testRetry.Attempts {
		t.Errorf("nvidia-smi ran %d times, want %d (the driver may still be loading)", got, testRetry.Attempts)
	}
	if n := e.files.hitsFor("/ollama-linux-amd64.tar.zst"); n != 0 {
		t.Errorf("release downloaded on a node without a GPU")
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestNvidiaSMIListingNoGPUFails(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.nvidia = func([]string) ([]byte, error) { return []byte("\n"), nil }
	wantStepFailure(t, e.bootstrap(), StepGPU, "nvidia-smi lists no GPU")
	wantResults(t, e.lc, ResultAbandon)
}

func TestCPUPoolSkipsGPUChecks(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: false})
	e.cfg.Ollama.GPU = false
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if got := e.runner.matching("nvidia-smi"); len(got) != 0 {
		t.Errorf("nvidia-smi ran on a CPU pool: %q", got)
	}
	if !strings.Contains(e.log.String(), "step gpu: ok: skipped: CPU-only pool") {
		t.Errorf("log lacks the skipped GPU step:\n%s", e.log)
	}
	wantResults(t, e.lc, ResultContinue)
}

func TestModelPullFailureIsRetriedThenAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, PullError: "pull model manifest: file does not exist"})
	wantStepFailure(t, e.bootstrap(), StepModels, "model llama3.1:8b", "file does not exist", "gave up after 3 attempts")
	if c := e.ollama.Counts(); c.Pulls != testRetry.Attempts {
		t.Errorf("pulls = %d, want %d", c.Pulls, testRetry.Attempts)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestModelPullRecoversFromTransientFailures(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, PullFailures: testRetry.Attempts - 1})
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if c := e.ollama.Counts(); c.Pulls != testRetry.Attempts {
		t.Errorf("pulls = %d, want %d", c.Pulls, testRetry.Attempts)
	}
	wantResults(t, e.lc, ResultContinue)
}

func TestModelCreateFailureAbandonsWithoutRetry(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, CreateError: "invalid file magic"})
	wantStepFailure(t, e.bootstrap(), StepModels, "model tiny", "POST /api/create", "invalid file magic")
	if c := e.ollama.Counts(); c.Creates != 1 {
		t.Errorf("creates = %d, want 1 (Ollama refused the model; retrying changes nothing)", c.Creates)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestModelGGUFBadChecksumAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.cfg.Ollama.Models[1].Source.SHA256 = strings.Repeat("0", 64)
	wantStepFailure(t, e.bootstrap(), StepModels, "model tiny", "checksum mismatch", sha(e.gguf))
	if n := e.files.hitsFor("/models/tiny.gguf"); n != 1 {
		t.Errorf("GGUF requested %d times, want 1", n)
	}
	if c := e.ollama.Counts(); c.BlobUploads != 0 || c.Creates != 0 {
		t.Errorf("a GGUF with a bad checksum reached Ollama: %+v", c)
	}
	wantResults(t, e.lc, ResultAbandon)
}

func TestModelOnCPUOfGPUPoolAbandons(t *testing.T) {
	// The boot race: Ollama started before the NVIDIA device nodes and loaded on the CPU.
	e := newEnv(t, ollamatest.Options{GPU: false})
	err := e.bootstrap()
	wantStepFailure(t, err, StepResident, "model llama3.1:8b is loaded on CPU, not GPU: size_vram 0")
	wantResults(t, e.lc, ResultAbandon)
}

func TestOllamaNeverHealthyAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, Unhealthy: true})
	err := e.bootstrap(func(o *Options) { o.Timeouts[StepStart] = 300 * time.Millisecond })
	wantStepFailure(t, err, StepStart, "timed out after 300ms", "never answered GET /api/version with 200", "HTTP 503")
	wantResults(t, e.lc, ResultAbandon)
	if c := e.ollama.Counts(); c.Pulls != 0 {
		t.Errorf("models pulled from an unhealthy Ollama")
	}
}

func TestNoActiveLifecycleActionIsSuccess(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.lc.always = fmt.Errorf("ValidationError: %w", ErrNoLifecycleAction)
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v, want nil (a reboot is not a failure)", err)
	}
	// Exactly one call: "no active action" is an answer, not a failure to retry.
	wantResults(t, e.lc, ResultContinue)
}

func TestLifecycleTransientErrorsAreRetried(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.lc.errs = []error{errors.New("connection reset"), errors.New("connection reset")}
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	wantResults(t, e.lc, ResultContinue, ResultContinue, ResultContinue)
}

func TestLifecycleFailureAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.lc.errs = []error{permanent(errors.New("AccessDenied")), nil}
	wantStepFailure(t, e.bootstrap(), StepLifecycle, "AccessDenied")
	wantResults(t, e.lc, ResultContinue, ResultAbandon)
}

func TestAbandonFailureIsLoggedNotFatal(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, Unhealthy: true})
	e.lc.always = errors.New("no route to autoscaling")
	err := e.bootstrap(func(o *Options) { o.Timeouts[StepStart] = 50 * time.Millisecond })
	wantStepFailure(t, err, StepStart)
	if n := len(e.lc.sent()); n != testRetry.Attempts {
		t.Errorf("ABANDON tried %d times, want %d", n, testRetry.Attempts)
	}
	if !strings.Contains(e.log.String(), "lifecycle: ABANDON failed: ") {
		t.Errorf("log lacks the failed ABANDON:\n%s", e.log)
	}
}

func TestCancelledBootstrapStillAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, Unhealthy: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Stop the agent (as SIGTERM does) while it waits for Ollama.
	go func() {
		for !strings.Contains(e.log.String(), "step start: start") {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	err := e.agent().Bootstrap(ctx)
	wantStepFailure(t, err, StepStart)
	wantResults(t, e.lc, ResultAbandon)
}

func TestSystemdStartRestartsOnlyWhenChanged(t *testing.T) {
	for _, changed := range []bool{true, false} {
		r := &fakeRunner{}
		if err := (systemdService{run: r, unit: OllamaUnit}).start(context.Background(), changed); err != nil {
			t.Fatal(err)
		}
		want := "[systemctl daemon-reload systemctl enable --now ollama.service]"
		if changed {
			want = "[systemctl daemon-reload systemctl enable ollama.service systemctl restart ollama.service]"
		}
		if got := fmt.Sprint(r.commands()); got != want {
			t.Errorf("changed=%v: commands %s, want %s", changed, got, want)
		}
	}
}

func TestUserStepCreatesSystemUser(t *testing.T) {
	for _, exists := range []bool{false, true} {
		e := newEnv(t, ollamatest.Options{})
		e.runner.handlers["getent"] = func([]string) ([]byte, error) {
			if exists {
				return []byte("ollama:x:998:998::/var/lib/ollama:/usr/sbin/nologin\n"), nil
			}
			return nil, errors.New("getent passwd ollama: exit status 2")
		}
		a := e.agent(func(o *Options) { o.Root = "/" }).role.(*ollamaRole)
		if _, err := a.stepUser(context.Background(), &runState{}); err != nil {
			t.Fatal(err)
		}
		want := []string{"getent passwd ollama"}
		if !exists {
			want = append(want, "useradd --system --user-group --home-dir /var/lib/ollama --shell /usr/sbin/nologin ollama")
		}
		want = append(want, "install -d -o ollama -g ollama -m 0755 /var/lib/ollama /var/lib/ollama/models")
		if got := e.runner.commands(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("exists=%v: commands %q\nwant %q", exists, got, want)
		}
	}
}

func TestUserStepFailsWhenUseraddFails(t *testing.T) {
	e := newEnv(t, ollamatest.Options{})
	e.runner.handlers["getent"] = func([]string) ([]byte, error) { return nil, errors.New("exit status 2") }
	e.runner.handlers["useradd"] = func([]string) ([]byte, error) {
		return nil, errors.New("useradd: exit status 1: cannot lock /etc/passwd")
	}
	a := e.agent(func(o *Options) { o.Root = "/" }).role.(*ollamaRole)
	_, err := a.stepUser(context.Background(), &runState{})
	if err == nil || !strings.Contains(err.Error(), "create user ollama") || !strings.Contains(err.Error(), "cannot lock") {
		t.Errorf("stepUser() = %v, want the useradd failure", err)
	}
}

func TestUserStepInRootModeCreatesNoUser(t *testing.T) {
	e := newEnv(t, ollamatest.Options{})
	note, err := e.agent().role.(*ollamaRole).stepUser(context.Background(), &runState{})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.runner.commands(); len(got) != 0 {
		t.Errorf("commands in --root mode: %q", got)
	}
	if !strings.HasPrefix(note, "skipped:") {
		t.Errorf("note = %q", note)
	}
	if fi, err := os.Stat(filepath.Join(e.root, OllamaModelsDir)); err != nil || !fi.IsDir() {
		t.Errorf("models directory not created: %v", err)
	}
}

func TestInstallReplacesOtherVersion(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	bin := filepath.Join(e.root, OllamaBinary)
	stale := filepath.Join(e.root, OllamaPrefix, "lib/ollama/cuda_v11/libstale.so")
	for _, f := range []string{bin, stale} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("old"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	installed := "0.30.0"
	e.runner.handlers["ollama"] = func([]string) ([]byte, error) {
		v := installed
		installed = testVersion // the extraction below replaces it
		return []byte("ollama version is " + v + "\n"), nil
	}
	if _, err := e.agent().role.(*ollamaRole).stepInstall(context.Background(), &runState{}); err != nil {
		t.Fatal(err)
	}
	if n := e.files.hitsFor("/ollama-linux-amd64.tar.zst"); n != 1 {
		t.Errorf("release requested %d times, want 1", n)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous release's libraries were kept: %v", err)
	}
	if data, _ := os.ReadFile(bin); string(data) == "old" {
		t.Errorf("bin/ollama not replaced")
	}
}

func TestInstallFailsWhenInstalledVersionDiffers(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.runner.handlers["ollama"] = func([]string) ([]byte, error) { return []byte("ollama version is 0.1.0\n"), nil }
	_, err := e.agent().role.(*ollamaRole).stepInstall(context.Background(), &runState{})
	if err == nil || !strings.Contains(err.Error(), "reports version 0.1.0, the config pins "+testVersion) {
		t.Errorf("stepInstall() = %v, want a version mismatch", err)
	}
}

func TestParseOllamaVersion(t *testing.T) {
	for out, want := range map[string]string{
		"ollama version is 0.35.1\n": "0.35.1",
		"Warning: could not connect to a running Ollama instance\nWarning: client version is 0.35.1\n": "0.35.1",
		"ollama version is 0.30.0\nWarning: client version is 0.35.1\n":                                "0.35.1",
		"ollama version is v0.35.1": "0.35.1",
	} {
		got, err := parseOllamaVersion([]byte(out))
		if err != nil || got != want {
			t.Errorf("parseOllamaVersion(%q) = %q, %v; want %q", out, got, err, want)
		}
	}
	if _, err := parseOllamaVersion([]byte("bash: ollama: not found")); err == nil {
		t.Errorf("parseOllamaVersion accepted output without a version")
	}
}

func TestStepsRunInDocumentedOrderWithTimeouts(t *testing.T) {
	e := newEnv(t, ollamatest.Options{})
	var names []string
	for _, s := range e.agent(func(o *Options) { o.Timeouts = nil }).Steps() {
		names = append(names, s.Name)
		if s.Timeout != DefaultTimeouts()[s.Name] || s.Timeout <= 0 {
			t.Errorf("step %s timeout %s, want %s", s.Name, s.Timeout, DefaultTimeouts()[s.Name])
		}
	}
	want := "[gpu install user configure start models preload resident lifecycle]"
	if fmt.Sprint(names) != want {
		t.Errorf("steps = %v, want %s", names, want)
	}
}

func TestLoggerMirrorsToConsoleWithTimestamp(t *testing.T) {
	var out, console syncBuffer
	l := NewLogger(&out, &console)
	l.now = func() time.Time { return time.Date(2026, 11, 28, 5, 0, 0, 0, time.UTC) }
	l.Printf("step gpu: start")
	if out.String() != "step gpu: start\n" {
		t.Errorf("stderr line = %q", out.String())
	}
	if console.String() != "2026-11-28T05:00:00Z sandbox-node: step gpu: start\n" {
		t.Errorf("console line = %q", console.String())
	}
	broken := NewLogger(&out, failingWriter{})
	broken.Printf("still logged")
	if !strings.Contains(out.String(), "still logged") {
		t.Errorf("a broken console stopped the log")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("EIO") }

func TestRetryPolicy(t *testing.T) {
	calls := 0
	err := testRetry.do(context.Background(), nil, func(context.Context) error { calls++; return errors.New("flaky") })
	if calls != 3 || err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts: flaky") {
		t.Errorf("transient: %d calls, %v", calls, err)
	}
	calls = 0
	err = testRetry.do(context.Background(), nil, func(context.Context) error { calls++; return permanent(errors.New("bad")) })
	if calls != 1 || !isPermanent(err) {
		t.Errorf("permanent: %d calls, %v", calls, err)
	}
	var waits []time.Duration
	p := RetryPolicy{Attempts: 5, Initial: time.Millisecond, Max: 3 * time.Millisecond}
	_ = p.do(context.Background(), func(_, _ int, _ error, w time.Duration) { waits = append(waits, w) },
		func(context.Context) error { return errors.New("flaky") })
	if fmt.Sprint(waits) != "[1ms 2ms 3ms 3ms]" {
		t.Errorf("waits = %v, want doubling capped at Max", waits)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = RetryPolicy{Attempts: 5, Initial: time.Hour}.do(ctx, nil, func(context.Context) error {
		calls++
		cancel()
		return errors.New("flaky")
	})
	if calls != 1 || err == nil {
		t.Errorf("cancelled: %d calls, %v", calls, err)
	}
}

func TestS3ArtifactsUseTheObjectGetter(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.cfg.Ollama.Release.URL = "s3://chemistry-artifacts/ollama/0.35.1/ollama-linux-amd64.tar.zst"
	getter := &fakeObjects{objects: map[string][]byte{"chemistry-artifacts/ollama/0.35.1/ollama-linux-amd64.tar.zst": e.release}}
	if _, err := e.agent(func(o *Options) { o.Objects = getter }).role.(*ollamaRole).stepInstall(context.Background(), &runState{}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(getter.got) != "[chemistry-artifacts/ollama/0.35.1/ollama-linux-amd64.tar.zst]" {
		t.Errorf("objects read = %v", getter.got)
	}
}

type fakeObjects struct {
	objects map[string][]byte
	got     []string
}

func (f *fakeObjects) GetObject(_ context.Context, bucket, key string) (io.ReadCloser, error) {
	f.got = append(f.got, bucket+"/"+key)
	data, ok := f.objects[bucket+"/"+key]
	if !ok {
		return nil, errors.New("NoSuchKey")
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func TestPullHTTPErrorsAreRetried(t *testing.T) {
	e := newEnv(t, ollamatest.Options{})
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"pull model manifest: registry unreachable"}`)
	}))
	defer srv.Close()
	a := e.agent().role.(*ollamaRole)
	a.api.base = srv.URL
	err := a.pullModel(context.Background(), Model{Name: "llama3.1:8b"})
	if err == nil || !strings.Contains(err.Error(), "registry unreachable") || calls != testRetry.Attempts {
		t.Errorf("pullModel() = %v after %d calls, want %d attempts", err, calls, testRetry.Attempts)
	}
}

// TestUnpinnedReleaseIsRefused: a node config whose Ollama release has no pinned SHA-256 is
// refused before anything is downloaded, even when it names the release's checksum file: a
// hash read from the place the file comes from proves nothing.
func TestUnpinnedReleaseIsRefused(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.files.mu.Lock()
	e.files.files["/sha256sum.txt"] = []byte(sha(e.release) + "  ollama-linux-amd64.tar.zst\n")
	e.files.mu.Unlock()
	e.cfg.Ollama.Release.SHA256 = ""
	e.cfg.Ollama.Release.SumsURL = e.files.URL + "/sha256sum.txt"
	err := e.cfg.Validate()
	for _, want := range []string{"ollama.release.sha256: is empty", "sandboxctl pin ollama " + testVersion} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
	if _, err := New(context.Background(), e.cfg, e.options()); err == nil {
		t.Errorf("New() accepted a node config without a pinned release hash")
	}
	// The download itself refuses too, should a config ever reach it unvalidated.
	r := &ollamaRole{Agent: &Agent{cfg: e.cfg, log: NewLogger(e.log, nil), root: e.root}, ollama: e.cfg.Ollama}
	if _, err := r.fetch(context.Background(), StepInstall, "ollama", e.cfg.Ollama.Release); err == nil || !strings.Contains(err.Error(), "no pinned sha256") {
		t.Errorf("fetch() = %v, want a refusal without a pinned sha256", err)
	}
	for _, p := range []string{"/sha256sum.txt", "/ollama-linux-amd64.tar.zst"} {
		if n := e.files.hitsFor(p); n != 0 {
			t.Errorf("%s requested %d times, want never", p, n)
		}
	}
}

// A release below the floor is refused on a node; only an agent installing under a test root
// (the end-to-end tests build older releases from source) accepts it, with a warning.
func TestOllamaBelowTheFloorIsRefused(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	e.cfg.Ollama.Version = "0.34.9"
	want := "ollama.version: must be 0.35.0 or later"
	if err := e.cfg.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Validate() = %v, want the 0.35.0 floor named", err)
	}
	data, err := json.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "node.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{"", "/"} {
		if _, err := LoadConfig(file, Options{Root: root}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig(root %q) = %v, want the floor named", root, err)
		}
		if _, err := New(context.Background(), e.cfg, Options{Root: root}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(root %q) = %v, want the floor named", root, err)
		}
	}
	if _, err := LoadConfig(file, e.options()); err != nil {
		t.Errorf("LoadConfig under a test root = %v", err)
	}
	e.agent()
	if !strings.Contains(e.log.String(), "warning: ollama.version must be 0.35.0 or later") {
		t.Errorf("no warning for a release below the floor under a test root:\n%s", e.log)
	}
	e.cfg.Ollama.Version = "latest"
	if _, err := New(context.Background(), e.cfg, e.options()); err == nil || !strings.Contains(err.Error(), "ollama.version: must be an Ollama release X.Y.Z") {
		t.Errorf("New() = %v, want a version that is not X.Y.Z refused even under a test root", err)
	}
}

func TestArtifactNeedsAHash(t *testing.T) {
	for _, a := range []Artifact{
		{URL: "https://example.org/a.tar.zst"},
		{URL: "https://example.org/a.tar.zst", SumsURL: "https://example.org/sha256sum.txt"},
		{URL: "https://example.org/a.tar.zst", SHA256: strings.Repeat("A", 64)},
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("%+v: want an error", a)
		}
	}
	if err := (Artifact{URL: "https://example.org/a.tar.zst", SHA256: strings.Repeat("a", 64)}).Validate(); err != nil {
		t.Errorf("a pinned artifact was refused: %v", err)
	}
}

func TestBootBudget(t *testing.T) {
	for heartbeat, want := range map[int]time.Duration{
		0:    0,
		30:   27 * time.Second,
		600:  540 * time.Second,
		1800: 28 * time.Minute,
		7200: 118 * time.Minute,
	} {
		if got := bootBudget(heartbeat); got != want {
			t.Errorf("bootBudget(%d) = %s, want %s", heartbeat, got, want)
		}
	}
}

// A boot that outlasts its budget ABANDONs itself, saying why, before the hook would time out.
func TestBootBudgetRunsOutAndAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, Unhealthy: true})
	e.cfg.Lifecycle.HeartbeatSeconds = 600
	err := e.bootstrap(func(o *Options) { o.BootBudget = 300 * time.Millisecond })
	wantStepFailure(t, err, StepStart, "the boot budget ran out before the node was ready")
	wantResults(t, e.lc, ResultAbandon)
	if !strings.Contains(e.log.String(), "bootstrap: boot budget 300ms") {
		t.Errorf("log does not state the budget:\n%s", e.log)
	}
}

// A model that loads but cannot generate (its runner crashes on the first token) never gets the
// node CONTINUEd.
func TestModelThatCannotGenerateAbandons(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, GenerateError: "llama runner process has terminated: signal: aborted"})
	wantStepFailure(t, e.bootstrap(), StepPreload, "llama runner process has terminated")
	wantResults(t, e.lc, ResultAbandon)
}

// An embedding model cannot generate (Ollama answers 400): readiness embeds a string instead,
// and the node joins with the embedding model and the chat model beside it loaded.
func TestEmbeddingModelIsProvenByEmbedding(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true, Embedding: []string{"nomic-embed-text"}})
	e.cfg.Ollama.Models = append(e.cfg.Ollama.Models, NewModel("nomic-embed-text"))
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if c := e.ollama.Counts(); c.Embeds != 1 || c.Generates != 2 {
		t.Errorf("embeds %d, generates %d; want 1 embed (nomic-embed-text) and 2 generations (the chat models)", c.Embeds, c.Generates)
	}
	if got, want := e.ollama.Loaded(), []string{"llama3.1:8b", "nomic-embed-text:latest", "tiny:latest"}; !slices.Equal(got, want) {
		t.Errorf("loaded %v, want %v", got, want)
	}
	wantResults(t, e.lc, ResultContinue)
}

func TestNewModelMarksCatalogEmbeddingModels(t *testing.T) {
	if !NewModel("bge-m3").Embedding || NewModel("llama3.1:8b").Embedding || NewModel("not-in-catalog").Embedding {
		t.Errorf("NewModel: want only catalog embedding models marked")
	}
	m := NewLiteLLMModel("llama3.1:8b", "http://pool:8001", 8192)
	if m.Embedding || !m.Tools || m.ContextLength != 8192 || m.APIBase != "http://pool:8001" {
		t.Errorf("NewLiteLLMModel(llama3.1:8b) = %+v", m)
	}
	if m := NewLiteLLMModel("nomic-embed-text", "http://pool:8001", 8192); !m.Embedding || m.Tools || m.ContextLength != 2048 {
		t.Errorf("NewLiteLLMModel(nomic-embed-text) = %+v, want an embedding model at its 2048-token context", m)
	}
}

// TestPullLogsDownloadProgress pulls a registry model from the fake, which streams the layer's
// completed and total bytes as Ollama does, and requires the log to show the download's
// progress, once per tenth reached, not only the status names.
func TestPullLogsDownloadProgress(t *testing.T) {
	e := newEnv(t, ollamatest.Options{GPU: true})
	if err := e.bootstrap(); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	log := e.log.String()
	var got []string
	for _, m := range regexp.MustCompile(`step models: llama3\.1:8b: pulling 0123456789ab: (\d+% \(\d+ of \d+ MiB\))`).FindAllStringSubmatch(log, -1) {
		got = append(got, m[1])
	}
	want := []string{"25% (16 of 64 MiB)", "50% (32 of 64 MiB)", "75% (48 of 64 MiB)", "100% (64 of 64 MiB)"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pull progress lines %q, want %q; log:\n%s", got, want, log)
	}
	if n := strings.Count(log, "step models: llama3.1:8b: pulling 0123456789ab\n"); n != 1 {
		t.Errorf("the layer's status is logged %d times, want once", n)
	}
}
