package mirror

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
)

// Bucket is the part of the S3 client (*s3.Client) Sync uses: Upload's calls and GetObject,
// to read the models' manifests back from the bucket.
type Bucket interface {
	S3
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ Bucket = (*s3.Client)(nil)

// maxManifest bounds a manifest read back from the bucket: a manifest is a few hundred bytes.
const maxManifest = 1 << 20

// Sync makes bucket hold every object of set, fetching on this machine only when something is
// missing. It first looks in the bucket: the release, the wheelhouse and each model's manifest
// by key (and size, where the pin records one); then, through each manifest read back from the
// bucket and checked against its pin, every blob the manifest names, by key and size. When
// all are there it fetches and uploads nothing, so a second deploy, from this machine or
// another, costs a few requests; otherwise it runs Fetch into cacheDir and Upload, which
// skips what is already there. A manifest in the bucket that does not match its pin is an
// error naming the key (keys are content-addressed, so only a hand edit gets there): delete
// the object and deploy again.
func Sync(ctx context.Context, client Bucket, bucket string, set Set, src Sources, cacheDir string, progress io.Writer) (UploadReport, error) {
	if progress == nil {
		progress = io.Discard
	}
	missing, total, err := missingObjects(ctx, client, bucket, set)
	if err != nil {
		return UploadReport{}, err
	}
	if missing == 0 {
		fmt.Fprintf(progress, "mirror: s3://%s holds all %d objects already; nothing to fetch or upload\n", bucket, total)
		return UploadReport{Skipped: total}, nil
	}
	fmt.Fprintf(progress, "mirror: s3://%s lacks %d of the objects known before fetching; fetching into %s\n", bucket, missing, cacheDir)
	fetched, err := Fetch(ctx, set, src, cacheDir, progress)
	if err != nil {
		return UploadReport{}, err
	}
	report, err := Upload(ctx, client, bucket, fetched, progress)
	if err != nil {
		return report, err
	}
	fmt.Fprintf(progress, "mirror: s3://%s complete: %d uploaded (%d bytes), %d there already\n", bucket, report.Uploaded, report.Bytes, report.Skipped)
	return report, nil
}

// missingObjects counts the objects of set that bucket lacks, and all it looked for. A model
// whose manifest is missing counts as one: its blobs are known only once it is fetched.
func missingObjects(ctx context.Context, client Bucket, bucket string, set Set) (missing, total int, err error) {
	look := func(key string, size int64) error {
		total++
		ok, err := present(ctx, client, bucket, key, size)
		if !ok {
			missing++
		}
		return err
	}
	if err := look(OllamaReleaseKey(set.Ollama.SHA256), 0); err != nil {
		return 0, 0, err
	}
	if w := set.Wheelhouse; w != nil {
		if err := look(WheelhouseKey(w.SHA256), w.Size); err != nil {
			return 0, 0, err
		}
	}
	seen := map[string]bool{}
	for _, m := range set.Models {
		manifest, err := readManifest(ctx, client, bucket, m)
		total++
		if err != nil {
			return 0, 0, err
		}
		if manifest == nil {
			missing++
			continue
		}
		for _, l := range manifest.Blobs() {
			hexSum, err := ollamastore.DigestHex(l.Digest)
			if err != nil {
				return 0, 0, fmt.Errorf("model %s manifest in s3://%s: %w", m.Name, bucket, err)
			}
			if key := ModelBlobKey(hexSum); !seen[key] {
				seen[key] = true
				if err := look(key, l.Size); err != nil {
					return 0, 0, err
				}
			}
		}
	}
	return missing, total, nil
}

// present reports whether bucket holds key (with size bytes, when size is above 0).
func present(ctx context.Context, client Bucket, bucket, key string, size int64) (bool, error) {
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	switch {
	case err == nil:
		return size <= 0 || aws.ToInt64(head.ContentLength) == size, nil
	case notFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("mirror: head s3://%s/%s: %w", bucket, key, err)
	}
}

// readManifest reads model m's manifest back from bucket and checks it against its pin; nil
// when the bucket does not hold it.
func readManifest(ctx context.Context, client Bucket, bucket string, m Model) (*ollamastore.Manifest, error) {
	key := ModelManifestKey(m.Pin.Manifest)
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mirror: get s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("mirror: read s3://%s/%s: %w", bucket, key, err)
	}
	if got := SHA256Hex(data); got != m.Pin.Manifest {
		return nil, fmt.Errorf("mirror: s3://%s/%s, the manifest of model %s, has SHA-256 %s, not its pin %s: delete the object and deploy again",
			bucket, key, m.Name, got, m.Pin.Manifest)
	}
	manifest, err := ollamastore.ParseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("mirror: s3://%s/%s, the manifest of model %s: %w", bucket, key, m.Name, err)
	}
	return manifest, nil
}
