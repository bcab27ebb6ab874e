package mirror

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A large transfer reports at most once per progressEvery, with bytes of the total; a small one
// stays silent.
func TestMeterReportsLargeTransfersAtMostEveryFewSeconds(t *testing.T) {
	var out bytes.Buffer
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &meter{w: &out, what: "fetch model x blob", total: 100 << 20, now: func() time.Time { return clock }, last: clock}
	for i := 0; i < 100; i++ {
		clock = clock.Add(time.Second)
		m.add(1 << 20)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 20 || lines[0] != "fetch model x blob: 5 of 100 MiB" || lines[19] != "fetch model x blob: 100 of 100 MiB" {
		t.Errorf("%d lines:\n%s", len(lines), out.String())
	}
	out.Reset()
	small := &meter{w: &out, what: "small", total: 1 << 20, now: func() time.Time { return clock }, last: clock.Add(-time.Hour)}
	small.add(1 << 20)
	if out.Len() != 0 {
		t.Errorf("a 1 MiB transfer reported progress: %s", out.String())
	}
}
