package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/atomicfile"
	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
)

// ollamaRole serves models with Ollama on a pool node: it verifies the GPU, installs the pinned
// release, starts Ollama, fetches and preloads the models and proves them resident.
type ollamaRole struct {
	*Agent
	ollama *OllamaConfig
	// api is the local Ollama's API.
	api *ollamaAPI
	svc service
}

// newOllamaRole sets up the ollama role: the local API and the service.
func newOllamaRole(a *Agent, o *OllamaConfig, noSystemd bool) *ollamaRole {
	r := &ollamaRole{Agent: a, ollama: o}
	r.api = &ollamaAPI{base: "http://127.0.0.1:" + strconv.Itoa(o.ListenPort()), http: a.local}
	if !noSystemd {
		r.svc = systemdService{run: a.run, unit: OllamaUnit}
		return r
	}
	r.svc = &processService{
		name:    "ollama",
		bin:     a.path(OllamaBinary),
		args:    []string{"serve"},
		match:   "serve",
		env:     func() ([]string, error) { return r.processEnv(), nil },
		dir:     a.path(OllamaHome),
		logFile: a.path(OllamaLogFile),
		pidFile: a.path(OllamaPidFile),
		log:     a.log,
		serving: func(ctx context.Context) error {
			_, err := r.api.version(ctx)
			return err
		},
	}
	return r
}

// Name is RoleOllama.
func (r *ollamaRole) Name() string { return RoleOllama }

// Summary names the release, the kind of pool and the models.
func (r *ollamaRole) Summary() string {
	kind := "CPU"
	if r.ollama.GPU {
		kind = "GPU"
	}
	return fmt.Sprintf("%s pool, ollama %s, %d model(s)", kind, r.ollama.Version, len(r.ollama.Models))
}

// Steps are gpu, install, user, configure, start, models, preload, resident.
func (r *ollamaRole) Steps() []Step {
	return []Step{
		{Name: StepGPU, run: r.stepGPU},
		{Name: StepInstall, run: r.stepInstall},
		{Name: StepUser, run: r.stepUser},
		{Name: StepConfigure, run: r.stepConfigure},
		{Name: StepStart, run: r.stepStart},
		{Name: StepModels, run: r.stepModels},
		{Name: StepPreload, run: r.stepPreload},
		{Name: StepResident, run: r.stepResident},
	}
}

// processEnv is the environment of an Ollama started without systemd: the unit's
// environment file, with the models directory and HOME (where Ollama writes its key) under the
// root, and, in a root other than /, a loopback listener: that is a test or a workstation, and
// no security group guards it.
func (r *ollamaRole) processEnv() []string {
	var env []string
	for _, v := range OllamaEnv(r.ollama) {
		value := v.Value
		switch v.Name {
		case "OLLAMA_MODELS":
			value = r.path(OllamaModelsDir)
		case "OLLAMA_HOST":
			if r.rootMode() {
				value = "127.0.0.1:" + strconv.Itoa(r.ollama.ListenPort())
			}
		}
		env = append(env, v.Name+"="+value)
	}
	return append(env, "HOME="+r.path(OllamaHome), "PATH="+searchPath())
}

// stepGPU checks that the driver sees a GPU. nvidia-smi failing right after boot is the
// driver still loading (the boot race of ollama#7669), so failures are retried within the
// step's bounds before the node gives up.
func (r *ollamaRole) stepGPU(ctx context.Context, _ *runState) (string, error) {
	if !r.ollama.GPU {
		return "skipped: CPU-only pool", nil
	}
	var gpus []string
	err := r.retry(ctx, StepGPU, "nvidia-smi", func(ctx context.Context) error {
		out, err := r.run.Run(ctx, "nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader")
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

func (r *ollamaRole) installedVersion(ctx context.Context) (string, error) {
	out, err := r.run.Run(ctx, r.path(OllamaBinary), "--version")
	if err != nil {
		return "", err
	}
	return parseOllamaVersion(out)
}

// stepInstall installs the pinned Ollama release unless that version is already installed.
// A new release makes start restart Ollama, which would otherwise keep running the old one.
func (r *ollamaRole) stepInstall(ctx context.Context, st *runState) (string, error) {
	want := strings.TrimPrefix(r.ollama.Version, "v")
	bin := r.path(OllamaBinary)
	if _, err := os.Stat(bin); err == nil {
		got, err := r.installedVersion(ctx)
		if err == nil && got == want {
			return "skipped: ollama " + want + " already installed", nil
		}
		r.log.Printf("step install: installed ollama reports %q (%v), want %s: installing", got, err, want)
	}
	file, err := r.fetch(ctx, StepInstall, "ollama "+want, r.ollama.Release)
	if err != nil {
		return "", err
	}
	defer os.Remove(file)
	// Remove the previous release's libraries first, as Ollama's own install script does:
	// stale GPU runners from another version must not be picked up.
	if err := os.RemoveAll(r.path(filepath.Join(OllamaPrefix, "lib", "ollama"))); err != nil {
		return "", fmt.Errorf("remove the previous release's libraries: %w", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	skipped, err := ExtractOllamaRelease(f, r.path(OllamaPrefix))
	if err != nil {
		return "", fmt.Errorf("extract %s: %w", r.ollama.Release.URL, err)
	}
	if len(skipped) > 0 {
		r.log.Printf("step install: skipped %d archive entries outside bin/ollama and lib/ollama/: %s", len(skipped), strings.Join(skipped, ", "))
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("the release has no bin/ollama: %w", err)
	}
	got, err := r.installedVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("run the installed ollama: %w", err)
	}
	if got != want {
		return "", fmt.Errorf("the installed ollama reports version %s, the config pins %s", got, want)
	}
	st.changed = true
	return fmt.Sprintf("installed ollama %s into %s", want, r.path(OllamaPrefix)), nil
}

// stepUser creates the ollama system user and its home. In a root other than / it only
// creates the directories: tests cannot create users.
func (r *ollamaRole) stepUser(ctx context.Context, _ *runState) (string, error) {
	if r.rootMode() {
		models := r.path(OllamaModelsDir)
		if err := os.MkdirAll(models, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", models, err)
		}
		return "skipped: no system user in --root mode (created " + models + ")", nil
	}
	note, err := r.ensureSystemUser(ctx, "ollama", OllamaHome)
	if err != nil {
		return "", err
	}
	// useradd --system does not create the home; install -d creates it and the models
	// directory owned by ollama, and fixes the owner if they already exist.
	if _, err := r.run.Run(ctx, "install", "-d", "-o", "ollama", "-g", "ollama", "-m", "0755", OllamaHome, OllamaModelsDir); err != nil {
		return "", fmt.Errorf("create the ollama home: %w", err)
	}
	return note, nil
}

// stepConfigure writes Ollama's environment file and unit, noting whether either changed.
func (r *ollamaRole) stepConfigure(_ context.Context, st *runState) (string, error) {
	env, err := RenderEnv(r.cfg)
	if err != nil {
		return "", err
	}
	unit, err := RenderUnit(r.cfg, DefaultUnitPaths())
	if err != nil {
		return "", err
	}
	written, err := writeAll([]fileContent{{r.path(OllamaEnvFile), env, 0o644}, {r.path(OllamaUnitFile), unit, 0o644}})
	if err != nil {
		return "", err
	}
	if len(written) == 0 {
		return "unit and environment unchanged", nil
	}
	st.changed = true
	return "wrote " + strings.Join(written, ", "), nil
}

// stepStart starts Ollama and waits until GET /api/version answers 200.
func (r *ollamaRole) stepStart(ctx context.Context, st *runState) (string, error) {
	if err := r.svc.start(ctx, st.changed); err != nil {
		return "", err
	}
	v, err := r.waitHealthy(ctx, r.svc, "ollama", "GET /api/version", r.api.version)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("ollama %s answers on %s", v, r.api.base), nil
}

// stepModels makes every model present: skipped when GET /api/tags lists it, copied as Ollama
// stores it when it has a mirror, created from its GGUF when it has a source, pulled from the
// registry otherwise.
func (r *ollamaRole) stepModels(ctx context.Context, _ *runState) (string, error) {
	var present map[string]bool
	if err := r.retry(ctx, StepModels, "list models", func(ctx context.Context) error {
		var err error
		present, err = r.api.tags(ctx)
		return err
	}); err != nil {
		return "", err
	}
	var have, pulled, created, copied int
	for _, m := range r.ollama.Models {
		if present[canonicalModel(m.Name)] {
			r.log.Printf("step models: %s already present", m.Name)
			have++
			continue
		}
		if m.Mirror != nil {
			if err := r.copyModel(ctx, m); err != nil {
				return "", fmt.Errorf("model %s: %w", m.Name, err)
			}
			copied++
			continue
		}
		if m.Source != nil {
			if err := r.createModel(ctx, m); err != nil {
				return "", fmt.Errorf("model %s: %w", m.Name, err)
			}
			created++
			continue
		}
		if err := r.pullModel(ctx, m); err != nil {
			return "", fmt.Errorf("model %s: %w", m.Name, err)
		}
		pulled++
	}
	if copied > 0 {
		// Ollama lists a model once its manifest is on disk; asking proves the copies are
		// models it can read, before preload asks it to load them.
		present, err := r.api.tags(ctx)
		if err != nil {
			return "", fmt.Errorf("list models after copying them from the mirror: %w", err)
		}
		for _, m := range r.ollama.Models {
			if m.Mirror != nil && !present[canonicalModel(m.Name)] {
				return "", permanent(fmt.Errorf("model %s: copied from the mirror, but Ollama does not list it", m.Name))
			}
		}
	}
	return fmt.Sprintf("%d already present, %d pulled, %d created, %d copied from the mirror", have, pulled, created, copied), nil
}

// copyModel copies a mirrored model into OLLAMA_MODELS as Ollama stores it: every blob the
// manifest names, unless a file of that digest is already there (hashed again before it is
// trusted), then the manifest, last, so that Ollama never lists a model whose blobs are
// missing. Each download is checked against its digest as it streams and renamed into place
// only then.
func (r *ollamaRole) copyModel(ctx context.Context, m Model) error {
	name, err := ollamastore.ParseName(m.Name)
	if err != nil {
		return permanent(err)
	}
	file, err := r.fetch(ctx, StepModels, m.Name+" manifest", m.Mirror.Manifest)
	if err != nil {
		return err
	}
	defer os.Remove(file)
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	manifest, err := ollamastore.ParseManifest(data)
	if err != nil {
		return permanent(err)
	}
	models := r.path(OllamaModelsDir)
	blobs := filepath.Join(models, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", blobs, err)
	}
	var kept, copied int
	for _, l := range manifest.Blobs() {
		hex, _ := ollamastore.DigestHex(l.Digest) // ParseManifest checked every digest
		dst := filepath.Join(models, filepath.FromSlash(ollamastore.BlobPath(hex)))
		art := Artifact{URL: m.Mirror.Blobs + ollamastore.BlobFile(hex), SHA256: hex}
		if err := VerifyFile(dst, art); err == nil {
			kept++
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			r.log.Printf("step models: %s: %v: downloading it again", m.Name, err)
		}
		tmp, err := r.fetchInto(ctx, StepModels, fmt.Sprintf("%s blob %s (%d bytes)", m.Name, l.Digest, l.Size), art, blobs)
		if err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("place blob %s: %w", l.Digest, err)
		}
		if err := os.Chmod(dst, 0o644); err != nil {
			return err
		}
		copied++
	}
	path := filepath.Join(models, filepath.FromSlash(name.ManifestPath()))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return err
	}
	if !r.rootMode() {
		// Ollama runs as ollama and owns its store (it prunes and replaces files there).
		if _, err := r.run.Run(ctx, "chown", "-R", "ollama:ollama", OllamaModelsDir); err != nil {
			return fmt.Errorf("give the copied model to the ollama user: %w", err)
		}
	}
	r.log.Printf("step models: %s: copied from the mirror (%d blob(s) downloaded, %d already present, %d bytes in all)", m.Name, copied, kept, manifest.Size())
	return nil
}

// statusLogger logs each new status of a pull or create of model name and, while a pull
// downloads a layer, its progress.
func (r *ollamaRole) statusLogger(name string) func(streamStatus) {
	var p *Progress
	return func(s streamStatus) {
		what := "step models: " + name + ": " + s.Status
		if p == nil || p.What != what {
			r.log.Printf("%s", what)
			p = &Progress{Printf: r.log.Printf, What: what, Every: 30 * time.Second}
		}
		if s.Total > 0 {
			// A pull's layer download: its percentage as it goes, as `ollama pull` shows it.
			p.Total = s.Total
			p.Set(s.Completed)
		}
	}
}

// pullModel pulls from the registry. Any pull error is treated as transient (a registry or
// network hiccup) and retried within the policy's bounds.
func (r *ollamaRole) pullModel(ctx context.Context, m Model) error {
	return r.retry(ctx, StepModels, "pull "+m.Name, func(ctx context.Context) error {
		err := r.api.pull(ctx, m.Name, r.statusLogger(m.Name))
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
func (r *ollamaRole) createModel(ctx context.Context, m Model) error {
	digest := "sha256:" + m.Source.SHA256
	var has bool
	if err := r.retry(ctx, StepModels, "check blob "+digest, func(ctx context.Context) error {
		var err error
		has, err = r.api.hasBlob(ctx, digest)
		return err
	}); err != nil {
		return err
	}
	if has {
		r.log.Printf("step models: %s: blob %s already uploaded", m.Name, digest)
	} else {
		file, err := r.fetch(ctx, StepModels, m.Name+" GGUF", *m.Source)
		if err != nil {
			return err
		}
		defer os.Remove(file)
		if err := r.retry(ctx, StepModels, "upload blob "+digest, func(ctx context.Context) error {
			return r.api.pushBlob(ctx, digest, file)
		}); err != nil {
			return err
		}
	}
	return r.retry(ctx, StepModels, "create "+m.Name, func(ctx context.Context) error {
		err := r.api.create(ctx, m.Name, digest, r.statusLogger(m.Name))
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
func (r *ollamaRole) stepPreload(ctx context.Context, _ *runState) (string, error) {
	for _, m := range r.ollama.Models {
		start := time.Now()
		if err := r.retry(ctx, StepPreload, "load "+m.Name, func(ctx context.Context) error {
			return r.api.preload(ctx, m)
		}); err != nil {
			return "", fmt.Errorf("model %s: %w", m.Name, err)
		}
		r.log.Printf("step preload: %s loaded in %s", m.Name, time.Since(start).Round(time.Millisecond))
	}
	return fmt.Sprintf("%d model(s) loaded with keep_alive -1", len(r.ollama.Models)), nil
}

// stepResident checks GET /api/ps: every model loaded and, on GPU pools, in GPU memory. A
// model on the CPU means Ollama started before the GPU was usable; such a node would answer,
// slowly, so it must not take traffic.
func (r *ollamaRole) stepResident(ctx context.Context, _ *runState) (string, error) {
	var loaded map[string]runningModel
	if err := r.retry(ctx, StepResident, "list loaded models", func(ctx context.Context) error {
		var err error
		loaded, err = r.api.ps(ctx)
		return err
	}); err != nil {
		return "", err
	}
	var notes []string
	for _, m := range r.ollama.Models {
		rm, ok := loaded[canonicalModel(m.Name)]
		if !ok {
			names := make([]string, 0, len(loaded))
			for n := range loaded {
				names = append(names, n)
			}
			sort.Strings(names)
			return "", fmt.Errorf("model %s is not loaded (GET /api/ps lists [%s])", m.Name, strings.Join(names, ", "))
		}
		if r.ollama.GPU && rm.SizeVRAM <= 0 {
			return "", fmt.Errorf("model %s is loaded on CPU, not GPU: size_vram %d", m.Name, rm.SizeVRAM)
		}
		if r.ollama.GPU && rm.SizeVRAM < rm.Size {
			// Resident, but partly in system memory: it serves, slowly. Worth a line in the
			// journal when someone wonders why this pool is slow.
			r.log.Printf("step resident: warning: model %s is only partly in GPU memory (%d of %d MiB)", m.Name, rm.SizeVRAM>>20, rm.Size>>20)
		}
		notes = append(notes, fmt.Sprintf("%s (%d MiB, %d MiB in VRAM)", m.Name, rm.Size>>20, rm.SizeVRAM>>20))
	}
	return strings.Join(notes, ", "), nil
}
