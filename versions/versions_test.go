package versions

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// requirement is one entry of a hash-locked requirements file.
type requirement struct {
	name, version string
	hashes        []string
}

var (
	pinLine  = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)$`)
	hashOpt  = regexp.MustCompile(`^--hash=sha256:([0-9a-f]{64})$`)
	floor    = "1.84.0"
	poisoned = []string{"1.82.7", "1.82.8"}
)

// parseLock reads a pip requirements file as pip-compile --generate-hashes writes it: each
// requirement on a line continued with backslashes by its --hash options. Anything else (an
// option such as --index-url or -e, a range instead of ==, a requirement without a hash) is an
// error, since pip's --require-hashes mode would install it differently or not at all.
func parseLock(text string) ([]requirement, error) {
	var reqs []requirement
	// Join continued lines, drop comments.
	var logical []string
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		cont := strings.HasSuffix(line, "\\")
		cur += " " + strings.TrimSuffix(line, "\\")
		if !cont {
			if s := strings.TrimSpace(cur); s != "" {
				logical = append(logical, s)
			}
			cur = ""
		}
	}
	for _, l := range logical {
		f := strings.Fields(l)
		m := pinLine.FindStringSubmatch(f[0])
		if m == nil {
			return nil, fmt.Errorf("%q is not an exact name==version pin", f[0])
		}
		r := requirement{name: strings.ToLower(m[1]), version: m[2]}
		for _, opt := range f[1:] {
			h := hashOpt.FindStringSubmatch(opt)
			if h == nil {
				return nil, fmt.Errorf("%s: option %q is not --hash=sha256:<64 hex digits>", r.name, opt)
			}
			r.hashes = append(r.hashes, h[1])
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

func TestLiteLLMLockPinsTheVersionWithHashes(t *testing.T) {
	reqs, err := parseLock(LiteLLMRequirements)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) < 10 {
		t.Fatalf("the lock lists %d requirements; litellm[proxy] alone needs dozens", len(reqs))
	}
	seen := map[string]bool{}
	litellm := 0
	for _, r := range reqs {
		if seen[r.name] {
			t.Errorf("%s is pinned twice", r.name)
		}
		seen[r.name] = true
		if len(r.hashes) == 0 {
			t.Errorf("%s==%s has no --hash: pip --require-hashes would refuse the whole file", r.name, r.version)
		}
		if r.name == LiteLLM.Name {
			litellm++
			if r.version != LiteLLM.Version {
				t.Errorf("the lock pins litellm==%s, versions.LiteLLM says %s", r.version, LiteLLM.Version)
			}
		}
	}
	if litellm != 1 {
		t.Errorf("the lock pins litellm %d times, want once", litellm)
	}
	// The dependencies that make the lock complete on both Pythons (litellm-requirements.in),
	// and pip, which a node installing from a wheelhouse runs from the wheelhouse's pip wheel.
	for _, name := range []string{"async-timeout", "numpy", "litellm-proxy-extras", "pip"} {
		if !seen[name] {
			t.Errorf("the lock does not pin %s", name)
		}
	}
}

func TestLiteLLMIsAboveTheFloorAndNeverCompromised(t *testing.T) {
	ok, err := AtLeast(LiteLLM.Version, floor)
	if err != nil || !ok {
		t.Errorf("LiteLLM %s is below the %s floor (%v)", LiteLLM.Version, floor, err)
	}
	in, err := os.ReadFile(LiteLLM.Input)
	if err != nil {
		t.Fatal(err)
	}
	// The lock never names them at all; the input may explain them in comments, never pin them.
	var inLines []string
	for _, line := range strings.Split(string(in), "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		inLines = append(inLines, line)
	}
	for name, text := range map[string]string{LiteLLM.Lock: LiteLLMRequirements, LiteLLM.Input + " (comments aside)": strings.Join(inLines, "\n")} {
		for _, bad := range poisoned {
			if strings.Contains(text, bad) {
				t.Errorf("%s names %s, a release that carried a credential stealer", name, bad)
			}
		}
	}
	if !regexp.MustCompile(`(?m)^litellm\[proxy\]==` + regexp.QuoteMeta(LiteLLM.Version) + `$`).Match(in) {
		t.Errorf("%s does not pin litellm[proxy]==%s", LiteLLM.Input, LiteLLM.Version)
	}
	// The regeneration command is written down where the next person looks for it.
	if !strings.Contains(string(in), "pip-compile --generate-hashes --allow-unsafe --strip-extras") {
		t.Errorf("%s does not give the pip-compile command that regenerates the lock", LiteLLM.Input)
	}
}

func TestEmbeddedLockIsTheFile(t *testing.T) {
	data, err := os.ReadFile(LiteLLM.Lock)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != LiteLLMRequirements {
		t.Errorf("LiteLLMRequirements differs from %s", LiteLLM.Lock)
	}
}

func TestParseLockRejectsWhatRequireHashesWouldNotInstall(t *testing.T) {
	for _, text := range []string{
		"litellm==1.108.7\n",
		"litellm>=1.108 \\\n    --hash=sha256:" + strings.Repeat("a", 64) + "\n",
		"--index-url https://example.org/simple\n",
		"litellm==1.108.7 \\\n    --hash=md5:abc\n",
	} {
		reqs, err := parseLock(text)
		if err == nil {
			ok := true
			for _, r := range reqs {
				ok = ok && len(r.hashes) > 0
			}
			if ok {
				t.Errorf("parseLock(%q) accepted it", text)
			}
		}
	}
	ok, _ := AtLeast("1.83.14", floor)
	if ok {
		t.Errorf("1.83.14 passed the 1.84.0 floor")
	}
}

// TestMakefileInstallsOnlyWhatTheLocksPin keeps every pip step of `make test` from resolving
// anything at install time. A lock compiled with --strip-extras lists `pkg` where a dependency
// asks for `pkg[extra]`; without --no-deps pip resolves that requirement itself, takes the
// newest release, and --require-hashes then refuses the whole run on the day a new release
// appears (httpx 0.29.0 did this to the LiteLLM lock). Every install must also be followed by
// `pip check`, which is what proves the lock is the whole closure once --no-deps stops pip from
// filling gaps.
func TestMakefileInstallsOnlyWhatTheLocksPin(t *testing.T) {
	data, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	assign := regexp.MustCompile(`^([A-Z_]+)\s*:?=\s*(.*)$`)
	var recipe []string
	for _, line := range strings.Split(string(data), "\n") {
		if m := assign.FindStringSubmatch(line); m != nil {
			vars[m[1]] = m[2]
		}
		if strings.HasPrefix(line, "\t") {
			recipe = append(recipe, line)
		}
	}
	expand := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	steps := 0
	for i, line := range recipe {
		line = expand.ReplaceAllStringFunc(line, func(ref string) string {
			if v, ok := vars[expand.FindStringSubmatch(ref)[1]]; ok && strings.Contains(v, "--") {
				return v
			}
			return ref
		})
		install := strings.Contains(line, "pip install")
		if !install && !strings.Contains(line, "pip download") {
			continue
		}
		steps++
		for _, flag := range []string{"--require-hashes", "--no-deps"} {
			if !strings.Contains(line, flag) {
				t.Errorf("Makefile recipe line %q lacks %s", strings.TrimSpace(line), flag)
			}
		}
		if install && (i+1 >= len(recipe) || !strings.Contains(recipe[i+1], "pip check")) {
			t.Errorf("Makefile recipe line %q is not followed by `pip check`", strings.TrimSpace(line))
		}
	}
	if steps < 3 {
		t.Errorf("found %d pip steps in the Makefile, want the lint venv, moto's venv and the LiteLLM wheels", steps)
	}
}

func TestOllamaIsPinnedAboveTheFloor(t *testing.T) {
	if p := CheckOllama(Ollama); p != "" {
		t.Errorf("CheckOllama(versions.Ollama) = %q, want no problem", p)
	}
	base := OllamaReleases + "/v" + Ollama.Version + "/"
	if Ollama.URL != base+OllamaAsset || Ollama.SumsURL != base+"sha256sum.txt" {
		t.Errorf("versions.Ollama names %s and %s, want both under %s", Ollama.URL, Ollama.SumsURL, base)
	}
}

func TestCheckOllamaRefusesWhatNodesWouldRefuse(t *testing.T) {
	pinned := Ollama
	for _, tc := range []struct {
		name string
		r    Release
		want []string
	}{
		{"no hash", Release{Version: "0.35.1", URL: Ollama.URL}, []string{"versions.Ollama.SHA256", "sandboxctl pin ollama 0.35.1"}},
		{"short hash", Release{Version: "0.35.1", SHA256: "9fcd79ac"}, []string{"sandboxctl pin ollama 0.35.1"}},
		{"upper-case hash", Release{Version: "0.35.1", SHA256: strings.ToUpper(pinned.SHA256)}, []string{"sandboxctl pin ollama"}},
		{"below the floor", Release{Version: "0.34.9", SHA256: pinned.SHA256}, []string{"0.35.0 or later", "got 0.34.9", "sandboxctl pin ollama VERSION"}},
		{"not a version", Release{Version: "v0.35.1", SHA256: pinned.SHA256}, []string{"X.Y.Z", "sandboxctl pin ollama VERSION"}},
	} {
		got := CheckOllama(tc.r)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: CheckOllama() = %q, want it to say %q", tc.name, got, w)
			}
		}
	}
	for v, want := range map[string]bool{"0.35.0": true, "0.35.1": true, "1.0.0": true, "0.34.99": false, "0.9.0": false} {
		if got := CheckOllamaVersion(v) == ""; got != want {
			t.Errorf("CheckOllamaVersion(%q) accepted = %v, want %v", v, got, want)
		}
	}
}
