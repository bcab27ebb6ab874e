package node

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ErrUnsafePath is wrapped by every extraction error about an entry that would land, or
// point, outside the destination: an absolute path, a ".." escape, a link out.
var ErrUnsafePath = errors.New("unsafe path in archive")

// ExtractTarZst extracts a zstd-compressed tar stream (a wheelhouse) into dest. It refuses absolute names, names that climb out with "..", links
// whose target lies outside dest and writes through a link that leads outside dest; it accepts
// only directories, regular files, symbolic and hard links. Files are written to a temporary
// name and renamed into place, so a running ollama binary can be replaced (no "text file
// busy") and a failed extraction never leaves a half-written file under its real name.
func ExtractTarZst(r io.Reader, dest string) error {
	_, err := extractTarZst(r, dest, nil)
	return err
}

// ExtractOllamaRelease extracts from an Ollama release archive only what a node runs, the
// server binary bin/ollama and its libraries under lib/ollama/, into dest (a directory the
// agent owns), with the same refusals as ExtractTarZst; a link must also stay within those two.
// Every other entry is skipped, not written, and returned so the agent can log it: a release
// that adds a file elsewhere must not stop a node from booting, nor put anything beside them.
func ExtractOllamaRelease(r io.Reader, dest string) (skipped []string, err error) {
	return extractTarZst(r, dest, ollamaPart)
}

// ollamaPart reports whether a cleaned archive path is part of what ExtractOllamaRelease
// installs: bin/ollama, or lib/ollama and anything below it.
func ollamaPart(name string) bool {
	return name == "bin/ollama" || name == "lib/ollama" || strings.HasPrefix(name, "lib/ollama/")
}

// extractTarZst extracts the entries whose cleaned names keep accepts (all when keep is nil)
// and returns the names of the others.
func extractTarZst(r io.Reader, dest string, keep func(string) bool) ([]string, error) {
	dec, err := zstd.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("open zstd stream: %w", err)
	}
	defer dec.Close()
	return extractTar(dec, dest, keep)
}

func extractTar(r io.Reader, dest string, keep func(string) bool) ([]string, error) {
	// dest itself is trusted (the agent chooses it); links inside it are not.
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dest, err)
	}
	realDest, err := filepath.EvalSymlinks(dest)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", dest, err)
	}
	var skipped []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return skipped, nil
		}
		if err != nil {
			return skipped, fmt.Errorf("read tar: %w", err)
		}
		if keep != nil && hdr.Typeflag != tar.TypeXGlobalHeader && hdr.Typeflag != tar.TypeXHeader {
			name, err := archivePath(hdr.Name)
			if err != nil {
				return skipped, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			if !keep(name) {
				// The directories that lead to kept entries are created as needed.
				if hdr.Typeflag != tar.TypeDir || !ancestorOfKept(name) {
					skipped = append(skipped, name)
				}
				continue
			}
			if err := linkKept(hdr, name, keep); err != nil {
				return skipped, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
		}
		if err := extractEntry(tr, hdr, realDest); err != nil {
			return skipped, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
}

// ancestorOfKept reports whether a directory entry leads to what ExtractOllamaRelease keeps.
func ancestorOfKept(name string) bool {
	return name == "." || name == "bin" || name == "lib"
}

// linkKept refuses a link, among kept entries, whose target is not kept itself: it would make
// something outside bin/ollama and lib/ollama/ reachable from them.
func linkKept(hdr *tar.Header, name string, keep func(string) bool) error {
	var target string
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		if path.IsAbs(hdr.Linkname) {
			return fmt.Errorf("%w: symlink to absolute path %q", ErrUnsafePath, hdr.Linkname)
		}
		target = path.Join(path.Dir(name), hdr.Linkname)
	case tar.TypeLink:
		t, err := archivePath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		target = t
	default:
		return nil
	}
	if !keep(target) {
		return fmt.Errorf("%w: link to %q leads outside bin/ollama and lib/ollama/", ErrUnsafePath, hdr.Linkname)
	}
	return nil
}

// archivePath cleans an entry name (or a hard link's target, which is also relative to the
// archive root) and rejects one that is absolute or climbs out.
func archivePath(name string) (string, error) {
	if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return "", fmt.Errorf("%w: absolute name %q", ErrUnsafePath, name)
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("%w: %q escapes the destination", ErrUnsafePath, name)
	}
	return clean, nil
}

// within reports whether p is dest or below it (both cleaned, absolute).
func within(dest, p string) bool {
	rel, err := filepath.Rel(dest, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// mkdirInside creates dir (below dest) one component at a time, refusing to follow any link,
// existing or planted by an earlier entry, that leads outside dest. Checking before creating
// matters: MkdirAll through such a link would already create directories outside.
func mkdirInside(dest, dir string) error {
	rel, err := filepath.Rel(dest, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%w: %s is outside %s", ErrUnsafePath, dir, dest)
	}
	cur := dest
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			real, err := filepath.EvalSymlinks(cur)
			if err != nil {
				return fmt.Errorf("resolve %s: %w", cur, err)
			}
			if !within(dest, real) {
				return fmt.Errorf("%w: %s resolves to %s, outside %s", ErrUnsafePath, cur, real, dest)
			}
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", cur)
		}
	}
	return nil
}

func extractEntry(tr *tar.Reader, hdr *tar.Header, dest string) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader:
		return nil
	}
	name, err := archivePath(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil
	}
	target := filepath.Join(dest, filepath.FromSlash(name))
	if hdr.Typeflag == tar.TypeDir {
		return mkdirInside(dest, target)
	}
	if err := mkdirInside(dest, filepath.Dir(target)); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		return writeFile(tr, target, hdr.FileInfo().Mode().Perm())
	case tar.TypeSymlink:
		link := hdr.Linkname
		if filepath.IsAbs(link) {
			return fmt.Errorf("%w: symlink to absolute path %q", ErrUnsafePath, link)
		}
		if !within(dest, filepath.Join(filepath.Dir(target), link)) {
			return fmt.Errorf("%w: symlink to %q points outside the destination", ErrUnsafePath, link)
		}
		if err := removeExisting(target); err != nil {
			return err
		}
		return os.Symlink(link, target)
	case tar.TypeLink:
		linkName, err := archivePath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link: %w", err)
		}
		source := filepath.Join(dest, filepath.FromSlash(linkName))
		real, err := filepath.EvalSymlinks(source)
		if err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		if !within(dest, real) {
			return fmt.Errorf("%w: hard link to %q resolves outside the destination", ErrUnsafePath, hdr.Linkname)
		}
		if err := removeExisting(target); err != nil {
			return err
		}
		return os.Link(real, target)
	default:
		return fmt.Errorf("unsupported entry type %q", string(hdr.Typeflag))
	}
}

// removeExisting removes a file or link at target so a link can take its place; an existing
// directory is an error rather than something to delete recursively.
func removeExisting(target string) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", target)
	}
	return os.Remove(target)
}

// writeFile writes r to target through a temporary file in the same directory and renames it
// into place. Set-id and sticky bits are dropped; the file stays readable by everyone because
// the ollama user runs what root installed.
func writeFile(r io.Reader, target string, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod((perm & 0o755) | 0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", target)
	}
	return os.Rename(tmp, target)
}
