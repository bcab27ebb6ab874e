package node

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

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
