package mirror_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
)

// fakeS3 is an in-memory bucket for the edge cases moto would make slow: it records every call
// and can fail a part upload.
type fakeS3 struct {
	mu       sync.Mutex
	objects  map[string][]byte
	uploads  map[string]map[int32][]byte
	calls    []string
	failPart int32
}

func newFakeS3() *fakeS3 {
	return &fakeS3{objects: map[string][]byte{}, uploads: map[string]map[int32][]byte{}}
}

func (f *fakeS3) call(name, key string) {
	f.calls = append(f.calls, name+" "+key)
}

func (f *fakeS3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("HeadObject", *in.Key)
	data, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NotFound{}
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(data)))}, nil
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("PutObject", *in.Key)
	if in.ServerSideEncryption != "" || in.SSEKMSKeyId != nil {
		return nil, fmt.Errorf("an encryption header was sent")
	}
	f.objects[*in.Key] = data
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("CreateMultipartUpload", *in.Key)
	id := fmt.Sprintf("upload-%d", len(f.calls))
	f.uploads[id] = map[int32][]byte{}
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String(id)}, nil
}

func (f *fakeS3) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call(fmt.Sprintf("UploadPart %d", *in.PartNumber), *in.Key)
	if *in.PartNumber == f.failPart {
		return nil, fmt.Errorf("connection reset")
	}
	f.uploads[*in.UploadId][*in.PartNumber] = data
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprintf(`"%d"`, *in.PartNumber))}, nil
}

func (f *fakeS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("CompleteMultipartUpload", *in.Key)
	var all []byte
	for i, p := range in.MultipartUpload.Parts {
		if *p.PartNumber != int32(i+1) {
			return nil, fmt.Errorf("part %d out of order", *p.PartNumber)
		}
		all = append(all, f.uploads[*in.UploadId][*p.PartNumber]...)
	}
	f.objects[*in.Key] = all
	delete(f.uploads, *in.UploadId)
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (f *fakeS3) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("AbortMultipartUpload", *in.Key)
	delete(f.uploads, *in.UploadId)
	return &s3.AbortMultipartUploadOutput{}, nil
}

// objectsOf writes files of the given sizes and returns them as fetched objects.
func objectsOf(t *testing.T, sizes ...int) []mirror.Fetched {
	t.Helper()
	dir := t.TempDir()
	var out []mirror.Fetched
	for i, n := range sizes {
		data := bytes.Repeat([]byte{byte('a' + i)}, n)
		sum := mirror.SHA256Hex(data)
		p := filepath.Join(dir, sum)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, mirror.Fetched{Object: mirror.Object{Key: mirror.ModelBlobKey(sum), SHA256: sum, Size: int64(n), What: fmt.Sprintf("blob %d", i)}, Path: p})
	}
	return out
}

// lowerPartSize sets mirror.PartSize for one test.
func lowerPartSize(t *testing.T, n int64) {
	old := mirror.PartSize
	mirror.PartSize = n
	t.Cleanup(func() { mirror.PartSize = old })
}

func TestUploadSkipsWhatIsThereAndSendsLargeFilesInParts(t *testing.T) {
	lowerPartSize(t, 1000)
	objs := objectsOf(t, 10, 2500)
	fake := newFakeS3()
	var progress bytes.Buffer
	r, err := mirror.Upload(context.Background(), fake, "bucket", objs, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if r != (mirror.UploadReport{Uploaded: 2, Bytes: 2510}) {
		t.Errorf("report %+v", r)
	}
	want := []string{"HeadObject " + objs[0].Key, "PutObject " + objs[0].Key, "HeadObject " + objs[1].Key, "CreateMultipartUpload " + objs[1].Key,
		"UploadPart 1 " + objs[1].Key, "UploadPart 2 " + objs[1].Key, "UploadPart 3 " + objs[1].Key, "CompleteMultipartUpload " + objs[1].Key}
	if strings.Join(fake.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(fake.calls, "\n"), strings.Join(want, "\n"))
	}
	for _, o := range objs {
		data, _ := os.ReadFile(o.Path)
		if !bytes.Equal(fake.objects[o.Key], data) {
			t.Errorf("%s: the bucket holds %d bytes, not the file", o.Key, len(fake.objects[o.Key]))
		}
	}

	// Again: nothing is sent.
	fake.calls = nil
	r, err = mirror.Upload(context.Background(), fake, "bucket", objs, &progress)
	if err != nil || r != (mirror.UploadReport{Skipped: 2}) || len(fake.calls) != 2 {
		t.Errorf("second Upload: %+v, %v, calls %q", r, err, fake.calls)
	}

	// An object of the wrong size is replaced.
	fake.objects[objs[0].Key] = []byte("short")
	r, err = mirror.Upload(context.Background(), fake, "bucket", objs, &progress)
	if err != nil || r.Uploaded != 1 || len(fake.objects[objs[0].Key]) != 10 || !strings.Contains(progress.String(), "replacing it") {
		t.Errorf("a short object was not replaced: %+v, %v", r, err)
	}
}

func TestUploadAbortsAFailedMultipartUpload(t *testing.T) {
	lowerPartSize(t, 1000)
	objs := objectsOf(t, 2500)
	fake := newFakeS3()
	fake.failPart = 2
	_, err := mirror.Upload(context.Background(), fake, "bucket", objs, nil)
	if err == nil || !strings.Contains(err.Error(), "part 2") || !strings.Contains(err.Error(), "blob 0") {
		t.Fatalf("Upload = %v, want the failed part named", err)
	}
	if last := fake.calls[len(fake.calls)-1]; last != "AbortMultipartUpload "+objs[0].Key || len(fake.uploads) != 0 || len(fake.objects) != 0 {
		t.Errorf("the upload was not aborted: calls %q", fake.calls)
	}
}

// Against moto's S3: a whole object and one in parts of S3's smallest size, and a second run
// that uploads nothing.
func TestUploadToMoto(t *testing.T) {
	python := localruntest.RequireMoto(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	moto := localruntest.StartMoto(t, python, root, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := s3.New(s3.Options{
		Region:       localruntest.Region,
		BaseEndpoint: aws.String(moto.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	const bucket = "chemistry-artifacts"
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	lowerPartSize(t, 5<<20)
	objs := objectsOf(t, 1000, 11<<20)
	var progress bytes.Buffer
	r, err := mirror.Upload(ctx, client, bucket, objs, &progress)
	if err != nil {
		t.Fatalf("Upload: %v\n%s", err, progress.String())
	}
	if r.Uploaded != 2 || r.Bytes != 1000+11<<20 {
		t.Errorf("report %+v", r)
	}
	for _, o := range objs {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || mirror.SHA256Hex(data) != o.SHA256 {
			t.Errorf("%s: moto holds other bytes (err %v)", o.Key, err)
		}
	}
	r, err = mirror.Upload(ctx, client, bucket, objs, &progress)
	if err != nil || r != (mirror.UploadReport{Skipped: 2}) {
		t.Errorf("second Upload: %+v, %v", r, err)
	}
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("GetObject", *in.Key)
	data, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(data)), ContentLength: aws.Int64(int64(len(data)))}, nil
}

// TestSyncFetchesOnlyWhatTheBucketLacks: a first Sync fetches everything and uploads it; a
// second, from a machine with an empty cache, finds every object in the bucket (the blobs
// through the manifests it reads back) and makes no request upstream; a lost blob makes it
// fetch and upload that one again; a manifest edited in the bucket is an error naming it.
func TestSyncFetchesOnlyWhatTheBucketLacks(t *testing.T) {
	f := newFixture(t, false)
	fake := newFakeS3()
	ctx := context.Background()
	var progress bytes.Buffer
	r, err := mirror.Sync(ctx, fake, "bucket", f.set, f.src, f.cacheDir, &progress)
	if err != nil {
		t.Fatalf("Sync: %v\n%s", err, progress.String())
	}
	if r.Uploaded != 9 || r.Skipped != 0 || len(fake.objects) != 9 {
		t.Fatalf("first Sync: %+v, %d objects in the bucket, want 9 uploaded", r, len(fake.objects))
	}

	f.srv.ResetRequests()
	fake.calls = nil
	progress.Reset()
	r, err = mirror.Sync(ctx, fake, "bucket", f.set, f.src, t.TempDir(), &progress)
	if err != nil {
		t.Fatal(err)
	}
	if r != (mirror.UploadReport{Skipped: 9}) || f.srv.Requests("") != 0 {
		t.Errorf("second Sync: %+v with %d upstream requests, want 9 skipped and none", r, f.srv.Requests(""))
	}
	for _, c := range fake.calls {
		if !strings.HasPrefix(c, "HeadObject ") && !strings.HasPrefix(c, "GetObject "+mirror.ModelManifestKey("")) {
			t.Errorf("second Sync called %s: it should only look", c)
		}
	}
	if !strings.Contains(progress.String(), "holds all 9 objects already") {
		t.Errorf("progress:\n%s", progress.String())
	}

	// A blob lost from the bucket is fetched and uploaded again, and only it.
	var lost string
	for sum := range f.b.Blobs {
		lost = mirror.ModelBlobKey(sum)
		break
	}
	delete(fake.objects, lost)
	r, err = mirror.Sync(ctx, fake, "bucket", f.set, f.src, f.cacheDir, &progress)
	if err != nil || r.Uploaded != 1 || r.Skipped != 8 || fake.objects[lost] == nil {
		t.Errorf("after losing %s: %+v, %v", lost, r, err)
	}

	// A manifest changed in the bucket is refused, by key.
	key := mirror.ModelManifestKey(f.a.Pin.Manifest)
	fake.objects[key] = append(fake.objects[key], ' ')
	if _, err := mirror.Sync(ctx, fake, "bucket", f.set, f.src, f.cacheDir, &progress); err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "not its pin") {
		t.Errorf("an edited manifest: err = %v", err)
	}
}
