package node

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/llm-sandbox/llm-sandbox/internal/cwclient"
	"github.com/llm-sandbox/llm-sandbox/internal/inflight"
	"github.com/llm-sandbox/llm-sandbox/internal/llmmetrics"
)

// InstanceIDPath is the instance metadata path of the instance id, the InstanceId dimension.
const InstanceIDPath = "instance-id"

// metricPutter is the one CloudWatch call the sink makes.
type metricPutter interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// CloudWatchSink puts samples into CloudWatch: one PutMetricData call per sample with two
// in-flight data points of the same value, one per node (Department, Pool, InstanceId) and one
// for the pool (Department, Pool), whose Average over the pool's nodes is what the scaling
// policy tracks, and, when the sample has GPU figures, GPUUtilization and GPUMemoryUsed per
// node: four data points at most, far below the 1,000 metrics and 1 MB one call may carry
// (Amazon CloudWatch API Reference, PutMetricData,
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html).
// Standard resolution (60 s): the instance role may put only into llmmetrics.Namespace.
type CloudWatchSink struct {
	Client metricPutter
}

// NewCloudWatchSink returns a sink with the project's CloudWatch client for cfg (internal/cwclient:
// the query protocol; AWS_ENDPOINT_URL_CLOUDWATCH points it at an emulator).
func NewCloudWatchSink(cfg aws.Config) *CloudWatchSink {
	return &CloudWatchSink{Client: cwclient.New(cfg)}
}

// Put sends one sample. It carries a count and names only, never request text.
func (c *CloudWatchSink) Put(ctx context.Context, s llmmetrics.Sample) error {
	dim := func(k, v string) cwtypes.Dimension {
		return cwtypes.Dimension{Name: aws.String(k), Value: aws.String(v)}
	}
	pool := []cwtypes.Dimension{dim(llmmetrics.DimensionDepartment, s.Department), dim(llmmetrics.DimensionPool, s.Pool)}
	node := append(append([]cwtypes.Dimension(nil), pool...), dim(llmmetrics.DimensionInstance, s.Instance))
	datum := func(metric string, d []cwtypes.Dimension, v float64, unit cwtypes.StandardUnit) cwtypes.MetricDatum {
		return cwtypes.MetricDatum{
			MetricName: aws.String(metric),
			Dimensions: d,
			Timestamp:  aws.Time(s.Time.UTC()),
			Value:      aws.Float64(v),
			Unit:       unit,
		}
	}
	inFlight := float64(s.InFlight)
	data := []cwtypes.MetricDatum{
		datum(llmmetrics.MetricInFlightRequests, node, inFlight, cwtypes.StandardUnitCount),
		datum(llmmetrics.MetricInFlightRequests, pool, inFlight, cwtypes.StandardUnitCount),
	}
	what := llmmetrics.MetricInFlightRequests
	if g := s.GPU; g != nil {
		data = append(data,
			datum(llmmetrics.MetricGPUUtilization, node, g.UtilizationPercent, cwtypes.StandardUnitPercent),
			datum(llmmetrics.MetricGPUMemoryUsed, node, g.MemoryUsedMiB, cwtypes.StandardUnitMegabytes))
		what += "," + llmmetrics.MetricGPUUtilization + "," + llmmetrics.MetricGPUMemoryUsed
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.Client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
		Namespace:  aws.String(llmmetrics.Namespace),
		MetricData: data,
	})
	if err != nil {
		return fmt.Errorf("put %s/{%s}: %w", llmmetrics.Namespace, what, err)
	}
	return nil
}

// publishInFlight starts the in-flight publisher of a node with the accounting proxy in the background (the
// instance id from the metadata, the sink opts.Metrics or CloudWatch in the node's region);
// the returned function stops it and waits until it stopped.
func publishInFlight(ctx context.Context, cfg *Config, opts ServeOptions, awsCfg aws.Config, meta metadataGetter, counter *inflight.Counter, log *Logger) (stop func(), err error) {
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	instance, found, err := readMetadata(mctx, meta, InstanceIDPath)
	cancel()
	if err == nil && !found {
		err = fmt.Errorf("the instance metadata has no %s", InstanceIDPath)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: metrics: %w", err)
	}
	sink := opts.Metrics
	if sink == nil {
		c := awsCfg.Copy()
		c.Region = cfg.Region
		sink = NewCloudWatchSink(c)
	}
	interval := opts.MetricsInterval
	if interval <= 0 {
		interval = llmmetrics.IntervalSeconds * time.Second
	}
	// A gateway node's samples carry the gateway's Pool value, which no model pool may take
	// (rules.ModelPoolName).
	pool := cfg.Pool
	if cfg.Role == RoleLiteLLM {
		pool = llmmetrics.PoolGateway
	}
	var last string
	var readGPU func(context.Context) *llmmetrics.GPUSample
	if cfg.Ollama != nil && cfg.Ollama.GPU {
		run := opts.Run
		if run == nil {
			run = ExecRunner{}
		}
		readGPU = gpuReader(run, log)
	}
	p := &llmmetrics.Publisher{
		Department: cfg.Department, Pool: pool, Instance: instance,
		Interval: interval, Read: func() int64 { return counter.Snapshot().InFlight }, ReadGPU: readGPU, Sink: sink,
		OnError: func(err error) {
			// Once per distinct error: an unreachable CloudWatch must not flood the journal.
			if err.Error() != last {
				log.Printf("serve: metrics: %v", err)
				last = err.Error()
			}
		},
	}
	pctx, stopRun := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(pctx) }()
	what := llmmetrics.MetricInFlightRequests
	if readGPU != nil {
		what += " (and " + llmmetrics.MetricGPUUtilization + ", " + llmmetrics.MetricGPUMemoryUsed + " from nvidia-smi)"
	}
	log.Printf("serve: publishing %s/%s every %s (department %s, pool %s, instance %s)",
		llmmetrics.Namespace, what, interval, cfg.Department, pool, instance)
	return func() { stopRun(); <-done }, nil
}
