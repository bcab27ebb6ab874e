package node

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RetryPolicy bounds the retries of a transient failure (a network error, an HTTP 5xx, a
// throttled AWS call): at most Attempts tries, waiting Initial, then twice as long each time,
// never more than Max. A permanent failure (a bad checksum, a 404, a rejected request) is
// never retried.
type RetryPolicy struct {
	// Attempts is the number of tries, first included. Values below 1 mean 1.
	Attempts int
	// Initial is the wait after the first failure.
	Initial time.Duration
	// Max caps each wait.
	Max time.Duration
}

// DefaultRetry is the policy the agent uses on a node: 5 tries over about 30 s of waits
// (2 s, 4 s, 8 s, 16 s), long enough to ride out a NAT gateway or endpoint hiccup at boot,
// short enough that a real outage fails the node well inside the lifecycle hook's heartbeat.
func DefaultRetry() RetryPolicy {
	return RetryPolicy{Attempts: 5, Initial: 2 * time.Second, Max: 30 * time.Second}
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent marks err as not worth retrying. nil stays nil.
func permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// isPermanent reports whether err, or an error it wraps, was marked permanent.
func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// do calls fn until it succeeds, fails permanently, runs out of attempts or ctx ends. Each
// failed attempt that will be retried is reported to onRetry with the wait before the next.
func (p RetryPolicy) do(ctx context.Context, onRetry func(attempt, attempts int, err error, wait time.Duration), fn func(context.Context) error) error {
	attempts := max(p.Attempts, 1)
	wait := p.Initial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if isPermanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		if attempt >= attempts {
			if attempts > 1 {
				return fmt.Errorf("gave up after %d attempts: %w", attempts, err)
			}
			return err
		}
		if onRetry != nil {
			onRetry(attempt, attempts, err, wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w (while waiting to retry: %v)", err, ctx.Err())
		case <-timer.C:
		}
		wait *= 2
		if p.Max > 0 {
			wait = min(wait, p.Max)
		}
	}
}
