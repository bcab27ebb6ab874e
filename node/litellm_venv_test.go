package node

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// probeWheel builds a tiny pure-Python wheel, llm-sandbox-probe 1.0, whose module holds value:
// what pip needs of a wheel (PEP 427: the .dist-info's METADATA, WHEEL and RECORD).
func probeWheel(t *testing.T, value string) (string, []byte) {
	t.Helper()
	const info = "llm_sandbox_probe-1.0.dist-info/"
	files := []struct{ name, body string }{
		{"llm_sandbox_probe/__init__.py", fmt.Sprintf("VALUE = %q\n", value)},
		{info + "METADATA", "Metadata-Version: 2.1\nName: llm-sandbox-probe\nVersion: 1.0\n"},
		{info + "WHEEL", "Wheel-Version: 1.0\nGenerator: llm-sandbox-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var record strings.Builder
	for _, f := range files {
		sum := sha256.Sum256([]byte(f.body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
	}
	record.WriteString(info + "RECORD,,\n")
	files = append(files, struct{ name, body string }{info + "RECORD", record.String()})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return "llm_sandbox_probe-1.0-py3-none-any.whl", buf.Bytes()
}

// localPipWheel finds a pip wheel on this machine without the network: the lock's own pip in
// the end-to-end tests' wheels (LLM_SANDBOX_LITELLM_WHEELS, as `make e2e-deps` downloads them)
// when they are there, else the wheel python3's ensurepip bundles (or Debian's
// /usr/share/python-wheels, where Debian's ensurepip finds it). It skips the test when there is
// none.
func localPipWheel(t *testing.T, python3 string) (string, string) {
	t.Helper()
	var candidates []string
	if dir := os.Getenv("LLM_SANDBOX_LITELLM_WHEELS"); dir != "" {
		candidates = append(candidates, filepath.Join(dir, "pip-"+lockedPip(t)+"-py3-none-any.whl"))
	}
	out, err := exec.Command(python3, "-c", "import ensurepip, os; print(os.path.dirname(ensurepip.__file__))").Output()
	if err == nil {
		bundled, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "_bundled", "pip-*-py3-none-any.whl"))
		candidates = append(candidates, bundled...)
	}
	debian, _ := filepath.Glob("/usr/share/python-wheels/pip-*-py3-none-any.whl")
	candidates = append(candidates, debian...)
	name := regexp.MustCompile(`^pip-([^-]+)-py3-none-any\.whl$`)
	for _, c := range candidates {
		m := name.FindStringSubmatch(filepath.Base(c))
		if _, err := os.Stat(c); err == nil && m != nil {
			return c, m[1]
		}
	}
	t.Skipf("no pip wheel on this machine (looked at %q)", candidates)
	return "", ""
}

// The install from a wheelhouse, for real: this machine's python3 makes the venv with
// --without-pip as the agent does, and the agent's pip command line (venvPip.installArgs, run by
// the ExecRunner) installs a pip wheel and a tiny wheel into it from a directory, hash-checked,
// with --no-index: nothing but the directory is read. A wrong hash in the lock fails the
// install. No socket is opened.
func TestLiteLLMWheelhouseInstallWithRealPython(t *testing.T) {
	python3, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	pipFile, pipVersion := localPipWheel(t, python3)
	t.Logf("pip wheel: %s", pipFile)
	pipData, err := os.ReadFile(pipFile)
	if err != nil {
		t.Fatal(err)
	}
	house := t.TempDir()
	probeName, probe := probeWheel(t, "installed offline")
	for name, data := range map[string][]byte{filepath.Base(pipFile): pipData, probeName: probe} {
		if err := os.WriteFile(filepath.Join(house, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lockFor := func(probeSum string) string {
		return "pip==" + pipVersion + " \\\n    --hash=sha256:" + sha(pipData) + "\n    # via -r test\n" +
			"llm-sandbox-probe==1.0 \\\n    --hash=sha256:" + probeSum + "\n    # via -r test\n"
	}
	// pip reads its configuration files and PIP_* variables: none of this machine's may add an
	// index or a link to what the agent's arguments say.
	t.Setenv("PIP_CONFIG_FILE", os.DevNull)
	for _, v := range os.Environ() {
		if name, _, _ := strings.Cut(v, "="); strings.HasPrefix(name, "PIP_") && name != "PIP_CONFIG_FILE" {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	t.Setenv("HOME", t.TempDir())

	install := func(t *testing.T, lock string) (string, []byte, error) {
		e := newLiteEnv(t)
		e.runner = nil // the real ExecRunner
		r := e.agent().role.(*liteLLMRole)
		ctx := context.Background()
		venv := filepath.Join(e.root, LiteLLMVenv)
		if err := r.createVenv(ctx, venv, true); err != nil {
			t.Fatal(err)
		}
		python := filepath.Join(e.root, LiteLLMPython)
		if out, err := exec.Command(python, "-c", "import pip").CombinedOutput(); err == nil {
			t.Fatalf("the venv made --without-pip has pip: %s", out)
		}
		wheel, err := lockedPipWheel(house, []byte(lock))
		if err != nil {
			t.Fatal(err)
		}
		reqFile := filepath.Join(e.root, LiteLLMRequirementsFile)
		if err := os.MkdirAll(filepath.Dir(reqFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(reqFile, []byte(lock), 0o644); err != nil {
			t.Fatal(err)
		}
		pip := venvPip{python: python, wheel: wheel}
		args := pip.installArgs(reqFile, house)
		if !strings.Contains(strings.Join(args, " "), "--require-hashes --no-deps --only-binary :all: ") ||
			!strings.Contains(strings.Join(args, " "), " --no-index --find-links "+house+" ") {
			t.Fatalf("install arguments %q lack the hash, no-deps, binary or offline options", args)
		}
		out, err := r.run.Run(ctx, python, args...)
		if err == nil {
			if _, err := r.run.Run(ctx, python, pip.args("check")...); err != nil {
				t.Errorf("pip check: %v", err)
			}
		}
		return python, out, err
	}

	t.Run("installs", func(t *testing.T) {
		python, out, err := install(t, lockFor(sha(probe)))
		if err != nil {
			t.Fatalf("pip install from the wheelhouse: %v\n%s", err, out)
		}
		got, err := exec.Command(python, "-c", "import llm_sandbox_probe, pip; print(llm_sandbox_probe.VALUE, pip.__version__)").CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != "installed offline "+pipVersion {
			t.Errorf("the venv's probe and pip: %q (%v), want \"installed offline %s\"", got, err, pipVersion)
		}
	})
	t.Run("a hash the lock lacks", func(t *testing.T) {
		_, out, err := install(t, lockFor(strings.Repeat("0", 64)))
		if err == nil || !bytes.Contains(out, []byte("DO NOT MATCH THE HASHES")) {
			t.Errorf("pip install with a wrong hash: %v\n%s", err, out)
		}
	})
}
