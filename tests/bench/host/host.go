// Package host describes the machine a benchmark ran on, so that every report says where its
// figures come from.
package host

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Host is the machine: CPU model, cores, memory, kernel and Go version.
type Host struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	MemGiB int    `json:"memoryGiB"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

// Describe reads the machine from /proc and the runtime; what it cannot read stays empty.
func Describe() Host {
	h := Host{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			h.MemGiB = (kb + 512*1024) / (1024 * 1024)
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(data))
	}
	return h
}

// LoadAverage is /proc/loadavg's 1, 5 and 15 minute load averages, or "unknown": above a
// benchmark's own load, something else shared the cores.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
