package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/llm-sandbox/llm-sandbox/internal/cwclient"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
)

// TestInFlightMetricFollowsConcurrency runs a pool node (real Ollama with the tiny model behind
// `sandbox-node serve`) that publishes its in-flight requests to the emulator's CloudWatch
// every second, drives 1, 4, 8 and 16 concurrent streams at it, and reads the node's series
// back: at steady state every published value is the offered concurrency ±1 (answered and
// queued alike: Ollama answers 2 at a time here), and once the clients are gone it falls to 0.
func TestInFlightMetricFollowsConcurrency(t *testing.T) {
	h := localruntest.Require(t)
	d := localruntest.NewDeployment(t, h)
	const group = "chemistry-cpu-scaling"
	n := d.NewMember(t, group, hookName)
	putTerminateHook(t, d.Moto.URL, group)
	cfg := d.OllamaConfig(n, d.Release, localrun.OllamaOptions{})
	cfg.Ollama.BackendPort = localrun.FreePort(t)
	cfg.Lifecycle.TerminateHook, cfg.Lifecycle.DrainSeconds = terminateHook, 30
	config := n.WriteConfig(t, cfg)
	if code := n.Bootstrap(t, config, 5*time.Minute); code != 0 {
		t.Fatalf("sandbox-node bootstrap exited %d, want 0", code)
	}
	n.IMDS.SetTargetLifecycleState("InService")
	logPath := filepath.Join(n.Dir, "serve.log")
	cmd := exec.Command(n.Agent, "serve", "--config", config, "--root", n.Root, "--poll", "1s", "--metrics-interval", "1s")
	cmd.Env = n.Env
	exited := localrun.StartGroup(t, "sandbox-node serve", cmd, logPath)
	api := n.URL()
	localrun.WaitReady(t, "sandbox-node serve", exited, logPath, 30*time.Second, 100*time.Millisecond, func() error {
		code, err := get(api + "/api/version")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("GET /api/version through the proxy: %d", code)
		}
		return err
	})

	cw := cwclient.New(aws.Config{
		Region:       cfg.Region,
		BaseEndpoint: aws.String(d.Moto.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	// published returns the node's samples with timestamps in [from, to].
	published := func(from, to time.Time) []float64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := cw.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(from), EndTime: aws.Time(to),
			MetricDataQueries: []cwtypes.MetricDataQuery{{
				Id: aws.String("node"),
				MetricStat: &cwtypes.MetricStat{
					Metric: &cwtypes.Metric{
						Namespace:  aws.String(llmmetrics.Namespace),
						MetricName: aws.String(llmmetrics.MetricInFlightRequests),
						Dimensions: []cwtypes.Dimension{
							{Name: aws.String(llmmetrics.DimensionDepartment), Value: aws.String(cfg.Department)},
							{Name: aws.String(llmmetrics.DimensionPool), Value: aws.String(cfg.Pool)},
							{Name: aws.String(llmmetrics.DimensionInstance), Value: aws.String(n.Instance)},
						},
					},
					Period: aws.Int32(1),
					Stat:   aws.String("Maximum"),
				},
			}},
		})
		if err != nil {
			t.Fatalf("moto GetMetricData: %v", err)
		}
		if len(out.MetricDataResults) != 1 {
			t.Fatalf("moto GetMetricData: %d results, want 1", len(out.MetricDataResults))
		}
		return out.MetricDataResults[0].Values
	}

	// Streams long enough to outlast each step; the test ends them by going away.
	body, _ := json.Marshal(map[string]any{
		"model": modelName, "prompt": "Tell a long story", "stream": true,
		"options": map[string]any{"num_predict": 1000000, "temperature": 0},
	})
	var wg sync.WaitGroup
	var cancels []context.CancelFunc
	stopAll := func() {
		for _, c := range cancels {
			c()
		}
		cancels = nil
		wg.Wait()
	}
	t.Cleanup(stopAll)
	open := 0
	for _, want := range []int{1, 4, 8, 16} {
		for ; open < want; open++ {
			ctx, cancel := context.WithCancel(context.Background())
			cancels = append(cancels, cancel)
			wg.Add(1)
			// A client streams until the test ends it, asking again at once if the random
			// weights end a story early (an end-of-sequence token), as a busy client would.
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, api+"/api/generate", strings.NewReader(string(body)))
					req.Header.Set("Content-Type", "application/json")
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		// Settle (every stream accepted by the proxy), then read two seconds of samples.
		time.Sleep(1500 * time.Millisecond)
		from := time.Now()
		time.Sleep(2500 * time.Millisecond)
		values := published(from, time.Now())
		if len(values) < 2 {
			t.Fatalf("%d streams: %d samples published in 2.5 s, want one a second", want, len(values))
		}
		for _, v := range values {
			if v < float64(want-1) || v > float64(want+1) {
				t.Fatalf("%d streams: published %v, want each within %d±1", want, values, want)
			}
		}
		t.Logf("%d streams: published %v", want, values)
	}

	stopAll()
	deadline := time.Now().Add(15 * time.Second)
	for {
		from := time.Now()
		time.Sleep(1500 * time.Millisecond)
		values := published(from, time.Now())
		if len(values) > 0 && allZero(values) {
			t.Logf("after the clients left: published %v", values)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %v 15 s after every client left, want 0", values)
		}
	}
}

func allZero(vs []float64) bool {
	for _, v := range vs {
		if v != 0 {
			return false
		}
	}
	return true
}
