package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// ObjectGetter reads one object from S3. It is the seam for s3:// artifacts; the agent's
// default, S3Objects, reads with the instance role.
type ObjectGetter interface {
	GetObject(ctx context.Context, bucket, key string) (io.ReadCloser, error)
}

// S3Objects reads objects with aws-sdk-go-v2's S3 client.
type S3Objects struct {
	Client *s3.Client
}

// NewS3Objects builds an S3 client for region from the default credential chain (the
// instance role on a node). When AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL points the SDK at an
// emulator, it switches to path-style addressing, which emulators on a bare address need.
func NewS3Objects(ctx context.Context, region string) (*S3Objects, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("load AWS config for S3: %w", err)
	}
	pathStyle := os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		// The SHA-256 from the node config is the check that matters; the SDK's note that an
		// object has no stored checksum would only clutter the journal.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return &S3Objects{Client: client}, nil
}

// GetObject returns the object's body.
func (o *S3Objects) GetObject(ctx context.Context, bucket, key string) (io.ReadCloser, error) {
	out, err := o.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	return out.Body, nil
}

// ChecksumError is a download whose SHA-256 differs from the config's. It is never retried:
// the mirror holds the wrong file (or someone tampered with it), and fetching it again
// changes nothing.
type ChecksumError struct {
	URL  string
	Want string
	Got  string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("checksum mismatch for %s: want sha256 %s, got %s", e.URL, e.Want, e.Got)
}

// httpStatusError is a download answered with a status other than 200.
type httpStatusError struct {
	URL    string
	Status string
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("GET %s: %s", e.URL, e.Status) }

// transientStatus reports whether an HTTP status is worth retrying.
func transientStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// openArtifact opens an artifact's URL: http(s) with the agent's HTTP client, s3://bucket/key
// with its ObjectGetter. Errors that retrying cannot fix are marked permanent.
func (a *Agent) openArtifact(ctx context.Context, rawURL string) (io.ReadCloser, int64, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, permanent(fmt.Errorf("parse %q: %w", rawURL, err))
	}
	switch u.Scheme {
	case "http", "https":
		return openHTTP(ctx, a.downloads, rawURL)
	case "s3":
		objects, err := a.s3(ctx)
		if err != nil {
			return nil, 0, err
		}
		body, err := objects.GetObject(ctx, u.Host, strings.TrimPrefix(u.Path, "/"))
		if err != nil {
			err = fmt.Errorf("get %s: %w", rawURL, err)
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) {
				switch apiErr.ErrorCode() {
				case "NoSuchKey", "NoSuchBucket", "InvalidBucketName", "NotFound":
					return nil, 0, permanent(err)
				}
			}
			return nil, 0, err
		}
		return body, -1, nil
	default:
		return nil, 0, permanent(fmt.Errorf("unsupported URL scheme in %q", rawURL))
	}
}

// DownloadClient is the HTTP client artifacts are downloaded with: it honours HTTP(S)_PROXY and
// bounds the connection, the TLS handshake and the wait for the answer's headers, but not the
// transfer, which may take long on a slow link.
func DownloadClient() *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		ForceAttemptHTTP2:     true,
	}}
}

// openHTTP GETs rawURL with client and returns the body of a 200 answer and its length (-1
// when unknown). Errors that retrying cannot fix are marked permanent.
func openHTTP(ctx context.Context, client *http.Client, rawURL string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, permanent(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", rawURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		err := &httpStatusError{URL: rawURL, Status: resp.Status}
		if transientStatus(resp.StatusCode) {
			return nil, 0, err
		}
		return nil, 0, permanent(err)
	}
	return resp.Body, resp.ContentLength, nil
}

// s3 returns the ObjectGetter, building the default one on first use so that nodes which
// never read from S3 never load AWS config for it.
func (a *Agent) s3(ctx context.Context) (ObjectGetter, error) {
	if a.objects != nil {
		return a.objects, nil
	}
	objects, err := NewS3Objects(ctx, a.cfg.Region)
	if err != nil {
		return nil, err
	}
	a.objects = objects
	return objects, nil
}

// fetch downloads an artifact into a temporary file under CacheDir, hashing while it streams,
// and returns the file's path once the SHA-256 matches. Transient failures are retried with
// the agent's policy; a checksum mismatch is not. The caller removes the file.
func (a *Agent) fetch(ctx context.Context, step, what string, art Artifact) (string, error) {
	dir := a.path(CacheDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	return a.fetchInto(ctx, step, what, art, dir)
}

// fetchInto is fetch into a temporary file in dir, which exists: a file the caller then
// renames in place, atomically.
func (a *Agent) fetchInto(ctx context.Context, step, what string, art Artifact, dir string) (string, error) {
	if !rules.IsSHA256Hex(art.SHA256) {
		// Config validation refuses this first; the check here keeps fetch from ever
		// accepting a file it cannot verify.
		return "", permanent(fmt.Errorf("%s: no pinned sha256 for %s (got %q)", what, art.URL, art.SHA256))
	}
	var file string
	err := a.retry(ctx, step, "download "+what, func(ctx context.Context) error {
		var err error
		file, err = a.fetchOnce(ctx, step, what, art, dir)
		return err
	})
	if err != nil {
		return "", err
	}
	return file, nil
}

func (a *Agent) fetchOnce(ctx context.Context, step, what string, art Artifact, dir string) (string, error) {
	a.log.Printf("step %s: downloading %s from %s", step, what, art.URL)
	body, size, err := a.openArtifact(ctx, art.URL)
	if err != nil {
		return "", err
	}
	defer body.Close()
	progress := &Progress{Printf: a.log.Printf, What: "step " + step + ": " + what, Total: size, Every: 30 * time.Second}
	file, n, err := saveVerified(body, art, dir, progress)
	if err != nil {
		return "", err
	}
	a.log.Printf("step %s: %s: %d bytes, sha256 %s verified", step, what, n, art.SHA256)
	return file, nil
}

// saveVerified copies body into a new temporary file in dir, hashing while it streams and
// passing the bytes on to progress, and returns the file and its size once its SHA-256 is
// art's. On any error, a checksum mismatch (permanent) included, it removes the file.
func saveVerified(body io.Reader, art Artifact, dir string, progress io.Writer) (string, int64, error) {
	f, err := os.CreateTemp(dir, "download-*")
	if err != nil {
		return "", 0, permanent(fmt.Errorf("create temporary file in %s: %w", dir, err))
	}
	keep := false
	defer func() {
		if !keep {
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h, progress), body)
	if cerr := f.Close(); err == nil && cerr != nil {
		return "", n, fmt.Errorf("write %s: %w", f.Name(), cerr)
	}
	if err != nil {
		return "", n, fmt.Errorf("download %s after %d bytes: %w", art.URL, n, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != art.SHA256 {
		return "", n, permanent(&ChecksumError{URL: art.URL, Want: art.SHA256, Got: got})
	}
	keep = true
	return f.Name(), n, nil
}

// Download fetches art over HTTP(S) with client into a new file in dir (which must exist),
// checking its SHA-256 as the agent checks every artifact, and returns the file's path. It
// makes one attempt: the caller decides about retries. A mismatch is a *ChecksumError and
// leaves no file. progress, when not nil, receives the bytes as they arrive; size is the
// length the server announced (-1 when it did not), for a progress display.
func Download(ctx context.Context, client *http.Client, art Artifact, dir string, progress func(size int64) io.Writer) (string, error) {
	if !rules.IsSHA256Hex(art.SHA256) {
		return "", fmt.Errorf("no pinned sha256 for %s (got %q)", art.URL, art.SHA256)
	}
	body, size, err := openHTTP(ctx, client, art.URL)
	if err != nil {
		return "", err
	}
	defer body.Close()
	w := io.Discard
	if progress != nil {
		w = progress(size)
	}
	file, _, err := saveVerified(body, art, dir, w)
	return file, err
}

// VerifyFile checks that the file at path has the SHA-256 of art (a *ChecksumError naming
// path when it has not), for a download kept from an earlier run.
func VerifyFile(path string, art Artifact) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != art.SHA256 {
		return &ChecksumError{URL: path, Want: art.SHA256, Got: got}
	}
	return nil
}

// Progress reports a transfer's progress through Printf, so a long download shows as progress
// rather than as a hang: at each tenth of a known Total of 1 MiB or more, and whenever Every has passed since
// the last report (a slow tenth, or an unknown total). It is an io.Writer counting the bytes
// written to it; Set reports a position known otherwise (Ollama's pull status).
type Progress struct {
	Printf func(format string, args ...any)
	// What names the transfer at the start of each line.
	What string
	// Total is the size in bytes; 0 or less when unknown.
	Total int64
	// Every is the longest time between two reports; 0 reports tenths only.
	Every time.Duration

	n      int64
	tenths int64
	last   time.Time
}

// Write counts b.
func (p *Progress) Write(b []byte) (int, error) {
	p.Set(p.n + int64(len(b)))
	return len(b), nil
}

// Set reports that n bytes have been transferred.
func (p *Progress) Set(n int64) {
	now := time.Now()
	if p.last.IsZero() {
		p.last = now
	}
	p.n = n
	report := p.Every > 0 && now.Sub(p.last) >= p.Every
	// Tenths of a transfer under 1 MiB would only clutter the log.
	if p.Total >= 1<<20 {
		if t := min(n, p.Total) * 10 / p.Total; t > p.tenths {
			p.tenths, report = t, true
		}
	}
	if !report {
		return
	}
	p.last = now
	if p.Total > 0 {
		p.Printf("%s: %d%% (%d of %d MiB)", p.What, min(n, p.Total)*100/p.Total, n>>20, p.Total>>20)
	} else {
		p.Printf("%s: %d MiB", p.What, n>>20)
	}
}
