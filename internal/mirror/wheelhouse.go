package mirror

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/llm-sandbox/llm-sandbox/versions"
)

// The interpreter and platform gateway nodes install the wheelhouse on: Ubuntu 24.04's
// python3 is CPython 3.12 (https://packages.ubuntu.com/noble/python3) and its glibc is 2.39
// (https://packages.ubuntu.com/noble/libc6), so every manylinux wheel up to manylinux_2_39
// runs there (PEP 600).
const (
	NodePython   = "3.12"
	NodePlatform = "manylinux_2_39_x86_64"
)

var manylinux = regexp.MustCompile(`^manylinux_2_([0-9]+)_([a-z0-9_]+)$`)

// legacyManylinux are the manylinux tags older than PEP 600 and the glibc they stand for
// (PEP 600, "Legacy manylinux tags").
var legacyManylinux = map[int]string{17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}

// PipPlatforms are the --platform values that make pip choose the wheels a system of
// platform installs: for manylinux_2_Y_<arch>, every manylinux_2_X_<arch> from Y down to 5
// with the legacy names of 2.17, 2.12 and 2.5 after theirs, in the order of preference
// packaging's tags module gives them on such a system (_manylinux.platform_tags). pip
// expands a --platform value by itself only for manylinux2014 and manylinux2010
// (pip 23.2 src/pip/_internal/utils/compatibility_tags.py, _get_custom_platforms), and
// takes the option several times for several platforms
// (https://pip.pypa.io/en/stable/cli/pip_download/#cmdoption-platform). Any other platform is
// returned alone.
func PipPlatforms(platform string) []string {
	m := manylinux.FindStringSubmatch(platform)
	if m == nil {
		return []string{platform}
	}
	top, err := strconv.Atoi(m[1])
	if err != nil || top < 5 {
		return []string{platform}
	}
	arch := m[2]
	var out []string
	for minor := top; minor >= 5; minor-- {
		out = append(out, fmt.Sprintf("manylinux_2_%d_%s", minor, arch))
		if legacy, ok := legacyManylinux[minor]; ok && (arch == "x86_64" || arch == "i686" || minor == 17) {
			out = append(out, legacy+"_"+arch)
		}
	}
	return out
}

// pipDownloadArgs are the arguments of `pip download` for the wheelhouse: exactly the files the
// lock pins (--require-hashes), no resolution of their own dependencies (--no-deps: the lock
// is the whole closure, and pip would otherwise resolve extras anew), wheels only, chosen for
// the nodes' interpreter and platform rather than this machine's
// (https://pip.pypa.io/en/stable/cli/pip_download/: --only-binary=:all: or --no-deps is
// required with these options, and all of them should be given).
func pipDownloadArgs(src Sources, python, platform, lock, dest string) []string {
	args := []string{"download", "--dest", dest, "--requirement", lock,
		"--require-hashes", "--no-deps", "--only-binary", ":all:",
		"--python-version", python, "--implementation", "cp", "--abi", "cp" + strings.ReplaceAll(python, ".", ""),
		"--no-input", "--disable-pip-version-check", "--progress-bar", "off"}
	for _, p := range PipPlatforms(platform) {
		args = append(args, "--platform", p)
	}
	if src.PipFindLinks != "" {
		args = append(args, "--no-index", "--find-links", src.PipFindLinks)
	}
	return args
}

// BuildWheelhouse downloads with pip, into dir (which the caller removes), the wheels of the
// hash-locked requirements (src.Requirements, or versions.LiteLLMRequirements) for CPython
// python on platform, packs them with PackWheelhouse, and returns the pin that describes the
// archive and the archive's path in dir. pip's output goes to progress, each line prefixed.
func BuildWheelhouse(ctx context.Context, src Sources, python, platform, dir string, progress io.Writer) (versions.WheelhousePin, string, error) {
	if progress == nil {
		progress = io.Discard
	}
	lock := src.requirements()
	pin := versions.WheelhousePin{Python: python, Platform: platform, Lock: SHA256Hex([]byte(lock))}
	lockFile := filepath.Join(dir, "requirements.txt")
	wheels := filepath.Join(dir, "wheels")
	if err := os.MkdirAll(wheels, 0o755); err != nil {
		return pin, "", err
	}
	if err := os.WriteFile(lockFile, []byte(lock), 0o644); err != nil {
		return pin, "", err
	}
	pip := src.pip()
	cmd := exec.CommandContext(ctx, pip[0], append(pip[1:], pipDownloadArgs(src, python, platform, lockFile, wheels)...)...)
	tail := &tailBuffer{max: 4096}
	lines := &prefixWriter{w: io.MultiWriter(progress, tail), prefix: "pip: "}
	cmd.Stdout, cmd.Stderr = lines, lines
	fmt.Fprintf(progress, "wheelhouse: %s download for CPython %s on %s\n", strings.Join(pip, " "), python, platform)
	err := cmd.Run()
	lines.Flush()
	if err != nil {
		return pin, "", fmt.Errorf("wheelhouse: %s download: %w\n%s", strings.Join(pip, " "), err, strings.TrimSpace(tail.String()))
	}
	entries, err := os.ReadDir(wheels)
	if err != nil {
		return pin, "", err
	}
	var files []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".whl") {
			return pin, "", fmt.Errorf("wheelhouse: pip left %s, which is not a wheel", e.Name())
		}
		p := filepath.Join(wheels, e.Name())
		sum, _, err := hashFile(p)
		if err != nil {
			return pin, "", err
		}
		files = append(files, p)
		pin.Files = append(pin.Files, versions.WheelFile{Name: e.Name(), SHA256: sum})
	}
	if len(files) == 0 {
		return pin, "", fmt.Errorf("wheelhouse: pip downloaded no wheel")
	}
	sort.Slice(pin.Files, func(i, j int) bool { return pin.Files[i].Name < pin.Files[j].Name })
	archive := filepath.Join(dir, "wheelhouse.tar.zst")
	f, err := os.Create(archive)
	if err != nil {
		return pin, "", err
	}
	err = PackWheelhouse(f, files)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return pin, "", fmt.Errorf("wheelhouse: pack: %w", err)
	}
	pin.SHA256, pin.Size, err = hashFile(archive)
	if err != nil {
		return pin, "", err
	}
	fmt.Fprintf(progress, "wheelhouse: %d wheels, %d bytes packed, sha256 %s\n", len(pin.Files), pin.Size, pin.SHA256)
	return pin, archive, nil
}

// wheelhouse brings the pinned wheelhouse into the cache, building it unless it is there.
func (c cache) wheelhouse(ctx context.Context, pin versions.WheelhousePin, src Sources, progress io.Writer) (Fetched, error) {
	o := wheelhouseObject(pin)
	if f, ok, err := c.cached(o, progress); err != nil || ok {
		return f, err
	}
	if want := SHA256Hex([]byte(src.requirements())); pin.Lock != want {
		return Fetched{}, fmt.Errorf("%s: pinned for a lock with sha256 %s, but the lock has sha256 %s: run `sandboxctl pin wheelhouse`", o.What, pin.Lock, want)
	}
	fmt.Fprintf(progress, "fetch %s: building\n", o.What)
	dir, err := os.MkdirTemp(filepath.Join(c.dir, "tmp"), "wheelhouse-*")
	if err != nil {
		return Fetched{}, err
	}
	defer os.RemoveAll(dir)
	built, archive, err := BuildWheelhouse(ctx, src, pin.Python, pin.Platform, dir, progress)
	if err != nil {
		return Fetched{}, fmt.Errorf("%s: %w", o.What, err)
	}
	if p := diffWheels(pin.Files, built.Files); p != "" {
		return Fetched{}, fmt.Errorf("%s: the wheels pip downloaded are not the pinned ones: %s: refused, nothing kept", o.What, p)
	}
	if built.SHA256 != pin.SHA256 {
		return Fetched{}, &MismatchError{What: o.What, Want: pin.SHA256, Got: built.SHA256}
	}
	p := c.path(pin.SHA256)
	if err := os.Rename(archive, p); err != nil {
		return Fetched{}, err
	}
	o.Size = built.Size
	fmt.Fprintf(progress, "fetch %s: done, %d bytes, sha256 %s verified\n", o.What, o.Size, o.SHA256)
	return Fetched{Object: o, Path: p}, nil
}

// diffWheels says how got differs from the pinned want, or "" when it does not.
func diffWheels(want, got []versions.WheelFile) string {
	pinned := map[string]string{}
	for _, f := range want {
		pinned[f.Name] = f.SHA256
	}
	var problems []string
	for _, f := range got {
		w, ok := pinned[f.Name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s (sha256 %s) is not pinned", f.Name, f.SHA256))
		case w != f.SHA256:
			problems = append(problems, fmt.Sprintf("%s has sha256 %s, %s is pinned", f.Name, f.SHA256, w))
		}
		delete(pinned, f.Name)
	}
	var missing []string
	for name := range pinned {
		missing = append(missing, name)
	}
	sort.Strings(missing)
	for _, name := range missing {
		problems = append(problems, fmt.Sprintf("pinned %s was not downloaded", name))
	}
	return strings.Join(problems, "; ")
}

// wheelhouseTime is every entry's modification time: fixed, so that the same wheels make the
// same archive.
var wheelhouseTime = time.Unix(0, 0).UTC()

// PackWheelhouse writes the wheels (paths; entries named by their base names, sorted) into a
// tar.zst reproducibly: the same files make the same bytes. Entries are regular files with
// a fixed modification time, uid and gid 0, mode 0644 and no user or group names; the zstd
// stream is one encoder setting (default level, single threaded, klauspost/compress as pinned
// in go.mod: another version of the encoder may compress differently, which a re-pin shows).
// The node agent extracts it with node.ExtractTarZst.
func PackWheelhouse(w io.Writer, files []string) error {
	sorted := append([]string(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return filepath.Base(sorted[i]) < filepath.Base(sorted[j]) })
	for i := 1; i < len(sorted); i++ {
		if filepath.Base(sorted[i]) == filepath.Base(sorted[i-1]) {
			return fmt.Errorf("two files named %s", filepath.Base(sorted[i]))
		}
	}
	enc, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	tw := tar.NewWriter(enc)
	for _, p := range sorted {
		if err := addFile(tw, p); err != nil {
			enc.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

func addFile(tw *tar.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     filepath.Base(path),
		Size:     fi.Size(),
		Mode:     0o644,
		ModTime:  wheelhouseTime,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if n, err := io.Copy(tw, f); err != nil || n != fi.Size() {
		return fmt.Errorf("%s: wrote %d of %d bytes: %v", path, n, fi.Size(), err)
	}
	return nil
}

// prefixWriter writes each complete line written to it to w with prefix.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if line := bytes.TrimRight(p.buf[:i], "\r"); len(bytes.TrimSpace(line)) > 0 {
			fmt.Fprintf(p.w, "%s%s\n", p.prefix, line)
		}
		p.buf = p.buf[i+1:]
	}
}

// Flush writes what is left after the last newline.
func (p *prefixWriter) Flush() {
	if len(bytes.TrimSpace(p.buf)) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
	}
	p.buf = nil
}

// tailBuffer keeps the last max bytes written to it, for an error message.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.b = append(t.b, b...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(b), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
