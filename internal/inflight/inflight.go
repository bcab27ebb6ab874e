// Package inflight counts the requests a node is answering right now. The node agent's
// accounting proxy counts with it (a request begins when the proxy accepts it and ends when
// its response body is fully written or its client went away), waits on it while the node
// drains, and anything that publishes the figure (a CloudWatch metric of in-flight requests
// per node) reads a Snapshot. It is a leaf: standard library only.
package inflight

import (
	"context"
	"sync"
	"sync/atomic"
)

// Counter counts requests in flight. The zero value is ready and idle. It is safe for
// concurrent use.
type Counter struct {
	mu       sync.Mutex
	inFlight int64
	closed   bool
	// idle is closed while nothing is in flight; nil means closed (the zero value is idle).
	idle chan struct{}

	started  atomic.Uint64
	finished atomic.Uint64
	refused  atomic.Uint64
}

// Snapshot is the counter at one instant.
type Snapshot struct {
	// InFlight is the number of requests begun and not yet ended.
	InFlight int64
	// Started and Finished count every request begun and ended since the counter was made;
	// Refused counts the requests turned away after Close without being begun.
	Started, Finished, Refused uint64
}

// Begin counts a request in and returns the function that counts it out; calling that
// function more than once counts the request out only once. After Close it counts the request
// as refused instead and returns ok false: the caller must turn it away. Checking and counting
// under one lock is what makes a drain exact: a request is either in flight before the drain
// waits, or refused.
func (c *Counter) Begin() (end func(), ok bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.refused.Add(1)
		return func() {}, false
	}
	if c.inFlight == 0 {
		c.idle = make(chan struct{})
	}
	c.inFlight++
	c.mu.Unlock()
	c.started.Add(1)
	var once atomic.Bool
	return func() {
		if !once.CompareAndSwap(false, true) {
			return
		}
		c.finished.Add(1)
		c.mu.Lock()
		c.inFlight--
		if c.inFlight == 0 {
			close(c.idle)
		}
		c.mu.Unlock()
	}, true
}

// Close makes every later Begin refuse: the node is draining. It cannot be undone (a drained
// node is terminated).
func (c *Counter) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// Closed reports whether Close was called.
func (c *Counter) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Snapshot returns the current figures.
func (c *Counter) Snapshot() Snapshot {
	c.mu.Lock()
	n := c.inFlight
	c.mu.Unlock()
	return Snapshot{InFlight: n, Started: c.started.Load(), Finished: c.finished.Load(), Refused: c.refused.Load()}
}

// WaitIdle returns nil once nothing is in flight, or ctx's error if ctx ends first. A request
// begun after it returned is not waited for: whoever drains stops new ones first.
func (c *Counter) WaitIdle(ctx context.Context) error {
	for {
		c.mu.Lock()
		idle, n := c.idle, c.inFlight
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
			// Another request may have begun since: look again.
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
