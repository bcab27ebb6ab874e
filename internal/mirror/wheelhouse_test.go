package mirror_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror/mirrortest"
)

// The wheelhouse is built with the real pip from tiny wheels (no index), for the nodes'
// interpreter and platform: the manylinux_2_17 wheel, not the Windows one.
func TestFetchBuildsTheWheelhouse(t *testing.T) {
	f := newFixture(t, true)
	var progress bytes.Buffer
	got, err := mirror.Fetch(context.Background(), f.set, f.src, f.cacheDir, &progress)
	if err != nil {
		t.Fatalf("Fetch: %v\n%s", err, progress.String())
	}
	var wh *mirror.Fetched
	for i := range got {
		if got[i].Key == mirror.WheelhouseKey(f.set.Wheelhouse.SHA256) {
			wh = &got[i]
		}
	}
	if wh == nil || wh.Source != "" {
		t.Fatalf("no wheelhouse among %+v", got)
	}
	data, err := os.ReadFile(wh.Path)
	if err != nil || mirror.SHA256Hex(data) != f.set.Wheelhouse.SHA256 || wh.Size != f.set.Wheelhouse.Size {
		t.Errorf("the cached wheelhouse is not the pinned archive (err %v)", err)
	}
	if !strings.Contains(progress.String(), "pip: ") || strings.Contains(progress.String(), "win_amd64.whl") {
		t.Errorf("pip's output is not in the progress, or it took the Windows wheel:\n%s", progress.String())
	}
	// Built once: the second Fetch finds it in the cache and runs no pip.
	progress.Reset()
	if _, err := mirror.Fetch(context.Background(), f.set, f.src, f.cacheDir, &progress); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(progress.String(), "pip: ") || !strings.Contains(progress.String(), "wheelhouse: in the cache") {
		t.Errorf("the second Fetch built the wheelhouse again:\n%s", progress.String())
	}
}

func TestFetchRefusesAnotherWheel(t *testing.T) {
	f := newFixture(t, true)
	// Another build of tinyb under the same name, and a lock that lets pip take it: pip is
	// content, the pin is not.
	other := mirrortest.WriteWheel(t, t.TempDir(), "tinyb", "1.0", "cp312-cp312-manylinux_2_17_x86_64")
	data, _ := os.ReadFile(other.Path)
	data = append(data, 0) // a trailing byte after the zip: still a readable wheel
	if err := os.WriteFile(filepath.Join(f.wheels.Dir, other.Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tampered := mirror.SHA256Hex(data)
	f.src.Requirements = strings.Replace(f.wheels.Lock, f.wheels.Linux[1].SHA256, tampered, 1)
	f.set.Wheelhouse.Lock = mirror.SHA256Hex([]byte(f.src.Requirements))
	_, err := mirror.Fetch(context.Background(), f.set, f.src, f.cacheDir, nil)
	if err == nil || !strings.Contains(err.Error(), "LiteLLM") || !strings.Contains(err.Error(), other.Name+" has sha256 "+tampered+", "+f.wheels.Linux[1].SHA256+" is pinned") {
		t.Fatalf("Fetch = %v, want the tampered wheel named with both hashes", err)
	}
	if kept, temp := cacheFiles(t, f.cacheDir); len(temp) != 0 || len(kept) != 1 { // the release only
		t.Errorf("left in the cache: %q, tmp %q", kept, temp)
	}

	// A lock that is not the pin's is refused before pip runs.
	f.src.Requirements = f.wheels.Lock + "\n"
	if _, err := mirror.Fetch(context.Background(), f.set, f.src, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "sandboxctl pin wheelhouse") {
		t.Errorf("Fetch with another lock = %v", err)
	}
}
