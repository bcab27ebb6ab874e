package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/internal/atomicfile"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// liteLLMRole runs the LiteLLM gateway on a gateway node: it installs the LiteLLM this agent
// embeds (versions.LiteLLM), writes the master key, the config and the unit, and waits for
// /health/liveliness.
type liteLLMRole struct {
	*Agent
	litellm *LiteLLMConfig
	// secrets reads the master key; built on first use unless Options.Secrets set it.
	secrets SecretGetter
	svc     service
	// lock is the hash-locked requirements the role installs: versions.LiteLLMRequirements.
	lock []byte
}

// newLiteLLMRole sets up the litellm role's service: the unit through systemd, or a detached
// process that listens on 127.0.0.1 in a root other than / (a test or a workstation, where no
// security group guards the port).
func newLiteLLMRole(a *Agent, l *LiteLLMConfig, opts Options) *liteLLMRole {
	r := &liteLLMRole{Agent: a, litellm: l, secrets: opts.Secrets, lock: []byte(versions.LiteLLMRequirements)}
	if opts.LiteLLMLock != nil {
		r.lock = opts.LiteLLMLock
	}
	if !opts.NoSystemd {
		r.svc = systemdService{run: r.run, unit: LiteLLMUnit}
		return r
	}
	host := "0.0.0.0"
	if r.rootMode() {
		host = "127.0.0.1"
	}
	config := r.path(LiteLLMConfigFile)
	r.svc = &processService{
		name:    "litellm",
		bin:     r.path(LiteLLMBinary),
		args:    liteLLMArgs(config, host, l),
		match:   config,
		env:     r.processEnv,
		dir:     r.root,
		logFile: r.path(LiteLLMLogFile),
		pidFile: r.path(LiteLLMPidFile),
		log:     r.log,
		serving: func(ctx context.Context) error {
			_, err := r.live(ctx)
			return err
		},
	}
	return r
}

// Name is RoleLiteLLM.
func (r *liteLLMRole) Name() string { return RoleLiteLLM }

// Summary names the LiteLLM this agent installs, the models, the port and the workers.
func (r *liteLLMRole) Summary() string {
	behind := ""
	if r.litellm.BackendPort != 0 {
		behind = fmt.Sprintf(" (litellm on 127.0.0.1:%d behind the accounting proxy)", r.litellm.BackendPort)
	}
	return fmt.Sprintf("litellm %s, %d model(s), port %d%s, %d worker(s)",
		versions.LiteLLM.Version, len(r.litellm.Models), r.litellm.Port, behind, r.litellm.Workers)
}

// Steps are install, user, secret, configure, start.
func (r *liteLLMRole) Steps() []Step {
	return []Step{
		{Name: StepInstall, run: r.stepInstall},
		{Name: StepUser, run: r.stepUser},
		{Name: StepSecret, run: r.stepSecret},
		{Name: StepConfigure, run: r.stepConfigure},
		{Name: StepStart, run: r.stepStart},
	}
}

// base is the local LiteLLM's URL.
func (r *liteLLMRole) base() string {
	return "http://127.0.0.1:" + strconv.Itoa(r.litellm.ListenPort())
}

// live asks GET /health/liveliness: 200 means the proxy is up (it needs no key and
// calls no model).
func (r *liteLLMRole) live(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base()+LiteLLMHealthPath, nil)
	if err != nil {
		return "", permanent(err)
	}
	resp, err := r.local.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", LiteLLMHealthPath, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return "", &apiError{Op: "GET " + LiteLLMHealthPath, Status: resp.StatusCode, Msg: strings.TrimSpace(string(body))}
	}
	return strings.TrimSpace(string(body)), nil
}

// processEnv is the environment of a LiteLLM started without systemd: what the unit
// gives it (the environment file with the master key, the service variables) and, as under
// systemd with User=litellm, HOME=/nonexistent and the agent's PATH.
func (r *liteLLMRole) processEnv() ([]string, error) {
	fromFile, err := readEnvFile(r.path(LiteLLMEnvFile))
	if err != nil {
		return nil, err
	}
	var env []string
	for _, v := range LiteLLMEnv() {
		env = append(env, v.Name+"="+v.Value)
	}
	env = append(env, fromFile...)
	// The key registry is read by the custom-auth module with boto3: under systemd it finds
	// the instance role through the instance metadata service by itself. An agent run with its
	// AWS endpoint or credentials in its environment (an emulator) passes them on, so the
	// module reads the same registry the agent would.
	for _, name := range awsPassThrough {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return append(env, "HOME=/nonexistent", "PATH="+searchPath()), nil
}

// awsPassThrough are the AWS SDK settings a LiteLLM started without systemd inherits.
var awsPassThrough = []string{
	"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
}

// readEnvFile reads the KEY=value lines of an environment file the agent wrote (no quoting:
// the agent writes none), skipping comments and blank lines.
func readEnvFile(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read the environment file: %w", err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(line, "=") {
			return nil, fmt.Errorf("%s: a line is not KEY=value", file)
		}
		env = append(env, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return env, nil
}

// liteLLMVersionLine is how `litellm --version` reports: "LiteLLM: Current Version = 1.108.7".
var liteLLMVersionLine = regexp.MustCompile(`Current Version = v?([0-9][^\s]*)`)

// installedVersion runs the venv's `litellm --version` with the service's environment (so it
// fetches no cost map from GitHub) and returns the version it reports.
func (r *liteLLMRole) installedVersion(ctx context.Context) (string, error) {
	args := make([]string, 0, len(LiteLLMEnv())+2)
	for _, v := range LiteLLMEnv() {
		args = append(args, v.Name+"="+v.Value)
	}
	args = append(args, r.path(LiteLLMBinary), "--version")
	out, err := r.run.Run(ctx, "env", args...)
	if err != nil {
		return "", err
	}
	m := liteLLMVersionLine.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("no version in `litellm --version` output %q", strings.TrimSpace(string(out)))
	}
	return string(m[1]), nil
}

// LiteLLMLockSHA256 is the SHA-256 of the hash-locked requirements this agent installs LiteLLM
// from (versions.LiteLLMRequirements): what a completed install records in
// LiteLLMInstalledLock, and what `sandbox-node version` reports, so that a node's install can
// be matched to an agent.
func LiteLLMLockSHA256() string {
	return lockSHA256([]byte(versions.LiteLLMRequirements))
}

// lockSHA256 is the hex SHA-256 of a lock.
func lockSHA256(lock []byte) string {
	sum := sha256.Sum256(lock)
	return hex.EncodeToString(sum[:])
}

// venvPip runs pip for the venv: the venv's interpreter with either the pip installed in the
// venv (`python -m pip`) or, with a wheelhouse, the pip wheel of the wheelhouse run in place
// (`python <dir>/pip-X-py3-none-any.whl/pip`). A wheel is a zip file, and pip's __main__.py puts
// the wheel it runs from on sys.path for exactly this use ("This allows the usage python
// pip-*.whl/pip install pip-*.whl",
// https://github.com/pypa/pip/blob/main/src/pip/__main__.py); CPython's ensurepip runs pip
// from its bundled wheel the same way (https://github.com/python/cpython/blob/main/Lib/ensurepip/__init__.py,
// _run_pip). pip installs into the environment of the interpreter that runs it, here the venv.
type venvPip struct {
	python string
	// wheel is the pip wheel to run pip from; "" runs the venv's own pip.
	wheel string
}

// args are the interpreter's arguments that run pip with args.
func (p venvPip) args(args ...string) []string {
	if p.wheel == "" {
		return append([]string{"-m", "pip"}, args...)
	}
	return append([]string{filepath.Join(p.wheel, "pip")}, args...)
}

// installArgs are the interpreter's arguments that install the lock in reqFile: from PyPI, or
// from the wheelhouse directory findLinks alone.
func (p venvPip) installArgs(reqFile, findLinks string) []string {
	args := p.args("install", "--require-hashes", "--no-deps", "--only-binary", ":all:",
		"--no-cache-dir", "--no-input", "--disable-pip-version-check", "--progress-bar", "off")
	if findLinks != "" {
		args = append(args, "--no-index", "--find-links", findLinks)
	}
	return append(args, "-r", reqFile)
}

// lockPipPin finds the lock's pip pin with its hashes, as pip-compile --generate-hashes
// --allow-unsafe writes it: "pip==X \" and one "--hash=sha256:<hex>" line per file.
var lockPipPin = regexp.MustCompile(`(?m)^pip==([^\s\\;]+)((?:[ \t]*\\\n[ \t]*--hash=sha256:[0-9a-f]{64})+)`)

// lockHash is one hash of a lock's pin.
var lockHash = regexp.MustCompile(`--hash=sha256:([0-9a-f]{64})`)

// lockedPipWheel returns the path of the pip wheel the lock pins (pip==X) in the wheelhouse
// directory dir, after checking that its SHA-256 is one of the lock's hashes for pip==X: it is
// the pip that checks every other file against the lock, so it is checked before it runs.
// pip's wheels are all tagged py3-none-any.
func lockedPipWheel(dir string, lock []byte) (string, error) {
	m := lockPipPin.FindSubmatch(lock)
	if m == nil {
		return "", errors.New("the lock pins no pip==<version> with hashes, and an install from a wheelhouse runs the pip wheel the lock pins")
	}
	version := string(m[1])
	hashes := map[string]bool{}
	for _, h := range lockHash.FindAllSubmatch(m[2], -1) {
		hashes[string(h[1])] = true
	}
	name := "pip-" + version + "-py3-none-any.whl"
	wheel := filepath.Join(dir, name)
	f, err := os.Open(wheel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("holds no %s, the wheel of the pip==%s the lock pins", name, version)
		}
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); !hashes[sum] {
		return "", fmt.Errorf("%s has SHA-256 %s, which is not one of the lock's hashes for pip==%s", name, sum, version)
	}
	return wheel, nil
}

// stepInstall installs the pinned LiteLLM into a venv from the hash-locked requirements
// the agent embeds (versions.LiteLLMRequirements), unless a previous run installed that very
// lock and litellm reports the pinned version.
//
// pip runs with --require-hashes (every file must match a hash of the lock), --no-deps (install
// exactly the lock, never resolve: the lock is the whole closure for CPython 3.11 and 3.12 on
// x86-64 Linux, and `pip check` afterwards fails the step if it ever is not) and --only-binary
// :all: (every pinned package publishes a wheel for those Pythons, so nothing is built and no
// package's setup code runs at boot).
//
// With a wheelhouse, nothing comes from the network but the wheelhouse itself and no package
// is installed on the system: the venv is made with `python3 -m venv --without-pip` (the venv
// module is in Python's standard library; only ensurepip needs Ubuntu's python3-venv), pip runs
// from the wheelhouse's pip wheel (checked against the lock first, see lockedPipWheel) with the
// venv's interpreter, and with --no-index --find-links: PyPI is never contacted. The lock pins
// pip too, so the venv ends up with that pip installed.
func (r *liteLLMRole) stepInstall(ctx context.Context, st *runState) (string, error) {
	l := r.litellm
	want := versions.LiteLLM.Version
	lock := r.lock
	lockSum := lockSHA256(lock)
	if installed, err := os.ReadFile(r.path(LiteLLMInstalledLock)); err == nil && strings.TrimSpace(string(installed)) == lockSum {
		got, err := r.installedVersion(ctx)
		if err == nil && got == want {
			return "skipped: litellm " + want + " already installed from this lock", nil
		}
		r.log.Printf("step install: installed litellm reports %q (%v), want %s: installing", got, err, want)
	}

	venv := r.path(LiteLLMVenv)
	// From scratch: a venv left by an interrupted install or another lock is not trusted.
	if err := os.RemoveAll(venv); err != nil {
		return "", fmt.Errorf("remove the previous venv: %w", err)
	}
	pip := venvPip{python: r.path(LiteLLMPython)}
	findLinks := ""
	source := "PyPI"
	if l.Wheelhouse != nil {
		dir, cleanup, err := r.unpackWheelhouse(ctx, *l.Wheelhouse)
		if err != nil {
			return "", err
		}
		defer cleanup()
		if pip.wheel, err = lockedPipWheel(dir, lock); err != nil {
			return "", permanent(fmt.Errorf("the wheelhouse %s: %w", l.Wheelhouse.URL, err))
		}
		findLinks = dir
		source = "the wheelhouse " + l.Wheelhouse.URL + " (pip from " + filepath.Base(pip.wheel) + ")"
	}
	if err := r.createVenv(ctx, venv, pip.wheel != ""); err != nil {
		return "", err
	}
	reqFile := r.path(LiteLLMRequirementsFile)
	if _, err := writeIfChanged(reqFile, lock, 0o644); err != nil {
		return "", err
	}
	args := pip.installArgs(reqFile, findLinks)
	r.log.Printf("step install: pip install of litellm %s from %s (hash-locked, %d bytes of requirements)", want, source, len(lock))
	err := r.retry(ctx, StepInstall, "pip install", func(ctx context.Context) error {
		out, err := r.run.Run(ctx, pip.python, args...)
		switch {
		case err == nil:
			return nil
		case bytes.Contains(out, []byte("DO NOT MATCH THE HASHES")):
			// A file whose hash the lock does not list: a tampered mirror or a lock edited
			// by hand. Fetching it again changes nothing.
			return permanent(fmt.Errorf("a downloaded file does not match the lock's hashes: %w", err))
		case l.Wheelhouse != nil:
			// Local files only: a missing or unusable wheel stays missing.
			return permanent(err)
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("pip install: %w", err)
	}
	if _, err := r.run.Run(ctx, pip.python, pip.args("check")...); err != nil {
		return "", permanent(fmt.Errorf("pip check after the install: the lock is incomplete for this Python: %w", err))
	}
	got, err := r.installedVersion(ctx)
	if err != nil {
		return "", permanent(fmt.Errorf("run the installed litellm: %w", err))
	}
	if got != want {
		return "", permanent(fmt.Errorf("the installed litellm reports version %s, the lock pins %s", got, want))
	}
	if err := atomicfile.Write(r.path(LiteLLMInstalledLock), []byte(lockSum+"\n"), 0o644); err != nil {
		return "", err
	}
	// A running LiteLLM still runs the files it loaded: start must restart it.
	st.changed = true
	return fmt.Sprintf("installed litellm %s into %s from %s", want, venv, source), nil
}

// createVenv makes the venv.
//
// withoutPip (an install from a wheelhouse): `python3 -m venv --without-pip`, which needs only
// the venv module of Python's standard library. On Ubuntu 24.04 that is in libpython3.12-stdlib,
// which python3 depends on, while python3.12-venv (what python3-venv pulls in) holds only
// ensurepip (https://packages.ubuntu.com/noble/amd64/python3.12-venv/filelist,
// https://packages.ubuntu.com/noble/amd64/libpython3.12-stdlib/filelist); venv calls ensurepip
// only when it installs pip (Lib/venv/__init__.py, EnvBuilder.create: `if self.with_pip`). So
// no package is installed and a failure is final.
//
// Otherwise `python3 -m venv`. Ubuntu's python3 lacks ensurepip until python3-venv is
// installed; on a node (not in --root mode) the agent then installs it with apt-get, waiting
// for the package lock that cloud-init or unattended-upgrades may hold at boot, and refreshing
// the package lists when the first try fails: that needs Ubuntu's archive, which an air-gapped
// node cannot reach (it installs from a wheelhouse).
func (r *liteLLMRole) createVenv(ctx context.Context, venv string, withoutPip bool) error {
	if withoutPip {
		if _, err := r.run.Run(ctx, "python3", "-m", "venv", "--without-pip", venv); err != nil {
			return permanent(fmt.Errorf("create the venv (python3 -m venv --without-pip, which needs only python3's standard library): %w", err))
		}
		return nil
	}
	_, err := r.run.Run(ctx, "python3", "-m", "venv", venv)
	if err == nil {
		return nil
	}
	if r.rootMode() {
		return permanent(fmt.Errorf("create the venv (python3 -m venv needs python3-venv; --root mode installs no package): %w", err))
	}
	r.log.Printf("step install: python3 -m venv failed (%v): installing python3-venv", err)
	tries := 0
	if err := r.retry(ctx, StepInstall, "apt-get install python3-venv", func(ctx context.Context) error {
		tries++
		if tries > 1 {
			if _, err := r.run.Run(ctx, "apt-get", "-o", "DPkg::Lock::Timeout=120", "update", "-q"); err != nil {
				return err
			}
		}
		_, err := r.run.Run(ctx, "apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "-q", "python3-venv")
		return err
	}); err != nil {
		return fmt.Errorf("install python3-venv: %w", err)
	}
	if err := os.RemoveAll(venv); err != nil {
		return fmt.Errorf("remove the failed venv: %w", err)
	}
	if _, err := r.run.Run(ctx, "python3", "-m", "venv", venv); err != nil {
		return permanent(fmt.Errorf("create the venv: %w", err))
	}
	return nil
}

// unpackWheelhouse downloads the wheelhouse (checking its SHA-256) and extracts it into a fresh
// directory under CacheDir, which cleanup removes.
func (r *liteLLMRole) unpackWheelhouse(ctx context.Context, art Artifact) (string, func(), error) {
	file, err := r.fetch(ctx, StepInstall, "litellm wheelhouse", art)
	if err != nil {
		return "", nil, err
	}
	defer os.Remove(file)
	dir, err := os.MkdirTemp(r.path(CacheDir), "wheelhouse-")
	if err != nil {
		return "", nil, fmt.Errorf("create the wheelhouse directory: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	f, err := os.Open(file)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	defer f.Close()
	if err := ExtractTarZst(f, dir); err != nil {
		cleanup()
		return "", nil, permanent(fmt.Errorf("extract %s: %w", art.URL, err))
	}
	wheels, _ := filepath.Glob(filepath.Join(dir, "*.whl"))
	if len(wheels) == 0 {
		cleanup()
		return "", nil, permanent(fmt.Errorf("the wheelhouse %s holds no .whl file at its top level", art.URL))
	}
	r.log.Printf("step install: wheelhouse: %d wheels in %s", len(wheels), dir)
	return dir, cleanup, nil
}

// stepUser creates the litellm system user: no home (LiteLLM writes nothing), no login.
// In a root other than / it creates nothing: tests cannot create users.
func (r *liteLLMRole) stepUser(ctx context.Context, _ *runState) (string, error) {
	if r.rootMode() {
		return "skipped: no system user in --root mode", nil
	}
	return r.ensureSystemUser(ctx, LiteLLMUser, "/nonexistent")
}

// masterKeyChars are the characters a master key may hold after "sk-": enough for any
// generated key (the KeyStore's are [A-Za-z0-9]), and none that systemd's environment-file
// parser would read as quoting, escaping, a comment or whitespace.
var masterKeyChars = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]+$`)

// checkMasterKey says what is wrong with a master key, or "". It never quotes the key.
func checkMasterKey(key string) string {
	if !strings.HasPrefix(key, "sk-") {
		return "does not start with sk-, which LiteLLM requires of a master key"
	}
	if !masterKeyChars.MatchString(strings.TrimPrefix(key, "sk-")) {
		return "holds no character after sk-, or one outside [A-Za-z0-9._~+/=-] that an environment file cannot carry unquoted"
	}
	return ""
}

// secretGetter returns the SecretGetter, building the default one on first use.
func (r *liteLLMRole) secretGetter(ctx context.Context) (SecretGetter, error) {
	if r.secrets != nil {
		return r.secrets, nil
	}
	s, err := NewAWSSecrets(ctx, r.cfg.Region)
	if err != nil {
		return nil, err
	}
	r.secrets = s
	return s, nil
}

// stepSecret reads the master key from Secrets Manager (on the local platform, from its
// owner-only file) and writes it, as LITELLM_MASTER_KEY,
// into LiteLLMEnvFile: mode 0600, owned by root (the agent runs as root), written through a
// temporary file created 0600, so the key is never readable by another user, even briefly.
// systemd reads the file as root before it drops to the litellm user. The key is never logged.
func (r *liteLLMRole) stepSecret(ctx context.Context, st *runState) (string, error) {
	arn := r.litellm.MasterKeySecretArn
	if r.cfg.Local() {
		arn = r.litellm.MasterKeyFile
	}
	getter, err := r.secretGetter(ctx)
	if err != nil {
		return "", err
	}
	var key string
	if err := r.retry(ctx, StepSecret, "GetSecretValue", func(ctx context.Context) error {
		v, err := getter.GetSecretString(ctx, arn)
		key = v
		return err
	}); err != nil {
		return "", fmt.Errorf("read the master key: %w", err)
	}
	if problem := checkMasterKey(key); problem != "" {
		return "", permanent(fmt.Errorf("the master key in %s %s", arn, problem))
	}
	var b bytes.Buffer
	b.WriteString("# LiteLLM's master key, from " + arn + ".\n")
	b.WriteString("# Written by sandbox-node on every boot; root only. Rotate the secret, not this file.\n")
	b.WriteString(MasterKeyVar + "=" + key + "\n")
	cache, err := r.cacheAuthTokenLines(ctx, getter)
	if err != nil {
		return "", err
	}
	b.WriteString(cache)
	file := r.path(LiteLLMEnvFile)
	changed, err := writeIfChanged(file, b.Bytes(), 0o600)
	if err != nil {
		return "", err
	}
	if !changed {
		return "master key unchanged in " + file, nil
	}
	st.changed = true
	return fmt.Sprintf("wrote %s (mode 0600) with %s from %s", file, MasterKeyVar, arn), nil
}

// stepConfigure writes config.yaml, the custom-auth, error and usage modules (and their settings)
// and the unit, noting whether any changed.
func (r *liteLLMRole) stepConfigure(_ context.Context, st *runState) (string, error) {
	config, err := RenderLiteLLMConfig(r.litellm)
	if err != nil {
		return "", err
	}
	unit, err := RenderLiteLLMUnit(r.cfg, DefaultLiteLLMUnitPaths())
	if err != nil {
		return "", err
	}
	authSettings, err := RenderLiteLLMAuthSettings(r.cfg)
	if err != nil {
		return "", err
	}
	usageSettings, err := RenderLiteLLMUsageSettings(r.cfg)
	if err != nil {
		return "", err
	}
	files := []fileContent{
		{r.path(LiteLLMConfigFile), config, 0o644},
		{r.path(LiteLLMAuthFile), []byte(LiteLLMAuthModule), 0o644},
		{r.path(LiteLLMErrorsFile), []byte(LiteLLMErrorsModule), 0o644},
		{r.path(LiteLLMUsageFile), []byte(LiteLLMUsageModule), 0o644},
		{r.path(LiteLLMUnitFile), unit, 0o644},
	}
	if authSettings != nil {
		files = append(files, fileContent{r.path(LiteLLMAuthSettingsFile), authSettings, 0o644})
	}
	if usageSettings != nil {
		files = append(files, fileContent{r.path(LiteLLMUsageSettingsFile), usageSettings, 0o644})
	}
	written, err := writeAll(files)
	if err != nil {
		return "", err
	}
	// Without a registry the auth module accepts the master key; a settings file left from
	// an earlier config would make it refuse it. Without usage metrics, a usage settings
	// file left behind would keep publishing.
	for _, f := range []struct {
		path    string
		current []byte
	}{{LiteLLMAuthSettingsFile, authSettings}, {LiteLLMUsageSettingsFile, usageSettings}} {
		if f.current != nil {
			continue
		}
		switch err := os.Remove(r.path(f.path)); {
		case err == nil:
			written = append(written, r.path(f.path)+" (removed)")
		case !errors.Is(err, fs.ErrNotExist):
			return "", err
		}
	}
	if len(written) == 0 {
		return "config and unit unchanged", nil
	}
	st.changed = true
	return "wrote " + strings.Join(written, ", "), nil
}

// stepStart starts LiteLLM and waits until GET /health/liveliness answers 200.
func (r *liteLLMRole) stepStart(ctx context.Context, st *runState) (string, error) {
	if err := r.svc.start(ctx, st.changed); err != nil {
		return "", err
	}
	if _, err := r.waitHealthy(ctx, r.svc, "litellm", "GET "+LiteLLMHealthPath, r.live); err != nil {
		return "", err
	}
	return fmt.Sprintf("litellm answers GET %s on %s", LiteLLMHealthPath, r.base()), nil
}
