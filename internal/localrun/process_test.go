package localrun

import (
	"net"
	"strconv"
	"testing"
)

// FreePort's ports lie below the kernel's ephemeral range, where no outgoing connection takes
// them, and can be bound.
func TestFreePortIsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for i := 0; i < 50; i++ {
		port := FreePort(t)
		if port < freePortFloor || port >= low {
			t.Fatalf("FreePort gave %d, want one in [%d, %d)", port, freePortFloor, low)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("FreePort gave %d, which does not bind: %v", port, err)
		}
		l.Close()
		seen[port] = true
	}
	if len(seen) < 40 {
		t.Errorf("50 calls gave only %d distinct ports", len(seen))
	}
}
