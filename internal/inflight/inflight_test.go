package inflight

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestCountsBeginAndEndOnce(t *testing.T) {
	var c Counter
	if got := c.Snapshot(); got != (Snapshot{}) {
		t.Fatalf("zero counter = %+v, want all zero", got)
	}
	end1, _ := c.Begin()
	end2, _ := c.Begin()
	c.Close()
	if _, ok := c.Begin(); ok {
		t.Fatal("Begin after Close admitted a request")
	}
	if got := c.Snapshot(); got != (Snapshot{InFlight: 2, Started: 2, Refused: 1}) {
		t.Fatalf("after two begins and a refusal = %+v", got)
	}
	end1()
	end1() // a second call must not count the request out again
	if got := c.Snapshot(); got != (Snapshot{InFlight: 1, Started: 2, Finished: 1, Refused: 1}) {
		t.Fatalf("after one end (called twice) = %+v", got)
	}
	end2()
	if got := c.Snapshot(); got.InFlight != 0 || got.Finished != 2 {
		t.Fatalf("after both ends = %+v", got)
	}
}

func TestConcurrentRequestsBalance(t *testing.T) {
	var c Counter
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				end, _ := c.Begin()
				end()
			}
		}()
	}
	wg.Wait()
	if got := c.Snapshot(); got != (Snapshot{Started: 12800, Finished: 12800}) {
		t.Fatalf("after 12800 balanced requests = %+v", got)
	}
}

func TestWaitIdle(t *testing.T) {
	var c Counter
	if err := c.WaitIdle(context.Background()); err != nil {
		t.Fatalf("idle counter: %v", err)
	}
	end, _ := c.Begin()
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.WaitIdle(short); err != context.DeadlineExceeded {
		t.Fatalf("WaitIdle with a request in flight = %v, want the deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.WaitIdle(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("WaitIdle returned %v while a request was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	// A request that begins and ends while the first is in flight must not wake the waiter
	// for good.
	other, _ := c.Begin()
	other()
	end()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitIdle did not return once the last request ended")
	}
	// Idle again, then busy again: a new waiter must wait again.
	end, _ = c.Begin()
	short2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if err := c.WaitIdle(short2); err == nil {
		t.Fatal("WaitIdle returned at once with a request in flight after an idle period")
	}
	end()
}
