package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	fs := flagSet(e, "pin", "pin ollama VERSION [--release-base URL]",
		"Records the SHA-256 of an upstream release in versions/versions.go, for review in a pull\n"+
			"request. Run it on a machine with internet access: it reads the release's own checksum\n"+
			"file, <release-base>/v<VERSION>/sha256sum.txt, takes the line for\n"+
			versions.OllamaAsset+", prints where the hash came from, and rewrites the\n"+
			"Ollama entry (Version, URL, SHA256, SumsURL, and its comment) in versions/versions.go,\n"+
			"leaving the rest of the file as it is. Nodes then check the release against that\n"+
			"hash and nothing else. Versions below "+versions.OllamaFloor+" are refused. Pinning the version\n"+
			"already pinned confirms its hash: the file is then unchanged. Exit 0, 1 the checksum\n"+
			"file could not be read or does not list the release, or 2 usage error.")
	base := fs.String("release-base", versions.OllamaReleases, "where the releases are published: `URL`/v<VERSION>/sha256sum.txt")
	positional, err := parseArgs(fs, args, nil)
	if err != nil {
		return err
	}
	if len(positional) != 2 || positional[0] != "ollama" {
		return usagef("want: pin ollama VERSION (got %s)", strings.Join(positional, " "))
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
	want := versions.OllamaRelease(*base, version, "")
	sums, err := fetchSums(want.SumsURL)
	if err != nil {
		return err
	}
	sha, err := versions.SumFor(sums, versions.OllamaAsset)
	if err != nil {
		return fmt.Errorf("%s: %w", want.SumsURL, err)
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
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s: review the change and commit it in a pull request\n", path)
	return nil
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
