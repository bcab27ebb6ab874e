package node

import (
	"bytes"
	"os"

	"github.com/llm-sandbox/llm-sandbox/internal/atomicfile"
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
	if err := atomicfile.Write(file, data, perm); err != nil {
		return false, err
	}
	return true, nil
}
