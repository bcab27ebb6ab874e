package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// stepGPU checks that the driver sees a GPU. nvidia-smi failing right after boot is the
// driver still loading (the boot race of ollama#7669), so failures are retried within the
// step's bounds before the node gives up.
func (a *Agent) stepGPU(ctx context.Context, _ *runState) (string, error) {
	if !a.cfg.Ollama.GPU {
		return "skipped: CPU-only pool", nil
	}
	var gpus []string
	err := a.retry(ctx, StepGPU, "nvidia-smi", func(ctx context.Context) error {
		out, err := a.run.Run(ctx, "nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader")
		if err != nil {
			return err
		}
		gpus = nonEmptyLines(out)
		if len(gpus) == 0 {
			return errors.New("nvidia-smi lists no GPU")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("verify the GPU: %w", err)
	}
	return fmt.Sprintf("%d GPU(s): %s", len(gpus), strings.Join(gpus, "; ")), nil
}

// parseOllamaVersion reads the version from `ollama --version`, which prints "ollama version
// is X", or, when no server answers, "Warning: client version is X"; when a server of
// another version answers it prints both, and the client's is the installed one.
func parseOllamaVersion(out []byte) (string, error) {
	s := string(out)
	for _, marker := range []string{"client version is ", "version is "} {
		if i := strings.LastIndex(s, marker); i >= 0 {
			if f := strings.Fields(s[i+len(marker):]); len(f) > 0 {
				return strings.TrimPrefix(f[0], "v"), nil
			}
		}
	}
	return "", fmt.Errorf("no version in `ollama --version` output %q", strings.TrimSpace(s))
}

func (a *Agent) installedVersion(ctx context.Context) (string, error) {
	out, err := a.run.Run(ctx, a.path(OllamaBinary), "--version")
	if err != nil {
		return "", err
	}
	return parseOllamaVersion(out)
}

// stepInstall installs the pinned Ollama release unless that version is already installed.
// A new release makes start restart Ollama, which would otherwise keep running the old one.
func (a *Agent) stepInstall(ctx context.Context, st *runState) (string, error) {
	want := strings.TrimPrefix(a.cfg.Ollama.Version, "v")
	bin := a.path(OllamaBinary)
	if _, err := os.Stat(bin); err == nil {
		got, err := a.installedVersion(ctx)
		if err == nil && got == want {
			return "skipped: ollama " + want + " already installed", nil
		}
		a.log.Printf("step install: installed ollama reports %q (%v), want %s: installing", got, err, want)
	}
	file, err := a.fetch(ctx, StepInstall, "ollama "+want, a.cfg.Ollama.Release)
	if err != nil {
		return "", err
	}
	defer os.Remove(file)
	// Remove the previous release's libraries first, as Ollama's own install script does:
	// stale GPU runners from another version must not be picked up.
	if err := os.RemoveAll(a.path(filepath.Join(OllamaPrefix, "lib", "ollama"))); err != nil {
		return "", fmt.Errorf("remove the previous release's libraries: %w", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := ExtractTarZst(f, a.path(OllamaPrefix)); err != nil {
		return "", fmt.Errorf("extract %s: %w", a.cfg.Ollama.Release.URL, err)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("the release has no bin/ollama: %w", err)
	}
	got, err := a.installedVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("run the installed ollama: %w", err)
	}
	if got != want {
		return "", fmt.Errorf("the installed ollama reports version %s, the config pins %s", got, want)
	}
	st.changed = true
	return fmt.Sprintf("installed ollama %s into %s", want, a.path(OllamaPrefix)), nil
}

// stepUser creates the ollama system user and its home. In a root other than / it only
// creates the directories: tests cannot create users.
func (a *Agent) stepUser(ctx context.Context, _ *runState) (string, error) {
	if a.rootMode() {
		models := a.path(OllamaModelsDir)
		if err := os.MkdirAll(models, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", models, err)
		}
		return "skipped: no system user in --root mode (created " + models + ")", nil
	}
	note, err := a.ensureSystemUser(ctx, "ollama", OllamaHome)
	if err != nil {
		return "", err
	}
	// useradd --system does not create the home; install -d creates it and the models
	// directory owned by ollama, and fixes the owner if they already exist.
	if _, err := a.run.Run(ctx, "install", "-d", "-o", "ollama", "-g", "ollama", "-m", "0755", OllamaHome, OllamaModelsDir); err != nil {
		return "", fmt.Errorf("create the ollama home: %w", err)
	}
	return note, nil
}

// ensureSystemUser creates a system user and its group, with home as its home directory (not
// created) and no login shell, unless getent finds the user. It returns a note for the log.
func (a *Agent) ensureSystemUser(ctx context.Context, user, home string) (string, error) {
	if _, err := a.run.Run(ctx, "getent", "passwd", user); err == nil {
		return "user " + user + " exists", nil
	}
	if _, err := a.run.Run(ctx, "useradd", "--system", "--user-group", "--home-dir", home,
		"--shell", "/usr/sbin/nologin", user); err != nil {
		return "", fmt.Errorf("create user %s: %w", user, err)
	}
	return "created system user " + user, nil
}

// stepConfigure writes Ollama's environment file and unit, noting whether either changed.
func (a *Agent) stepConfigure(_ context.Context, st *runState) (string, error) {
	env, err := RenderEnv(a.cfg)
	if err != nil {
		return "", err
	}
	unit, err := RenderUnit(a.cfg, DefaultUnitPaths())
	if err != nil {
		return "", err
	}
	written, err := writeAll([]fileContent{{a.path(OllamaEnvFile), env, 0o644}, {a.path(OllamaUnitFile), unit, 0o644}})
	if err != nil {
		return "", err
	}
	if len(written) == 0 {
		return "unit and environment unchanged", nil
	}
	st.changed = true
	return "wrote " + strings.Join(written, ", "), nil
}

// fileContent is a file a step writes.
type fileContent struct {
	path string
	data []byte
	perm os.FileMode
}

// writeAll writes each file unless it already holds exactly that, and returns the paths it
// wrote.
func writeAll(files []fileContent) ([]string, error) {
	var written []string
	for _, f := range files {
		changed, err := writeIfChanged(f.path, f.data, f.perm)
		if err != nil {
			return nil, err
		}
		if changed {
			written = append(written, f.path)
		}
	}
	return written, nil
}

// writeIfChanged writes data to file (atomically, with mode perm) unless it already holds
// exactly that, and reports whether it wrote.
func writeIfChanged(file string, data []byte, perm os.FileMode) (bool, error) {
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, data) {
		if fi, err := os.Stat(file); err == nil && fi.Mode().Perm() == perm {
			return false, nil
		}
	}
	if err := writeFileAtomic(file, data, perm); err != nil {
		return false, err
	}
	return true, nil
}

// writeFileAtomic writes through a temporary file in the same directory and a rename, so a
// reader (systemd, a rebooting node) never sees half a file.
func writeFileAtomic(file string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// stepStart starts Ollama and waits until GET /api/version answers 200.
func (a *Agent) stepStart(ctx context.Context, st *runState) (string, error) {
	if err := a.svc.start(ctx, st.changed); err != nil {
		return "", err
	}
	v, err := a.waitHealthy(ctx, "ollama", "GET /api/version", a.api.version)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("ollama %s answers on %s", v, a.api.base), nil
}

// waitHealthy polls probe (what describes it, e.g. "GET /api/version") until it succeeds, the
// step's context ends, or a server the agent started itself exits.
func (a *Agent) waitHealthy(ctx context.Context, name, what string, probe func(context.Context) (string, error)) (string, error) {
	var last error
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := probe(rctx)
		cancel()
		if err == nil {
			return v, nil
		}
		// A request cut short by the deadline says nothing new; keep the answer before it.
		if ctx.Err() == nil || last == nil {
			last = err
		}
		timer := time.NewTimer(a.poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", fmt.Errorf("%s never answered %s with 200 (last: %v; see %s): %w", name, what, last, a.svc.logHint(), ctx.Err())
		case err := <-a.svc.exited():
			timer.Stop()
			return "", permanent(fmt.Errorf("%s exited before it answered: %v (see %s)", name, err, a.svc.logHint()))
		case <-timer.C:
		}
	}
}

// stepModels makes every model present: skipped when GET /api/tags lists it, created from its
// GGUF when it has a source, pulled from the registry otherwise.
func (a *Agent) stepModels(ctx context.Context, _ *runState) (string, error) {
	var present map[string]bool
	if err := a.retry(ctx, StepModels, "list models", func(ctx context.Context) error {
		var err error
		present, err = a.api.tags(ctx)
		return err
	}); err != nil {
		return "", err
	}
	var have, pulled, created int
	for _, m := range a.cfg.Ollama.Models {
		if present[canonicalModel(m.Name)] {
			a.log.Printf("step models: %s already present", m.Name)
			have++
			continue
		}
		if m.Source != nil {
			if err := a.createModel(ctx, m); err != nil {
				return "", fmt.Errorf("model %s: %w", m.Name, err)
			}
			created++
			continue
		}
		if err := a.pullModel(ctx, m); err != nil {
			return "", fmt.Errorf("model %s: %w", m.Name, err)
		}
		pulled++
	}
	return fmt.Sprintf("%d already present, %d pulled, %d created", have, pulled, created), nil
}

func (a *Agent) statusLogger(name string) func(string) {
	return func(status string) { a.log.Printf("step models: %s: %s", name, status) }
}

// pullModel pulls from the registry. Any pull error is treated as transient (a registry or
// network hiccup) and retried within the policy's bounds.
func (a *Agent) pullModel(ctx context.Context, m Model) error {
	return a.retry(ctx, StepModels, "pull "+m.Name, func(ctx context.Context) error {
		err := a.api.pull(ctx, m.Name, a.statusLogger(m.Name))
		var apiErr *apiError
		if errors.As(err, &apiErr) {
			// Even a 4xx from /api/pull is worth another try: Ollama reports registry
			// trouble that way, and the attempts are bounded.
			return apiErr
		}
		return err
	})
}

// createModel creates a model from the mirror's GGUF: upload the blob unless Ollama already
// holds it (HEAD first, so a re-run downloads nothing), then POST /api/create.
func (a *Agent) createModel(ctx context.Context, m Model) error {
	digest := "sha256:" + m.Source.SHA256
	var has bool
	if err := a.retry(ctx, StepModels, "check blob "+digest, func(ctx context.Context) error {
		var err error
		has, err = a.api.hasBlob(ctx, digest)
		return err
	}); err != nil {
		return err
	}
	if has {
		a.log.Printf("step models: %s: blob %s already uploaded", m.Name, digest)
	} else {
		file, err := a.fetch(ctx, StepModels, m.Name+" GGUF", *m.Source)
		if err != nil {
			return err
		}
		defer os.Remove(file)
		if err := a.retry(ctx, StepModels, "upload blob "+digest, func(ctx context.Context) error {
			return a.api.pushBlob(ctx, digest, file)
		}); err != nil {
			return err
		}
	}
	return a.retry(ctx, StepModels, "create "+m.Name, func(ctx context.Context) error {
		err := a.api.create(ctx, m.Name, digest, a.statusLogger(m.Name))
		var apiErr *apiError
		if errors.As(err, &apiErr) && apiErr.Status == 0 {
			// Ollama read the request and refused the model (a bad GGUF, say): retrying
			// the same blob gives the same answer.
			return permanent(err)
		}
		return err
	})
}

// stepPreload loads every model with keep_alive -1 so the first request does not pay for it.
func (a *Agent) stepPreload(ctx context.Context, _ *runState) (string, error) {
	for _, m := range a.cfg.Ollama.Models {
		start := time.Now()
		if err := a.retry(ctx, StepPreload, "load "+m.Name, func(ctx context.Context) error {
			return a.api.preload(ctx, m.Name)
		}); err != nil {
			return "", fmt.Errorf("model %s: %w", m.Name, err)
		}
		a.log.Printf("step preload: %s loaded in %s", m.Name, time.Since(start).Round(time.Millisecond))
	}
	return fmt.Sprintf("%d model(s) loaded with keep_alive -1", len(a.cfg.Ollama.Models)), nil
}

// stepResident checks GET /api/ps: every model loaded and, on GPU pools, in GPU memory. A
// model on the CPU means Ollama started before the GPU was usable; such a node would answer,
// slowly, so it must not take traffic.
func (a *Agent) stepResident(ctx context.Context, _ *runState) (string, error) {
	var loaded map[string]runningModel
	if err := a.retry(ctx, StepResident, "list loaded models", func(ctx context.Context) error {
		var err error
		loaded, err = a.api.ps(ctx)
		return err
	}); err != nil {
		return "", err
	}
	var notes []string
	for _, m := range a.cfg.Ollama.Models {
		r, ok := loaded[canonicalModel(m.Name)]
		if !ok {
			names := make([]string, 0, len(loaded))
			for n := range loaded {
				names = append(names, n)
			}
			sort.Strings(names)
			return "", fmt.Errorf("model %s is not loaded (GET /api/ps lists [%s])", m.Name, strings.Join(names, ", "))
		}
		if a.cfg.Ollama.GPU && r.SizeVRAM <= 0 {
			return "", fmt.Errorf("model %s is loaded on CPU, not GPU: size_vram %d", m.Name, r.SizeVRAM)
		}
		if a.cfg.Ollama.GPU && r.SizeVRAM < r.Size {
			// Resident, but partly in system memory: it serves, slowly. Worth a line in the
			// journal when someone wonders why this pool is slow.
			a.log.Printf("step resident: warning: model %s is only partly in GPU memory (%d of %d MiB)", m.Name, r.SizeVRAM>>20, r.Size>>20)
		}
		notes = append(notes, fmt.Sprintf("%s (%d MiB, %d MiB in VRAM)", m.Name, r.Size>>20, r.SizeVRAM>>20))
	}
	return strings.Join(notes, ", "), nil
}

// stepLifecycle sends CONTINUE. No pending action (a reboot, a re-run) is success.
func (a *Agent) stepLifecycle(ctx context.Context, _ *runState) (string, error) {
	err := a.retry(ctx, StepLifecycle, "CompleteLifecycleAction CONTINUE", func(ctx context.Context) error {
		err := a.lifecycle.Complete(ctx, ResultContinue)
		if errors.Is(err, ErrNoLifecycleAction) {
			return permanent(err)
		}
		return err
	})
	if errors.Is(err, ErrNoLifecycleAction) {
		a.log.Printf("step lifecycle: %v", err)
		return "no active lifecycle action (a reboot or a re-run, not a launch): nothing to complete", nil
	}
	if err != nil {
		return "", err
	}
	return "CONTINUE sent: the instance goes InService", nil
}
