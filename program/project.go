package program

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FindProject returns the project directory: dir when given (it must hold Pulumi.yaml), else the
// nearest parent of cwd that holds Pulumi.yaml.
func FindProject(cwd, dir string) (string, error) {
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		if !isFile(filepath.Join(abs, "Pulumi.yaml")) {
			return "", fmt.Errorf("--project %s: no Pulumi.yaml there", dir)
		}
		return abs, nil
	}
	for d := cwd; ; d = filepath.Dir(d) {
		if isFile(filepath.Join(d, "Pulumi.yaml")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no Pulumi.yaml in the working directory or any parent; run inside the project or pass --project DIR")
		}
	}
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
