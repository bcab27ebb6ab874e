package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror/mirrortest"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// fixture is a registry and release host with two models sharing a blob, and tiny wheels.
type fixture struct {
	srv      *mirrortest.Server
	release  versions.Release
	a, b     mirrortest.Model
	wheels   mirrortest.Wheels
	src      mirror.Sources
	set      mirror.Set
	cacheDir string
}

func newFixture(t *testing.T, withWheelhouse bool) *fixture {
	t.Helper()
	f := &fixture{srv: mirrortest.NewServer(t), cacheDir: t.TempDir()}
	f.release = f.srv.AddRelease("0.35.1", []byte("not really an ollama release"))
	shared := []byte("a template both models use")
	f.a = f.srv.AddModel(t, "llama3.1:8b", bytes.Repeat([]byte("weights of a "), 1000), shared)
	f.b = f.srv.AddModel(t, "qwen2.5:7b", bytes.Repeat([]byte("weights of b "), 1000), shared, []byte(`{"temperature":0}`))
	f.src = mirror.Sources{Registry: f.srv.URL}
	var err error
	f.set, err = mirror.NewSet(f.release, nil, []string{"qwen2.5:7b", "llama3.1:8b", "qwen2.5:7b"},
		map[string]versions.ModelPin{"llama3.1:8b": f.a.Pin, "qwen2.5:7b": f.b.Pin})
	if err != nil {
		t.Fatal(err)
	}
	if withWheelhouse {
		f.src.Pip = mirrortest.PipEnv(t)
		f.wheels = mirrortest.WriteWheels(t, t.TempDir())
		f.src.PipFindLinks = f.wheels.Dir
		f.src.Requirements = f.wheels.Lock
		pin := versions.WheelhousePin{Python: mirror.NodePython, Platform: mirror.NodePlatform, Lock: mirror.SHA256Hex([]byte(f.wheels.Lock))}
		for _, w := range f.wheels.Linux {
			pin.Files = append(pin.Files, versions.WheelFile{Name: w.Name, SHA256: w.SHA256})
		}
		var archive bytes.Buffer
		if err := mirror.PackWheelhouse(&archive, []string{f.wheels.Linux[1].Path, f.wheels.Linux[0].Path}); err != nil {
			t.Fatal(err)
		}
		pin.SHA256, pin.Size = mirror.SHA256Hex(archive.Bytes()), int64(archive.Len())
		f.set.Wheelhouse = &pin
	}
	return f
}

// cacheFiles lists the files under the cache's sha256/ and tmp/.
func cacheFiles(t *testing.T, dir string) (kept, temp []string) {
	t.Helper()
	for _, sub := range []string{"sha256", "tmp"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range entries {
			if sub == "sha256" {
				kept = append(kept, e.Name())
			} else {
				temp = append(temp, e.Name())
			}
		}
	}
	return kept, temp
}

func TestFetchVerifiesEverythingAndCachesIt(t *testing.T) {
	f := newFixture(t, false)
	var progress bytes.Buffer
	got, err := mirror.Fetch(context.Background(), f.set, f.src, f.cacheDir, &progress)
	if err != nil {
		t.Fatalf("Fetch: %v\n%s", err, progress.String())
	}
	// The release, two manifests, and the blobs: 3 of a and 4 of b, one shared.
	var keys []string
	for _, o := range got {
		keys = append(keys, o.Key)
		data, err := os.ReadFile(o.Path)
		if err != nil || mirror.SHA256Hex(data) != o.SHA256 || int64(len(data)) != o.Size {
			t.Errorf("%s: the cached file at %s does not hold the object (err %v, size %d)", o.What, o.Path, err, o.Size)
		}
	}
	want := []string{mirror.OllamaReleaseKey(f.release.SHA256), mirror.ModelManifestKey(f.a.Pin.Manifest), mirror.ModelManifestKey(f.b.Pin.Manifest)}
	for sum := range f.a.Blobs {
		want = append(want, mirror.ModelBlobKey(sum))
	}
	for sum := range f.b.Blobs {
		want = append(want, mirror.ModelBlobKey(sum))
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(keys, want) {
		t.Errorf("keys:\n got %q\nwant %q", keys, want)
	}
	if len(want) != 9 {
		t.Errorf("%d objects, want 9 (the shared blob once)", len(want))
	}
	if !strings.Contains(progress.String(), "fetch Ollama 0.35.1 release: done") || !strings.Contains(progress.String(), "fetch model qwen2.5:7b manifest: from "+f.srv.URL) {
		t.Errorf("progress lacks start and done lines:\n%s", progress.String())
	}
	if n := f.srv.Requests("/storage/" + mirror.SHA256Hex([]byte("a template both models use"))); n != 1 {
		t.Errorf("the shared blob was downloaded %d times, want 1", n)
	}

	// A second Fetch downloads nothing: every object is in the cache, its hash checked again.
	f.srv.ResetRequests()
	progress.Reset()
	again, err := mirror.Fetch(context.Background(), f.set, f.src, f.cacheDir, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.srv.Requests(""); n != 0 {
		t.Errorf("the second Fetch made %d requests, want 0", n)
	}
	if len(again) != len(got) || strings.Count(progress.String(), "in the cache, sha256") != len(got) {
		t.Errorf("the second Fetch: %d objects, progress:\n%s", len(again), progress.String())
	}

	// Objects (plan time) lists the release and the manifests, with the registry's URLs.
	objs := f.set.Objects()
	if len(objs) != 3 || objs[0].Key > objs[1].Key || objs[1].Key > objs[2].Key {
		t.Fatalf("Objects() = %+v", objs)
	}
	for _, o := range objs {
		if strings.Contains(o.What, "qwen2.5:7b manifest") && o.Source != "https://registry.ollama.ai/v2/library/qwen2.5/manifests/7b" {
			t.Errorf("manifest source %q", o.Source)
		}
		if strings.Contains(o.What, "release") && o.Source != f.release.URL {
			t.Errorf("release source %q, want %q", o.Source, f.release.URL)
		}
	}
}

func TestFetchRefusesWhatDoesNotMatchItsPin(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(f *fixture)
		what    string
	}{
		{"release", func(f *fixture) { f.srv.Set("/releases/v0.35.1/ollama-linux-amd64.tar.zst", []byte("tampered")) }, "Ollama 0.35.1 release"},
		{"manifest", func(f *fixture) { f.srv.Set(f.b.ManifestPath(), append(bytes.Clone(f.b.Manifest), ' ')) }, "model qwen2.5:7b manifest"},
		{"blob", func(f *fixture) {
			for sum, data := range f.b.Blobs {
				if bytes.HasPrefix(data, []byte("weights of b")) {
					bad := bytes.Clone(data)
					bad[len(bad)/2] ^= 0xff
					f.srv.Set("/storage/"+sum, bad)
				}
			}
		}, "model qwen2.5:7b blob sha256:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, false)
			tc.corrupt(f)
			_, err := mirror.Fetch(context.Background(), f.set, f.src, f.cacheDir, nil)
			var mm *mirror.MismatchError
			if !errors.As(err, &mm) || !strings.Contains(err.Error(), tc.what) || !strings.Contains(err.Error(), "is pinned") {
				t.Fatalf("Fetch = %v, want a mismatch of %s", err, tc.what)
			}
			if !strings.Contains(err.Error(), mm.Want) || !strings.Contains(err.Error(), mm.Got) || mm.Want == mm.Got {
				t.Errorf("the error does not name both hashes: %v", err)
			}
			kept, temp := cacheFiles(t, f.cacheDir)
			if slices.Contains(kept, mm.Got) || slices.Contains(kept, mm.Want) || len(temp) != 0 {
				t.Errorf("the refused file stayed: cache %q, tmp %q", kept, temp)
			}
		})
	}

	t.Run("a corrupted cache file is fetched again", func(t *testing.T) {
		f := newFixture(t, false)
		if _, err := mirror.Fetch(context.Background(), f.set, f.src, f.cacheDir, nil); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(f.cacheDir, "sha256", f.release.SHA256)
		if err := os.WriteFile(p, []byte("rotted"), 0o644); err != nil {
			t.Fatal(err)
		}
		f.srv.ResetRequests()
		var progress bytes.Buffer
		if _, err := mirror.Fetch(context.Background(), f.set, f.src, f.cacheDir, &progress); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(p); mirror.SHA256Hex(data) != f.release.SHA256 || f.srv.Requests("") != 1 || !strings.Contains(progress.String(), "removed, fetching again") {
			t.Errorf("the rotted file was not replaced by one download (%d requests):\n%s", f.srv.Requests(""), progress.String())
		}
	})
}

func TestNewSetListsEveryProblem(t *testing.T) {
	release := versions.Ollama
	good := versions.ModelPin{Manifest: strings.Repeat("a", 64), Size: 10, Pinned: "2026-12-01"}
	_, err := mirror.NewSet(release, nil, []string{"qwen2.5:7b", "llama3.1:8b", "gemma3:4b", "phi3:mini"}, map[string]versions.ModelPin{
		"llama3.1:8b": good,
		"phi3:mini":   {Manifest: "ABC", Size: 0, Pinned: "yesterday"},
	})
	if err == nil {
		t.Fatal("NewSet accepted unpinned models")
	}
	for _, want := range []string{"models gemma3:4b, qwen2.5:7b not pinned", "sandboxctl pin model gemma3:4b qwen2.5:7b", "on a machine with internet access",
		`versions.ModelPins["phi3:mini"]: Manifest must be 64 lowercase hex digits`, "Size must be positive", "Pinned must be a date"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	unpinned := release
	unpinned.SHA256 = ""
	if _, err := mirror.NewSet(unpinned, nil, []string{"llama3.1:8b"}, map[string]versions.ModelPin{"llama3.1:8b": good}); err == nil || !strings.Contains(err.Error(), "sandboxctl pin ollama") {
		t.Errorf("NewSet with an unpinned release = %v", err)
	}
	stale := versions.WheelhousePin{Python: "3.12", Platform: mirror.NodePlatform, Lock: strings.Repeat("0", 64), SHA256: strings.Repeat("1", 64), Size: 1,
		Files: []versions.WheelFile{{Name: "a-1-py3-none-any.whl", SHA256: strings.Repeat("2", 64)}}}
	if _, err := mirror.NewSet(release, &stale, nil, nil); err == nil || !strings.Contains(err.Error(), "built from another lock") || !strings.Contains(err.Error(), "sandboxctl pin wheelhouse") {
		t.Errorf("NewSet with a stale wheelhouse = %v", err)
	}
	set, err := mirror.NewSet(release, nil, []string{"llama3.1:8b", "llama3.1:8b"}, map[string]versions.ModelPin{"llama3.1:8b": good})
	if err != nil || len(set.Models) != 1 {
		t.Errorf("NewSet = %+v, %v; want the model once", set, err)
	}
}

// The committed pins are what the library accepts: the wheelhouse of today's lock, and
// catalog-shaped model pins.
func TestCommittedPins(t *testing.T) {
	if p := mirror.CheckWheelhouse(versions.Wheelhouse, versions.LiteLLMRequirements); p != "" {
		t.Errorf("%s", p)
	}
	for name, p := range versions.ModelPins {
		if msg := mirror.CheckModelPin(p); msg != "" {
			t.Errorf("ModelPins[%q]: %s", name, msg)
		}
	}
	for _, c := range []struct {
		file  string
		parse func([]byte) ([]byte, error)
	}{
		{mirror.ModelPinsFile, func(src []byte) ([]byte, error) {
			pins, err := mirror.ParseModelPins(src)
			if err != nil {
				return nil, err
			}
			return mirror.RenderModelPins(pins)
		}},
	} {
		src, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(c.file)))
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.parse(src)
		if err != nil || !bytes.Equal(out, src) {
			t.Errorf("%s is not what the pin command writes (err %v):\n%s", c.file, err, out)
		}
	}
	src, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(mirror.WheelhouseFile)))
	if err != nil {
		t.Fatal(err)
	}
	pin, err := mirror.ParseWheelhousePin(src)
	if err != nil || !slices.Equal(pin.Files, versions.Wheelhouse.Files) || pin.SHA256 != versions.Wheelhouse.SHA256 {
		t.Errorf("ParseWheelhousePin(%s) = %+v, %v; want versions.Wheelhouse", mirror.WheelhouseFile, pin, err)
	}
}

func TestModelPinsRoundTrip(t *testing.T) {
	pins := map[string]versions.ModelPin{
		"qwen2.5:7b":  {Manifest: strings.Repeat("b", 64), Size: 4683087332, Pinned: "2026-12-05"},
		"llama3.1:8b": {Manifest: strings.Repeat("a", 64), Size: 4920753328, Pinned: "2026-12-04"},
	}
	src, err := mirror.RenderModelPins(pins)
	if err != nil {
		t.Fatal(err)
	}
	if i, j := bytes.Index(src, []byte("llama3.1:8b")), bytes.Index(src, []byte("qwen2.5:7b")); i < 0 || j < i {
		t.Errorf("entries not sorted:\n%s", src)
	}
	got, err := mirror.ParseModelPins(src)
	if err != nil || len(got) != 2 || got["qwen2.5:7b"] != pins["qwen2.5:7b"] || got["llama3.1:8b"] != pins["llama3.1:8b"] {
		t.Errorf("ParseModelPins = %+v, %v", got, err)
	}
}

func TestPipPlatforms(t *testing.T) {
	got := mirror.PipPlatforms("manylinux_2_39_x86_64")
	if got[0] != "manylinux_2_39_x86_64" || got[len(got)-1] != "manylinux1_x86_64" || len(got) != 35+3 {
		t.Errorf("PipPlatforms = %q", got)
	}
	for i, p := range []string{"manylinux_2_17_x86_64", "manylinux2014_x86_64"} {
		if j := slices.Index(got, p); j < 0 || i == 1 && got[j-1] != "manylinux_2_17_x86_64" {
			t.Errorf("PipPlatforms lacks %s in its place: %q", p, got)
		}
	}
	if got := mirror.PipPlatforms("win_amd64"); !slices.Equal(got, []string{"win_amd64"}) {
		t.Errorf("PipPlatforms(win_amd64) = %q", got)
	}
}

func TestPackWheelhouseIsReproducibleAndTheNodeExtractsIt(t *testing.T) {
	dir := t.TempDir()
	w := mirrortest.WriteWheels(t, dir)
	long := mirrortest.WriteWheel(t, dir, "a_package_with_a_name_long_enough_that_tar_needs_more_than_its_hundred_bytes", "1.0", "cp312-cp312-manylinux_2_17_x86_64")
	files := []string{w.Linux[1].Path, long.Path, w.Linux[0].Path}
	var one, two bytes.Buffer
	if err := mirror.PackWheelhouse(&one, files); err != nil {
		t.Fatal(err)
	}
	// Other order, other modification times and modes: the same bytes.
	for _, p := range files {
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := mirror.PackWheelhouse(&two, []string{w.Linux[0].Path, w.Linux[1].Path, long.Path}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Fatalf("two packs of the same wheels differ (%d and %d bytes)", one.Len(), two.Len())
	}
	dest := t.TempDir()
	if err := node.ExtractTarZst(bytes.NewReader(one.Bytes()), dest); err != nil {
		t.Fatalf("the node's extractor refuses the wheelhouse: %v", err)
	}
	entries, _ := os.ReadDir(dest)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	wantNames := []string{long.Name, w.Linux[0].Name, w.Linux[1].Name}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("extracted %q, want %q", names, wantNames)
	}
	for _, wh := range []mirrortest.Wheel{long, w.Linux[0], w.Linux[1]} {
		data, err := os.ReadFile(filepath.Join(dest, wh.Name))
		if err != nil || mirror.SHA256Hex(data) != wh.SHA256 {
			t.Errorf("%s extracted with another content (err %v)", wh.Name, err)
		}
	}
	if err := mirror.PackWheelhouse(&bytes.Buffer{}, []string{w.Linux[0].Path, w.Linux[0].Path}); err == nil {
		t.Error("PackWheelhouse accepted two files of one name")
	}
}
