package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/atomicfile"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/program"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// maxSumsBytes bounds a release's checksum file: it lists a few dozen files.
const maxSumsBytes = 1 << 20

// versionsFile is the file pin rewrites, relative to the project directory.
var versionsFile = filepath.Join("versions", "versions.go")

func runPin(e env, project string, args []string) int {
	return exit(e, "pin", pin(e, project, args))
}

func pin(e env, projectFlag string, args []string) error {
	fs := flagSet(e, "pin", "pin ollama VERSION | pin model NAME... | pin wheelhouse [flags]",
		"Records the hash of what nodes download, for review in a pull request. Run it on a\n"+
			"machine with internet access.\n\n"+
			"pin ollama VERSION reads the release's own checksum file,\n"+
			"<release-base>/v<VERSION>/sha256sum.txt, takes the line for\n"+
			versions.OllamaAsset+", prints where the hash came from, and rewrites the\n"+
			"Ollama entry (Version, URL, SHA256, SumsURL, and its comment) in versions/versions.go,\n"+
			"leaving the rest of the file as it is. Nodes then check the release against that\n"+
			"hash and nothing else. Versions below "+versions.OllamaFloor+" are refused. Pinning the version\n"+
			"already pinned confirms its hash: the file is then unchanged.\n\n"+
			"pin model NAME... fetches each catalog model's manifest from the Ollama registry and\n"+
			"records the SHA-256 of its bytes, the size of its blobs and today's date in\n"+
			mirror.ModelPinsFile+", keeping the other entries. A mirrored department\n"+
			"(artifacts.mirror, always with network.nat none) serves only pinned models.\n\n"+
			"pin wheelhouse downloads with pip the wheels of versions/litellm-requirements.txt for\n"+
			"CPython "+mirror.NodePython+" on "+mirror.NodePlatform+" (the gateway nodes' Ubuntu 24.04), packs\n"+
			"them into a reproducible tar.zst, keeps it in the mirror cache and records its hash and\n"+
			"its wheels in "+mirror.WheelhouseFile+". Run it after every change to the lock;\n"+
			"an unchanged lock gives the same hash (confirmed: ...).\n\n"+
			"Exit 0, 1 a download failed or its answer was not usable, or 2 usage error.")
	base := fs.String("release-base", versions.OllamaReleases, "pin ollama: where the releases are published: `URL`/v<VERSION>/sha256sum.txt")
	registry := fs.String("registry", mirror.DefaultRegistry, "pin model: the Ollama registry's base `URL`")
	pip := fs.String("pip", "python3 -m pip", "pin wheelhouse: the `command` that runs pip")
	findLinks := fs.String("find-links", "", "pin wheelhouse: a `DIR` of wheels to download from instead of pip's index")
	cacheDir := fs.String("cache-dir", "", "pin wheelhouse: the mirror cache `DIR` the archive is kept in (default $XDG_CACHE_HOME/llm-sandbox/mirror)")
	positional, err := parseArgs(fs, args, nil)
	if err != nil {
		return err
	}
	want := "want: pin ollama VERSION, pin model NAME... or pin wheelhouse (got %s)"
	if len(positional) == 0 {
		return usagef(want, "")
	}
	var wrong []string
	fs.Visit(func(f *flag.Flag) {
		for _, sub := range []string{"ollama", "model", "wheelhouse"} {
			if strings.HasPrefix(f.Usage, "pin "+sub+":") && sub != positional[0] {
				wrong = append(wrong, "--"+f.Name)
			}
		}
	})
	if len(wrong) > 0 {
		return usagef("%s: not a flag of pin %s", strings.Join(wrong, ", "), positional[0])
	}
	switch {
	case positional[0] == "model" && len(positional) > 1:
		return pinModels(e, projectFlag, *registry, positional[1:])
	case positional[0] == "wheelhouse" && len(positional) == 1:
		return pinWheelhouse(e, projectFlag, strings.Fields(*pip), *findLinks, *cacheDir)
	case positional[0] != "ollama" || len(positional) != 2:
		return usagef(want, strings.Join(positional, " "))
	}
	version := strings.TrimPrefix(positional[1], "v")
	if p := versions.CheckOllamaVersion(version); p != "" {
		return usagef("ollama VERSION %s", p)
	}
	if !strings.HasPrefix(*base, "https://") && !strings.HasPrefix(*base, "http://") {
		return usagef("--release-base must be an http(s) URL (got %q)", *base)
	}
	dir, err := program.FindProject(e.cwd, projectFlag)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	wantRelease := versions.OllamaRelease(*base, version, "")
	sums, err := fetchSums(wantRelease.SumsURL)
	if err != nil {
		return err
	}
	sha, err := versions.SumFor(sums, versions.OllamaAsset)
	if err != nil {
		return fmt.Errorf("%s: %w", wantRelease.SumsURL, err)
	}
	release := versions.OllamaRelease(*base, version, sha)
	fmt.Fprintf(e.stdout, "read %s\n%s  %s (ollama %s)\n", release.SumsURL, sha, versions.OllamaAsset, version)

	path := filepath.Join(dir, versionsFile)
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, old, err := versions.RewriteOllama(src, release, time.Now().UTC().Format("2006-01-02"))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case old.Version == version && old.SHA256 == sha:
		fmt.Fprintf(e.stdout, "confirmed: %s already pins ollama %s with this hash\n", versionsFile, version)
	case old.Version == version && old.SHA256 != "":
		fmt.Fprintf(e.stdout, "CHANGED: %s pinned ollama %s with sha256 %s; the release now lists another file: find out why before merging\n", versionsFile, version, old.SHA256)
	default:
		fmt.Fprintf(e.stdout, "ollama %s (sha256 %q) -> %s\n", old.Version, old.SHA256, version)
	}
	return writePin(e, path, out)
}

// fetchSums reads a release's checksum file.
func fetchSums(url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSumsBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	return data, nil
}

// pinModels records the manifest of each named catalog model in versions/models_pinned.go.
// Every name is checked before anything is fetched, and nothing is written unless every
// manifest was read.
func pinModels(e env, projectFlag, registry string, names []string) error {
	if !strings.HasPrefix(registry, "https://") && !strings.HasPrefix(registry, "http://") {
		return usagef("--registry must be an http(s) URL (got %q)", registry)
	}
	var bad []string
	for _, n := range names {
		if _, ok := catalog.LookupModel(n); !ok || !rules.IsOllamaTag(n) {
			bad = append(bad, fmt.Sprintf("%q", n))
		}
	}
	if len(bad) > 0 {
		return usagef("model %s: not in the catalog (internal/catalog/catalog.go); catalog models: %s",
			strings.Join(bad, ", "), strings.Join(catalog.ModelTags(), ", "))
	}
	dir, err := program.FindProject(e.cwd, projectFlag)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	path := filepath.Join(dir, filepath.FromSlash(mirror.ModelPinsFile))
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	pins, err := mirror.ParseModelPins(src)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	day := time.Now().UTC().Format(time.DateOnly)
	var failed []string
	for _, n := range names {
		p, err := mirror.PinModel(ctx, nil, registry, n, day)
		if err != nil {
			failed = append(failed, fmt.Sprintf("model %s: %v", n, err))
			continue
		}
		old, had := pins[n]
		switch {
		case had && old.Manifest == p.Manifest:
			fmt.Fprintf(e.stdout, "confirmed: model %s manifest sha256 %s (%d bytes of blobs)\n", n, p.Manifest, p.Size)
			p.Pinned = old.Pinned
		case had:
			fmt.Fprintf(e.stdout, "CHANGED: model %s manifest sha256 %s -> %s (%d bytes of blobs): the registry serves another build of this tag; make sure it is wanted before merging\n", n, old.Manifest, p.Manifest, p.Size)
		default:
			fmt.Fprintf(e.stdout, "model %s: manifest sha256 %s (%d bytes of blobs), from %s\n", n, p.Manifest, p.Size, registry)
		}
		pins[n] = p
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s; %s left as it was", strings.Join(failed, "; "), mirror.ModelPinsFile)
	}
	out, err := mirror.RenderModelPins(pins)
	if err != nil {
		return err
	}
	return writePin(e, path, out)
}

// pinWheelhouse builds the LiteLLM wheelhouse from the project's lock and records it in
// versions/wheelhouse_pinned.go; the archive is kept in the mirror cache, where the next fetch
// of the mirror finds it.
func pinWheelhouse(e env, projectFlag string, pip []string, findLinks, cacheDir string) error {
	if len(pip) == 0 {
		return usagef("--pip must name a command")
	}
	dir, err := program.FindProject(e.cwd, projectFlag)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	if cacheDir == "" {
		if cacheDir, err = mirror.DefaultCacheDir(); err != nil {
			return err
		}
	}
	lock, err := os.ReadFile(filepath.Join(dir, "versions", versions.LiteLLM.Lock))
	if err != nil {
		return err
	}
	path := filepath.Join(dir, filepath.FromSlash(mirror.WheelhouseFile))
	var old versions.WheelhousePin
	if src, err := os.ReadFile(path); err == nil {
		if old, err = mirror.ParseWheelhousePin(src); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	version, err := exec.CommandContext(ctx, pip[0], append(pip[1:], "--version")...).Output()
	if err != nil {
		return fmt.Errorf("%s --version: %w", strings.Join(pip, " "), err)
	}
	// "pip X.Y from <where it is installed> (python A.B)": the version is what the record needs.
	pipVersion := strings.Join(strings.Fields(string(version))[:min(2, len(strings.Fields(string(version))))], " ")
	work, err := os.MkdirTemp("", "wheelhouse-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src := mirror.Sources{Pip: pip, PipFindLinks: findLinks, Requirements: string(lock)}
	pin, archive, err := mirror.BuildWheelhouse(ctx, src, mirror.NodePython, mirror.NodePlatform, work, e.stdout)
	if err != nil {
		return err
	}
	if _, err := mirror.StoreInCache(cacheDir, archive, pin.SHA256); err != nil {
		return err
	}
	switch {
	case old.SHA256 == pin.SHA256:
		fmt.Fprintf(e.stdout, "confirmed: %s already pins this wheelhouse (sha256 %s)\n", mirror.WheelhouseFile, pin.SHA256)
	case old.Lock == pin.Lock:
		fmt.Fprintf(e.stdout, "CHANGED: the same lock made another archive (sha256 %s, pinned %s): find out why before merging\n", pin.SHA256, old.SHA256)
	default:
		fmt.Fprintf(e.stdout, "wheelhouse sha256 %q -> %s (%d wheels, %d bytes)\n", old.SHA256, pin.SHA256, len(pin.Files), pin.Size)
	}
	out, err := mirror.RenderWheelhousePin(pin, pipVersion, time.Now().UTC().Format(time.DateOnly))
	if err != nil {
		return err
	}
	return writePin(e, path, out)
}

// writePin replaces a pin file in one step (an interrupted write leaves the old file, never half
// of one) and says what to do with it.
func writePin(e env, path string, out []byte) error {
	if err := atomicfile.Write(path, out, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: review the change and commit it in a pull request\n", path)
	return nil
}
