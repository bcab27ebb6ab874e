// Package llmmetrics publishes a node's in-flight requests: every interval it reads the
// figure and hands one Sample to a Sink (the node agent's CloudWatch sink). It carries counts
// only, never request or response text. It is a leaf: standard library only.
package llmmetrics

import (
	"context"
	"time"
)

// The metric contract, shared by the publisher, the dashboard and the scaling policies.
const (
	// Namespace is the CloudWatch namespace of the node agent's metrics.
	Namespace = "LLMSandbox"
	// MetricInFlightRequests is a node's requests being answered plus those queued.
	MetricInFlightRequests = "InFlightRequests"
	// DimensionDepartment, DimensionPool and DimensionInstance name the dimensions. Every
	// sample is published twice: with all three (one node) and with Department and Pool only
	// (the pool's series, whose Average over its nodes is the per-node figure a target
	// tracking policy follows).
	DimensionDepartment = "Department"
	DimensionPool       = "Pool"
	DimensionInstance   = "InstanceId"
	// MetricGPUUtilization is a pool node's GPU utilisation in percent (unit Percent) and
	// MetricGPUMemoryUsed its GPU memory in use in mebibytes (unit Megabytes), as nvidia-smi
	// reports them, published with the node's dimensions (Department, Pool, InstanceId). On a
	// node with several GPUs they are one figure per node, not per GPU (GPUSample says how).
	MetricGPUUtilization = "GPUUtilization"
	MetricGPUMemoryUsed  = "GPUMemoryUsed"
	// PoolGateway is the Pool dimension's value on the gateway's nodes' samples.
	PoolGateway = "gateway"
	// IntervalSeconds is the production publish interval: standard (60 s) resolution.
	IntervalSeconds = 60
)

// Sample is one reading of a node.
type Sample struct {
	Department, Pool, Instance string
	InFlight                   int64
	// GPU is the node's GPU figures at the same reading; nil on a node without a GPU or when
	// they could not be read this time.
	GPU  *GPUSample
	Time time.Time
}

// GPUSample is a node's GPUs at one reading, folded into one figure per node so that the
// series keep the node's dimensions whatever its GPU count: Ollama spreads a model over all of
// a node's GPUs, so the node is the unit that is busy or full.
type GPUSample struct {
	// UtilizationPercent is the mean of the GPUs' utilisation (0-100): the node's share of GPU
	// time busy, comparable between a one-GPU and a four-GPU node.
	UtilizationPercent float64
	// MemoryUsedMiB is the sum of the GPUs' memory in use, in MiB: what the node's models and
	// KV caches take, comparable with the sum of the models' sizes.
	MemoryUsedMiB float64
	// GPUs is how many GPUs the reading covers (at least 1).
	GPUs int
}

// Sink sends samples somewhere (CloudWatch on a node, a slice in tests).
type Sink interface {
	Put(ctx context.Context, s Sample) error
}

// Publisher reads in-flight figures and publishes them every Interval.
type Publisher struct {
	Department, Pool, Instance string
	// Interval between samples. Required (> 0).
	Interval time.Duration
	// Read returns the node's in-flight requests now. Required.
	Read func() int64
	// ReadGPU returns the node's GPU figures now, or nil when there are none this time (it
	// reports its own errors: a failing GPU reading never stops the in-flight samples).
	// Optional: nil on nodes without a GPU.
	ReadGPU func(ctx context.Context) *GPUSample
	Sink    Sink
	// OnError is told of a failed Put; publishing goes on. Optional.
	OnError func(error)
	// Now defaults to time.Now.
	Now func() time.Time
}

// Run publishes one sample at once and then one every Interval until ctx ends, then returns
// ctx's error. A failed Put is reported to OnError and does not stop the loop: a node keeps
// serving when CloudWatch cannot be reached.
func (p *Publisher) Run(ctx context.Context) error {
	now := p.Now
	if now == nil {
		now = time.Now
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		s := Sample{Department: p.Department, Pool: p.Pool, Instance: p.Instance}
		if p.ReadGPU != nil {
			s.GPU = p.ReadGPU(ctx)
		}
		// The in-flight figure and the time are read after the GPU's, which can take a moment:
		// the sample is the node as it is when it is sent.
		s.InFlight, s.Time = p.Read(), now()
		if err := p.Sink.Put(ctx, s); err != nil && ctx.Err() == nil && p.OnError != nil {
			p.OnError(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
