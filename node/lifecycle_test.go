package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/node/awstest"
	"github.com/llm-sandbox/llm-sandbox/node/ollamatest"
)

func wantCalls(t *testing.T, asg *awstest.AutoScaling, want ...awstest.Call) {
	t.Helper()
	if got := asg.Calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CompleteLifecycleAction calls = %+v\nwant %+v", got, want)
	}
}

func TestAWSCompleterSendsResultWithConfiguredGroup(t *testing.T) {
	asg, _ := awstest.Serve(t, &awstest.IMDS{InstanceID: "i-0abc", Group: "tag-group", Region: "eu-west-1"})
	c, err := NewAWSCompleter(context.Background(), "eu-west-1", Lifecycle{AutoScalingGroup: "config-group", Hook: "launch"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(context.Background(), ResultContinue); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, asg, awstest.Call{Group: "config-group", Hook: "launch", InstanceID: "i-0abc", Result: "CONTINUE"})
}

func TestAWSCompleterReadsGroupAndRegionFromIMDS(t *testing.T) {
	asg, _ := awstest.Serve(t, &awstest.IMDS{InstanceID: "i-0abc", Group: "tag-group", Region: "eu-west-1"})
	c, err := NewAWSCompleter(context.Background(), "", Lifecycle{Hook: "launch"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(context.Background(), ResultAbandon); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, asg, awstest.Call{Group: "tag-group", Hook: "launch", InstanceID: "i-0abc", Result: "ABANDON"})
}

func TestAWSCompleterWithoutGroupTagExplainsTheFix(t *testing.T) {
	asg, _ := awstest.Serve(t, &awstest.IMDS{InstanceID: "i-0abc", Region: "eu-west-1"})
	c, err := NewAWSCompleter(context.Background(), "eu-west-1", Lifecycle{Hook: "launch"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Complete(context.Background(), ResultContinue)
	if err == nil || !strings.Contains(err.Error(), "set lifecycle.autoScalingGroup") {
		t.Errorf("Complete() = %v, want an error naming lifecycle.autoScalingGroup", err)
	}
	wantCalls(t, asg)
}

func TestAWSCompleterNoActiveAction(t *testing.T) {
	asg, _ := awstest.Serve(t, &awstest.IMDS{InstanceID: "i-0abc", Region: "eu-west-1"})
	asg.SetNoActiveAction(true)
	c, err := NewAWSCompleter(context.Background(), "eu-west-1", Lifecycle{AutoScalingGroup: "g", Hook: "launch"})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Complete(context.Background(), ResultContinue)
	if !errors.Is(err, ErrNoLifecycleAction) {
		t.Errorf("Complete() = %v, want ErrNoLifecycleAction", err)
	}
}

func TestAWSCompleterClassifiesErrors(t *testing.T) {
	asg, _ := awstest.Serve(t, &awstest.IMDS{InstanceID: "i-0abc", Region: "eu-west-1"})
	c, err := NewAWSCompleter(context.Background(), "eu-west-1", Lifecycle{AutoScalingGroup: "g", Hook: "launch"})
	if err != nil {
		t.Fatal(err)
	}
	asg.FailNext(1)
	err = c.Complete(context.Background(), ResultContinue)
	if err == nil || isPermanent(err) || errors.Is(err, ErrNoLifecycleAction) {
		t.Errorf("503 ServiceUnavailable: Complete() = %v, want a retryable error", err)
	}
	if n := len(asg.Calls()); n != 1 {
		t.Errorf("the SDK retried on its own (%d calls): the agent's policy must be the only one", n)
	}
	if err := c.Complete(context.Background(), ResultContinue); err != nil {
		t.Errorf("second Complete() = %v", err)
	}
}

// TestBootstrapCompletesLifecycleThroughAWS runs the whole bootstrap with the real
// aws-sdk-go-v2 clients against the loopback fakes: exactly one CONTINUE, for this instance,
// hook and group.
func TestBootstrapCompletesLifecycleThroughAWS(t *testing.T) {
	asg, _ := awstest.Serve(t, &awstest.IMDS{InstanceID: "i-0123456789abcdef0", Group: "from-tag", Region: "eu-west-1"})
	e := newEnv(t, ollamatest.Options{GPU: true})
	if err := e.bootstrap(func(o *Options) { o.Lifecycle = nil }); err != nil {
		t.Fatalf("Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	wantCalls(t, asg, awstest.Call{Group: "chemistry-default", Hook: "chemistry-default-launch", InstanceID: "i-0123456789abcdef0", Result: "CONTINUE"})

	// A reboot: no pending action, still success, and nothing else sent.
	asg.SetNoActiveAction(true)
	if err := e.bootstrap(func(o *Options) { o.Lifecycle = nil }); err != nil {
		t.Fatalf("re-run Bootstrap() = %v\nlog:\n%s", err, e.log)
	}
	if n := len(asg.Calls()); n != 2 {
		t.Errorf("calls after re-run = %d, want 2", n)
	}
}

func TestBootstrapFailureAbandonsThroughAWS(t *testing.T) {
	asg, _ := awstest.Serve(t, &awstest.IMDS{InstanceID: "i-0123456789abcdef0", Region: "eu-west-1"})
	e := newEnv(t, ollamatest.Options{GPU: false})
	wantStepFailure(t, e.bootstrap(func(o *Options) { o.Lifecycle = nil }), StepResident, "size_vram 0")
	wantCalls(t, asg, awstest.Call{Group: "chemistry-default", Hook: "chemistry-default-launch", InstanceID: "i-0123456789abcdef0", Result: "ABANDON"})
}

func TestLifecycleHint(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	invalid := write("invalid.json", `{"role": "gateway", "region": "eu-west-1", "extra": 1,
		"lifecycle": {"hook": "h", "autoScalingGroup": "g"}, "ollama": {"port": "not a number"}}`)
	region, lc, ok := LifecycleHint(invalid)
	if !ok || region != "eu-west-1" || lc.Hook != "h" || lc.AutoScalingGroup != "g" {
		t.Errorf("LifecycleHint(invalid config) = %q, %+v, %v", region, lc, ok)
	}
	for name, body := range map[string]string{"nohook.json": `{"region": "eu-west-1"}`, "garbage.json": `{{{`} {
		if _, _, ok := LifecycleHint(write(name, body)); ok {
			t.Errorf("LifecycleHint(%s) found a hook", name)
		}
	}
	if _, _, ok := LifecycleHint(filepath.Join(dir, "missing.json")); ok {
		t.Errorf("LifecycleHint(missing file) found a hook")
	}
}

// TestS3ObjectsReadThroughTheSDK reads an s3:// release through the real S3 client, pointed at
// a loopback fake of GetObject by AWS_ENDPOINT_URL_S3 (path-style, as emulators need).
func TestS3ObjectsReadThroughTheSDK(t *testing.T) {
	awstest.Serve(t, &awstest.IMDS{InstanceID: "i-0abc", Region: "eu-west-1"})
	var mu sync.Mutex
	var paths []string
	requests := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), paths...) }
	s3srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/chemistry-artifacts/ollama/ollama-linux-amd64.tar.zst" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`)
			return
		}
		fmt.Fprint(w, "release bytes")
	}))
	t.Cleanup(s3srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_S3", s3srv.URL)

	e := newEnv(t, ollamatest.Options{})
	e.cfg.Ollama.Release = Artifact{URL: "s3://chemistry-artifacts/ollama/ollama-linux-amd64.tar.zst", SHA256: sha([]byte("release bytes"))}
	a := e.agent(func(o *Options) { o.Objects = nil })
	file, err := a.fetch(context.Background(), StepInstall, "release", e.cfg.Ollama.Release)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(file); string(data) != "release bytes" {
		t.Errorf("downloaded %q", data)
	}
	if got := requests(); fmt.Sprint(got) != "[GET /chemistry-artifacts/ollama/ollama-linux-amd64.tar.zst]" {
		t.Errorf("S3 requests = %v", got)
	}

	// A missing key is permanent: one request, no retries.
	_, err = a.fetch(context.Background(), StepInstall, "release", Artifact{URL: "s3://chemistry-artifacts/missing", SHA256: strings.Repeat("a", 64)})
	if got := requests(); err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "NoSuchKey") || len(got) != 2 {
		t.Errorf("missing key: %v after requests %v, want one permanent NoSuchKey", err, got)
	}
}
