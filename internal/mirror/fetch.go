package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Sources are where Fetch downloads from. Zero values take the public defaults: Ollama
// releases from versions.OllamaReleases (the release's own URL when the pin has one); the
// model registry DefaultRegistry; pip is `python3 -m pip`, downloading from the index pip is
// configured with.
type Sources struct {
	// OllamaReleases is the base URL of Ollama releases: <base>/v<version>/<asset>.
	OllamaReleases string
	// Registry is the base URL of an Ollama registry (/v2/<ns>/<model>/manifests/<tag>,
	// /v2/<ns>/<model>/blobs/<digest>).
	Registry string
	// Pip is the command that runs pip, e.g. ["python3", "-m", "pip"].
	Pip []string
	// PipFindLinks is optional: a local directory of wheels to download from instead of an
	// index (tests).
	PipFindLinks string
	// Requirements is the hash-locked requirements file the wheelhouse is built from; ""
	// means versions.LiteLLMRequirements (tests give their own).
	Requirements string
	// HTTPClient downloads releases and models; nil means one that honours HTTP(S)_PROXY and
	// bounds connecting and waiting for headers, but not the transfer.
	HTTPClient *http.Client
}

func (s Sources) registry() string {
	if s.Registry == "" {
		return DefaultRegistry
	}
	return strings.TrimSuffix(s.Registry, "/")
}

func (s Sources) pip() []string {
	if len(s.Pip) == 0 {
		return []string{"python3", "-m", "pip"}
	}
	return s.Pip
}

func (s Sources) requirements() string {
	if s.Requirements == "" {
		return versions.LiteLLMRequirements
	}
	return s.Requirements
}

func (s Sources) client() *http.Client {
	if s.HTTPClient != nil {
		return s.HTTPClient
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		ForceAttemptHTTP2:     true,
	}}
}

// releaseURL is where the release is fetched from.
func (s Sources) releaseURL(r versions.Release) string {
	if s.OllamaReleases == "" && r.URL != "" {
		return r.URL
	}
	base := s.OllamaReleases
	if base == "" {
		base = versions.OllamaReleases
	}
	return versions.OllamaRelease(base, r.Version, r.SHA256).URL
}

// DefaultCacheDir is where fetched files are kept between runs:
// $XDG_CACHE_HOME/llm-sandbox/mirror, or ~/.cache/llm-sandbox/mirror.
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("mirror cache: %w", err)
	}
	return filepath.Join(dir, "llm-sandbox", "mirror"), nil
}

// Fetched is one object of the mirror in the cache.
type Fetched struct {
	Object
	// Path is the verified file in the cache.
	Path string
}

// Fetch brings every object of the set into the cache (a directory of files named by their
// SHA-256, <cacheDir>/sha256/<hex>, so a file is downloaded once per machine whatever stack
// needs it), skipping those already there, whose hash it re-checks. It verifies each against
// its pin: the release against Release.SHA256, each model's manifest against Pin.Manifest and
// then each blob the manifest names against its digest, the wheelhouse by building it
// (BuildWheelhouse), checking that the downloaded files are exactly pin.Files with their
// hashes and that the archive has pin.SHA256. A mismatch anywhere is an error naming the
// object and both hashes, and nothing unverified stays in the cache: every download goes to a
// temporary file that is renamed into place once verified. progress (nil: none) gets one line
// per object started and done, and for large downloads a line at most every few seconds. It
// returns every object, model blobs included, sorted by key, each once.
func Fetch(ctx context.Context, set Set, src Sources, cacheDir string, progress io.Writer) ([]Fetched, error) {
	if progress == nil {
		progress = io.Discard
	}
	c, err := openCache(cacheDir)
	if err != nil {
		return nil, err
	}
	client := src.client()
	var out []Fetched
	seen := map[string]bool{}
	add := func(f Fetched) {
		if !seen[f.Key] {
			seen[f.Key] = true
			out = append(out, f)
		}
	}

	release := set.releaseObject(src.releaseURL(set.Ollama))
	if !rules.IsSHA256Hex(release.SHA256) {
		return nil, fmt.Errorf("%s: no pinned SHA-256 (got %q): %s", release.What, release.SHA256, versions.PinAdvice(set.Ollama.Version))
	}
	f, err := c.download(ctx, client, release, "", progress)
	if err != nil {
		return nil, err
	}
	add(f)

	if set.Wheelhouse != nil {
		f, err := c.wheelhouse(ctx, *set.Wheelhouse, src, progress)
		if err != nil {
			return nil, err
		}
		add(f)
	}

	for _, m := range set.Models {
		fs, err := c.model(ctx, client, m, src.registry(), seen, progress)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			add(f)
		}
	}
	sortFetched(out)
	return out, nil
}

func sortFetched(fs []Fetched) {
	objs := make([]Object, len(fs))
	byKey := make(map[string]Fetched, len(fs))
	for i, f := range fs {
		objs[i] = f.Object
		byKey[f.Key] = f
	}
	sortObjects(objs)
	for i, o := range objs {
		fs[i] = byKey[o.Key]
	}
}

// model fetches m's manifest, checks it against the pin, then fetches every blob it names but
// those in done (shared with a model fetched before).
func (c cache) model(ctx context.Context, client *http.Client, m Model, registry string, done map[string]bool, progress io.Writer) ([]Fetched, error) {
	name, err := ollamastore.ParseName(m.Name)
	if err != nil {
		return nil, err
	}
	mf, err := c.download(ctx, client, manifestObject(m, registry), ollamastore.ManifestMediaType, progress)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(mf.Path)
	if err != nil {
		return nil, err
	}
	manifest, err := ollamastore.ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Name, err)
	}
	out := []Fetched{mf}
	for _, l := range manifest.Blobs() {
		obj, err := blobObject(name, m.Name, l, registry)
		if err != nil {
			return nil, err
		}
		if done[obj.Key] {
			continue
		}
		f, err := c.download(ctx, client, obj, "", progress)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// FetchManifest GETs the manifest of model name (an Ollama tag) from the registry at base
// (DefaultRegistry when "") and returns its bytes as served, checked to be a manifest. It is
// what `sandboxctl pin model` records the hash of.
func FetchManifest(ctx context.Context, client *http.Client, base, name string) ([]byte, error) {
	n, err := ollamastore.ParseName(name)
	if err != nil {
		return nil, err
	}
	if base == "" {
		base = DefaultRegistry
	}
	if client == nil {
		client = Sources{}.client()
	}
	url := strings.TrimSuffix(base, "/") + n.RegistryManifestPath()
	body, _, err := get(ctx, client, url, ollamastore.ManifestMediaType)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("%s: a manifest of more than %d bytes", url, maxManifestBytes)
	}
	if _, err := ollamastore.ParseManifest(data); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return data, nil
}

// maxManifestBytes bounds a manifest: it lists a handful of blobs.
const maxManifestBytes = 1 << 20

// PinModel fetches model name's manifest from the registry at base and returns its pin,
// dated day (YYYY-MM-DD).
func PinModel(ctx context.Context, client *http.Client, base, name, day string) (versions.ModelPin, error) {
	data, err := FetchManifest(ctx, client, base, name)
	if err != nil {
		return versions.ModelPin{}, err
	}
	m, err := ollamastore.ParseManifest(data)
	if err != nil {
		return versions.ModelPin{}, err
	}
	return versions.ModelPin{Manifest: SHA256Hex(data), Size: m.Size(), Pinned: day}, nil
}

// get GETs url (asking for accept, when not "") and returns the body of a 200 answer and its
// announced length (-1 when unknown). The registry answers a blob with a redirect to its
// storage, which the client follows (ollama server/download.go does the same).
func get(ctx context.Context, client *http.Client, url, accept string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if accept != "" {
		// What Ollama asks the registry for (ollama server/images.go, pullModelManifest).
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, resp.ContentLength, nil
}

// cache is a directory of verified files named by their SHA-256.
type cache struct{ dir string }

func openCache(dir string) (cache, error) {
	if dir == "" {
		return cache{}, errors.New("mirror cache: no directory")
	}
	for _, d := range []string{filepath.Join(dir, "sha256"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return cache{}, fmt.Errorf("mirror cache: %w", err)
		}
	}
	return cache{dir: dir}, nil
}

// path is where the file with SHA-256 sum is kept.
func (c cache) path(sum string) string { return filepath.Join(c.dir, "sha256", sum) }

// temp creates a temporary file beside the cache's files, so a rename puts it in place.
func (c cache) temp(pattern string) (*os.File, error) {
	return os.CreateTemp(filepath.Join(c.dir, "tmp"), pattern)
}

// cached returns o from the cache when it is there with o's hash. A file there with another
// hash (a disk error, a hand edit) is removed, and the caller fetches it again.
func (c cache) cached(o Object, progress io.Writer) (Fetched, bool, error) {
	p := c.path(o.SHA256)
	got, n, err := hashFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return Fetched{}, false, nil
	}
	if err != nil {
		return Fetched{}, false, err
	}
	if got != o.SHA256 {
		fmt.Fprintf(progress, "fetch %s: the cached copy has sha256 %s, want %s: removed, fetching again\n", o.What, got, o.SHA256)
		if err := os.Remove(p); err != nil {
			return Fetched{}, false, err
		}
		return Fetched{}, false, nil
	}
	o.Size = n
	fmt.Fprintf(progress, "fetch %s: in the cache, sha256 %s verified\n", o.What, o.SHA256)
	return Fetched{Object: o, Path: p}, true, nil
}

// download brings o into the cache from o.Source unless it is there already.
func (c cache) download(ctx context.Context, client *http.Client, o Object, accept string, progress io.Writer) (Fetched, error) {
	if f, ok, err := c.cached(o, progress); err != nil || ok {
		return f, err
	}
	fmt.Fprintf(progress, "fetch %s: from %s\n", o.What, o.Source)
	body, size, err := get(ctx, client, o.Source, accept)
	if err != nil {
		return Fetched{}, fmt.Errorf("%s: %w", o.What, err)
	}
	defer body.Close()
	if size < 0 {
		size = o.Size
	}
	tmp, err := c.temp("download-*")
	if err != nil {
		return Fetched{}, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	m := newMeter(progress, "fetch "+o.What, size)
	n, err := io.Copy(io.MultiWriter(tmp, h, m), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Fetched{}, fmt.Errorf("%s: download %s after %d bytes: %w", o.What, o.Source, n, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != o.SHA256 {
		return Fetched{}, &MismatchError{What: o.What, Source: o.Source, Want: o.SHA256, Got: got}
	}
	if o.Size > 0 && n != o.Size {
		return Fetched{}, fmt.Errorf("%s: %d bytes, the manifest says %d", o.What, n, o.Size)
	}
	p := c.path(o.SHA256)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return Fetched{}, err
	}
	o.Size = n
	fmt.Fprintf(progress, "fetch %s: done, %d bytes, sha256 %s verified\n", o.What, n, o.SHA256)
	return Fetched{Object: o, Path: p}, nil
}

// MismatchError is a file whose SHA-256 is not the one pinned for it.
type MismatchError struct {
	// What names the object; Source is where it came from ("" when built).
	What, Source string
	// Want is the pinned hash, Got the file's.
	Want, Got string
}

func (e *MismatchError) Error() string {
	from := ""
	if e.Source != "" {
		from = " from " + e.Source
	}
	return fmt.Sprintf("%s%s has sha256 %s, but %s is pinned: refused, nothing kept", e.What, from, e.Got, e.Want)
}

// StoreInCache moves the file at path, which must have SHA-256 sum, into the cache at
// cacheDir (a file built elsewhere, such as the wheelhouse `sandboxctl pin wheelhouse` packs,
// so that the next Fetch finds it), and returns its path there.
func StoreInCache(cacheDir, path, sum string) (string, error) {
	c, err := openCache(cacheDir)
	if err != nil {
		return "", err
	}
	got, _, err := hashFile(path)
	if err != nil {
		return "", err
	}
	if got != sum {
		return "", &MismatchError{What: path, Want: sum, Got: got}
	}
	tmp, err := c.temp("store-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	src, err := os.Open(path)
	if err != nil {
		tmp.Close()
		return "", err
	}
	defer src.Close()
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	p := c.path(sum)
	return p, os.Rename(tmp.Name(), p)
}

// hashFile returns the lowercase hex SHA-256 and the length of the file at path.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// progressEvery is the longest time between two progress lines of one transfer.
const progressEvery = 5 * time.Second

// meter writes "<what>: N of M MiB" lines to w as bytes are written to it, at most one every
// progressEvery and only for transfers of 16 MiB or more (smaller ones take a moment).
type meter struct {
	w     io.Writer
	what  string
	total int64
	n     int64
	last  time.Time
	now   func() time.Time
}

func newMeter(w io.Writer, what string, total int64) *meter {
	return &meter{w: w, what: what, total: total, now: time.Now, last: time.Now()}
}

func (m *meter) Write(b []byte) (int, error) {
	m.add(int64(len(b)))
	return len(b), nil
}

func (m *meter) add(n int64) {
	m.n += n
	if m.total > 0 && m.total < 16<<20 {
		return
	}
	if now := m.now(); now.Sub(m.last) >= progressEvery {
		m.last = now
		if m.total > 0 {
			fmt.Fprintf(m.w, "%s: %d of %d MiB\n", m.what, m.n>>20, m.total>>20)
		} else {
			fmt.Fprintf(m.w, "%s: %d MiB\n", m.what, m.n>>20)
		}
	}
}
