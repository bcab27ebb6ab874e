package node

import (
	"archive/tar"
	"bytes"
	"errors"
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
	if err := ExtractTarZst(bytes.NewReader(archive), dest); err != nil {
		t.Fatal(err)
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
		{"symlink out", []tarEntry{{name: "lib/evil", typeflag: tar.TypeSymlink, link: "../../../etc"}}},
		{"absolute symlink", []tarEntry{{name: "lib/evil", typeflag: tar.TypeSymlink, link: "/etc/passwd"}}},
		{"hard link out", []tarEntry{{name: "lib/evil", typeflag: tar.TypeLink, link: "../../etc/passwd"}}},
		{"absolute hard link", []tarEntry{{name: "lib/evil", typeflag: tar.TypeLink, link: "/etc/passwd"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dest := filepath.Join(base, "a", "b", "c")
			err := ExtractTarZst(bytes.NewReader(tarZst(t, tc.entries)), dest)
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("ExtractTarZst() = %v, want ErrUnsafePath", err)
			}
			assertOnlyUnder(t, base, dest)
		})
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
