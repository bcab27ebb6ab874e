package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3 is the part of the S3 client (*s3.Client) Upload uses.
type S3 interface {
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var _ S3 = (*s3.Client)(nil)

// PartSize is the size of the parts of a multipart upload, and the size above which an object
// goes up in parts. S3 takes parts of 5 MiB to 5 GiB and at most 10,000 of them
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html); a larger object gets
// larger parts. A variable so that tests can lower it.
var PartSize int64 = 64 << 20

// maxParts is S3's limit on the parts of one upload.
const maxParts = 10000

// UploadReport counts what Upload did.
type UploadReport struct {
	// Uploaded and Skipped count objects; Bytes is what was sent.
	Uploaded, Skipped int
	Bytes             int64
}

// Upload puts each fetched object into bucket unless an object with its key is there already
// with the same size: keys are content-addressed, so the same key and size mean the same
// content, and a second run uploads nothing. An object there with another size (an upload cut
// short by hand, say) is replaced. Objects above PartSize go up in parts, with progress lines
// at most every few seconds; a failed multipart upload is aborted. No encryption header is
// sent: the bucket's default (SSE-KMS with the department key) applies.
func Upload(ctx context.Context, client S3, bucket string, objects []Fetched, progress io.Writer) (UploadReport, error) {
	if progress == nil {
		progress = io.Discard
	}
	var r UploadReport
	for _, o := range objects {
		fi, err := os.Stat(o.Path)
		if err != nil {
			return r, fmt.Errorf("upload %s: %w", o.What, err)
		}
		size := fi.Size()
		head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
		switch {
		case err == nil && aws.ToInt64(head.ContentLength) == size:
			r.Skipped++
			fmt.Fprintf(progress, "upload %s: s3://%s/%s is there already (%d bytes), skipped\n", o.What, bucket, o.Key, size)
			continue
		case err == nil:
			fmt.Fprintf(progress, "upload %s: s3://%s/%s holds %d bytes, not %d: replacing it\n", o.What, bucket, o.Key, aws.ToInt64(head.ContentLength), size)
		case !notFound(err):
			return r, fmt.Errorf("upload %s: head s3://%s/%s: %w", o.What, bucket, o.Key, err)
		}
		fmt.Fprintf(progress, "upload %s: to s3://%s/%s (%d bytes)\n", o.What, bucket, o.Key, size)
		if size > PartSize {
			err = uploadParts(ctx, client, bucket, o, size, progress)
		} else {
			err = uploadWhole(ctx, client, bucket, o, size)
		}
		if err != nil {
			return r, fmt.Errorf("upload %s to s3://%s/%s: %w", o.What, bucket, o.Key, err)
		}
		r.Uploaded++
		r.Bytes += size
		fmt.Fprintf(progress, "upload %s: done\n", o.What)
	}
	return r, nil
}

// notFound reports whether a HeadObject error says there is no such object: HEAD answers have
// no body, so the SDK reports a bare 404 as well as types.NotFound.
func notFound(err error) bool {
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	var re *smithyhttp.ResponseError
	return errors.As(err, &nf) || errors.As(err, &nsk) || errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

func uploadWhole(ctx context.Context, client S3, bucket string, o Fetched, size int64) error {
	f, err := os.Open(o.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(bucket),
		Key:           aws.String(o.Key),
		Body:          f,
		ContentLength: aws.Int64(size),
	})
	return err
}

// uploadParts sends the file in parts of PartSize (larger when 10,000 would not hold it).
func uploadParts(ctx context.Context, client S3, bucket string, o Fetched, size int64, progress io.Writer) (err error) {
	part := PartSize
	if min := (size + maxParts - 1) / maxParts; min > part {
		part = min
	}
	f, err := os.Open(o.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	created, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(o.Key)})
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		// A fresh context: the upload's own may be what was cancelled.
		abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, aerr := client.AbortMultipartUpload(abortCtx, &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(o.Key), UploadId: created.UploadId}); aerr != nil {
			err = fmt.Errorf("%w (and aborting the multipart upload failed: %v)", err, aerr)
		}
	}()
	m := newMeter(progress, "upload "+o.What, size)
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+part {
		length := min(part, size-off)
		out, err := client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        aws.String(bucket),
			Key:           aws.String(o.Key),
			UploadId:      created.UploadId,
			PartNumber:    aws.Int32(n),
			Body:          io.NewSectionReader(f, off, length),
			ContentLength: aws.Int64(length),
		})
		if err != nil {
			return fmt.Errorf("part %d: %w", n, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		m.add(length)
	}
	_, err = client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(bucket),
		Key:             aws.String(o.Key),
		UploadId:        created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}
