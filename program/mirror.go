package program

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
)

// mirrorUploader is the sandbox's UploadMirror for an update: it syncs the stack's mirror into
// the artifacts bucket from this machine (internal/mirror Sync), with the deploying
// credentials the AWS provider also uses (the standard chain: environment, profile, SSO) in
// the stack's region. Objects are fetched from GitHub, PyPI and the Ollama registry into the
// per-machine cache only when the bucket lacks one; each progress line becomes an info line of
// the update.
func mirrorUploader(ctx *pulumi.Context, region string) func(context.Context, string, mirror.Set) error {
	return func(c context.Context, bucket string, set mirror.Set) error {
		cfg, err := awsconfig.LoadDefaultConfig(c, awsconfig.WithRegion(region))
		if err != nil {
			return fmt.Errorf("AWS config for region %s: %w", region, err)
		}
		cacheDir, err := mirror.DefaultCacheDir()
		if err != nil {
			return err
		}
		progress := &logLines{log: func(line string) { _ = ctx.Log.Info(line, nil) }}
		defer progress.flush()
		_, err = mirror.Sync(c, s3.NewFromConfig(cfg), bucket, set, mirror.Sources{}, cacheDir, progress)
		return err
	}
}

// logLines is an io.Writer that hands each complete line to log.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	log func(string)
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line) // incomplete: keep it for the next write
			return len(p), nil
		}
		l.log(strings.TrimRight(line, "\n"))
	}
}

// flush logs what is left without a newline.
func (l *logLines) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.log(l.buf.String())
		l.buf.Reset()
	}
}
