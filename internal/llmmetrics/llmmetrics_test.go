package llmmetrics

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type recordSink struct {
	mu   sync.Mutex
	got  []Sample
	fail bool
}

func (r *recordSink) Put(_ context.Context, s Sample) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
	if r.fail {
		return errors.New("unreachable")
	}
	return nil
}

func (r *recordSink) samples() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sample(nil), r.got...)
}

func TestPublisherSamplesEveryIntervalWithItsDimensions(t *testing.T) {
	var n atomic.Int64
	n.Store(3)
	sink := &recordSink{}
	p := &Publisher{Department: "research", Pool: "chat", Instance: "i-1", Interval: 20 * time.Millisecond, Read: n.Load, Sink: sink}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(sink.samples()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	n.Store(0)
	for time.Now().Before(deadline) {
		s := sink.samples()
		if s[len(s)-1].InFlight == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	s := sink.samples()
	if s[0].InFlight != 3 || s[len(s)-1].InFlight != 0 {
		t.Fatalf("samples %+v: want the first at 3 and the last at 0", s)
	}
	for _, x := range s {
		if x.Department != "research" || x.Pool != "chat" || x.Instance != "i-1" || x.Time.IsZero() {
			t.Fatalf("sample %+v lacks its dimensions or time", x)
		}
	}
}

func TestPublisherKeepsGoingWhenPutFails(t *testing.T) {
	sink := &recordSink{fail: true}
	var errs atomic.Int64
	p := &Publisher{Interval: 5 * time.Millisecond, Read: func() int64 { return 1 }, Sink: sink, OnError: func(error) { errs.Add(1) }}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _ = p.Run(ctx) }()
	for errs.Load() < 3 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if errs.Load() < 3 {
		t.Fatalf("%d errors reported, want publishing to go on after a failed Put", errs.Load())
	}
}

// Every sample carries the GPU figures ReadGPU gives, and none when it gives nil, with the
// in-flight figure published either way.
func TestPublisherCarriesGPUFiguresWhenRead(t *testing.T) {
	sink := &recordSink{}
	var calls atomic.Int64
	p := &Publisher{Interval: 5 * time.Millisecond, Read: func() int64 { return 2 }, Sink: sink,
		ReadGPU: func(context.Context) *GPUSample {
			if calls.Add(1)%2 == 0 {
				return nil
			}
			return &GPUSample{UtilizationPercent: 40, MemoryUsedMiB: 9000, GPUs: 1}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	for len(sink.samples()) < 4 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	s := sink.samples()
	if len(s) < 4 {
		t.Fatalf("%d samples, want at least 4", len(s))
	}
	for i, x := range s[:4] {
		if x.InFlight != 2 {
			t.Errorf("sample %d: in flight %d, want 2 whatever the GPU reading", i, x.InFlight)
		}
		switch {
		case i%2 == 0 && (x.GPU == nil || *x.GPU != GPUSample{UtilizationPercent: 40, MemoryUsedMiB: 9000, GPUs: 1}):
			t.Errorf("sample %d: GPU %+v, want the figures ReadGPU gave", i, x.GPU)
		case i%2 == 1 && x.GPU != nil:
			t.Errorf("sample %d: GPU %+v, want none when ReadGPU gave nil", i, x.GPU)
		}
	}
}
