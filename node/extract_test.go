package node

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestExtractTarZst(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "usr", "local")
	// An existing file is replaced, as on an upgrade.
	if err := os.MkdirAll(filepath.Join(dest, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dest, "bin", "ollama"), []byte("old"), 0o755); err != nil {
		t.Fatal(err)
	}
	archive := tarZst(t, []tarEntry{
		{name: "./", typeflag: tar.TypeDir, mode: 0o755},
		{name: "./bin/ollama", body: "new binary", mode: 0o4755},
		{name: "./lib/ollama/libcudart.so.12.8.90", body: "lib"},
		{name: "./lib/ollama/libcudart.so.12", typeflag: tar.TypeSymlink, link: "libcudart.so.12.8.90"},
		{name: "./lib/ollama/cuda_v12/libcudart.so", typeflag: tar.TypeSymlink, link: "../libcudart.so.12"},
		{name: "./lib/ollama/hardlink.so", typeflag: tar.TypeLink, link: "lib/ollama/libcudart.so.12.8.90"},
	})
	if skipped, err := ExtractOllamaRelease(bytes.NewReader(archive), dest); err != nil || len(skipped) != 0 {
		t.Fatalf("ExtractOllamaRelease() = %q, %v", skipped, err)
	}
	data, err := os.ReadFile(filepath.Join(dest, "bin", "ollama"))
	if err != nil || string(data) != "new binary" {
		t.Errorf("bin/ollama = %q, %v", data, err)
	}
	fi, _ := os.Stat(filepath.Join(dest, "bin", "ollama"))
	if fi.Mode().Perm() != 0o755 || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("bin/ollama mode = %v, want 0755 without setuid", fi.Mode())
	}
	for _, f := range []string{"lib/ollama/libcudart.so.12", "lib/ollama/cuda_v12/libcudart.so", "lib/ollama/hardlink.so"} {
		if data, err := os.ReadFile(filepath.Join(dest, f)); err != nil || string(data) != "lib" {
			t.Errorf("%s = %q, %v", f, data, err)
		}
	}
	if link, _ := os.Readlink(filepath.Join(dest, "lib/ollama/libcudart.so.12")); link != "libcudart.so.12.8.90" {
		t.Errorf("symlink target = %q", link)
	}
}

func TestExtractRejectsUnsafeEntries(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tarEntry
	}{
		{"parent escape", []tarEntry{{name: "../evil", body: "x"}}},
		{"nested escape", []tarEntry{{name: "bin/../../evil", body: "x"}}},
		{"absolute path", []tarEntry{{name: "/etc/cron.d/evil", body: "x"}}},
		{"symlink out", []tarEntry{{name: "lib/ollama/evil", typeflag: tar.TypeSymlink, link: "../../../../etc"}}},
		{"absolute symlink", []tarEntry{{name: "lib/ollama/evil", typeflag: tar.TypeSymlink, link: "/etc/passwd"}}},
		{"hard link out", []tarEntry{{name: "lib/ollama/evil", typeflag: tar.TypeLink, link: "../../etc/passwd"}}},
		{"absolute hard link", []tarEntry{{name: "lib/ollama/evil", typeflag: tar.TypeLink, link: "/etc/passwd"}}},
	} {
		for extractor, extract := range map[string]func(io.Reader, string) error{
			"ExtractTarZst": ExtractTarZst,
			"ExtractOllamaRelease": func(r io.Reader, dest string) error {
				_, err := ExtractOllamaRelease(r, dest)
				return err
			},
		} {
			t.Run(extractor+"/"+tc.name, func(t *testing.T) {
				base := t.TempDir()
				dest := filepath.Join(base, "a", "b", "c")
				err := extract(bytes.NewReader(tarZst(t, tc.entries)), dest)
				if !errors.Is(err, ErrUnsafePath) {
					t.Fatalf("%s() = %v, want ErrUnsafePath", extractor, err)
				}
				assertOnlyUnder(t, base, dest)
			})
		}
	}
}

// TestExtractOllamaReleaseTakesOnlyItsParts: a release archive that carries anything beside
// bin/ollama and lib/ollama/ (a planted agent binary, a cron job) gets only those two
// installed, and names the rest; a link from them to anything else is refused.
func TestExtractOllamaReleaseTakesOnlyItsParts(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "ollama")
	archive := tarZst(t, []tarEntry{
		{name: "./", typeflag: tar.TypeDir, mode: 0o755},
		{name: "./bin/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "./bin/ollama", body: "binary", mode: 0o755},
		{name: "./bin/sandbox-node", body: "planted", mode: 0o755},
		{name: "./usr/local/bin/sandbox-node", body: "planted", mode: 0o755},
		{name: "./etc/cron.d/evil", body: "* * * * * root sh"},
		{name: "./lib/ollama/libggml-base.so", body: "lib"},
		{name: "./lib/ollama/bin-link", typeflag: tar.TypeSymlink, link: "../../bin/ollama"},
		{name: "./lib/ollamax/libevil.so", body: "x"},
		{name: "./README.md", body: "x"},
	})
	skipped, err := ExtractOllamaRelease(bytes.NewReader(archive), dest)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bin/sandbox-node", "usr/local/bin/sandbox-node", "etc/cron.d/evil", "lib/ollamax/libevil.so", "README.md"}
	if fmt.Sprint(skipped) != fmt.Sprint(want) {
		t.Errorf("skipped = %q, want %q", skipped, want)
	}
	var got []string
	_ = filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			rel, _ := filepath.Rel(dest, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if fmt.Sprint(got) != fmt.Sprint([]string{"bin/ollama", "lib/ollama/bin-link", "lib/ollama/libggml-base.so"}) {
		t.Errorf("installed %q, want only bin/ollama and lib/ollama/", got)
	}

	for name, entry := range map[string]tarEntry{
		"symlink to a skipped file":   {name: "lib/ollama/evil", typeflag: tar.TypeSymlink, link: "../../bin/sandbox-node"},
		"hard link to a skipped file": {name: "lib/ollama/evil", typeflag: tar.TypeLink, link: "bin/sandbox-node"},
		"lib/ollama as a link":        {name: "lib/ollama", typeflag: tar.TypeSymlink, link: "../etc"},
	} {
		archive := tarZst(t, []tarEntry{{name: "bin/sandbox-node", body: "planted", mode: 0o755}, entry})
		if _, err := ExtractOllamaRelease(bytes.NewReader(archive), t.TempDir()); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("%s: ExtractOllamaRelease() = %v, want ErrUnsafePath", name, err)
		}
	}
}

func TestExtractRejectsWritesThroughLinkLeavingDestination(t *testing.T) {
	base := t.TempDir()
	dest := filepath.Join(base, "usr", "local")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{dest, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A link already on disk (not from the archive) must not be written through.
	if err := os.Symlink(outside, filepath.Join(dest, "lib")); err != nil {
		t.Fatal(err)
	}
	err := ExtractTarZst(bytes.NewReader(tarZst(t, []tarEntry{{name: "lib/ollama/evil.so", body: "x"}})), dest)
	if !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("ExtractTarZst() = %v, want ErrUnsafePath", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the destination: %v", entries)
	}
}

func TestExtractRejectsDevicesAndGarbage(t *testing.T) {
	dest := t.TempDir()
	if err := ExtractTarZst(bytes.NewReader(tarZst(t, []tarEntry{{name: "dev/sda", typeflag: tar.TypeBlock}})), dest); err == nil {
		t.Errorf("a block device entry was accepted")
	}
	if err := ExtractTarZst(bytes.NewReader([]byte("not zstd at all")), dest); err == nil {
		t.Errorf("a non-zstd stream was accepted")
	}
}

// assertOnlyUnder fails if anything exists under base outside dest.
func assertOnlyUnder(t *testing.T, base, dest string) {
	t.Helper()
	_ = filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || within(dest, p) {
			return nil
		}
		t.Errorf("extraction created %s outside %s", p, dest)
		return nil
	})
}
