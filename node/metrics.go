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
// data points of the same value, one per node (Department, Pool, InstanceId) and one for the
// pool (Department, Pool), whose Average over the pool's nodes is what the scaling policy
// tracks. Standard resolution (60 s): the instance role may put only into
// llmmetrics.Namespace.
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
	datum := func(d []cwtypes.Dimension) cwtypes.MetricDatum {
		return cwtypes.MetricDatum{
			MetricName: aws.String(llmmetrics.MetricInFlightRequests),
			Dimensions: d,
			Timestamp:  aws.Time(s.Time.UTC()),
			Value:      aws.Float64(float64(s.InFlight)),
			Unit:       cwtypes.StandardUnitCount,
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.Client.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{
		Namespace:  aws.String(llmmetrics.Namespace),
		MetricData: []cwtypes.MetricDatum{datum(node), datum(pool)},
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", llmmetrics.Namespace, llmmetrics.MetricInFlightRequests, err)
	}
	return nil
}

// publishInFlight starts the in-flight publisher of a pool node in the background (the
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
	var last string
	p := &llmmetrics.Publisher{
		Department: cfg.Department, Pool: cfg.Pool, Instance: instance,
		Interval: interval, Read: func() int64 { return counter.Snapshot().InFlight }, Sink: sink,
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
	log.Printf("serve: publishing %s/%s every %s (department %s, pool %s, instance %s)",
		llmmetrics.Namespace, llmmetrics.MetricInFlightRequests, interval, cfg.Department, cfg.Pool, instance)
	return func() { stopRun(); <-done }, nil
}
