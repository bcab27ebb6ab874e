package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's utime and stime: 100 on every Linux
// architecture this runs on (proc(5), "/proc/pid/stat", fields 14 and 15).
const clockTicks = 100

// treeCPUSeconds returns the user plus system CPU seconds used so far by the process root and
// every live descendant (LiteLLM's workers are children of its supervisor). The difference of
// two readings around a round is the CPU the gateway spent on it, which divided by the tokens
// it streamed gives a cost per token that transfers to other machines, unlike a throughput.
func treeCPUSeconds(root int) (float64, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	children := map[int][]int{}
	ticks := map[int]int64{}
	for _, path := range stats {
		pid, ppid, t, err := readStat(path)
		if err != nil {
			continue // the process exited between the listing and the read
		}
		children[ppid] = append(children[ppid], pid)
		ticks[pid] = t
	}
	if _, ok := ticks[root]; !ok {
		return 0, fmt.Errorf("process %d is not running", root)
	}
	var sum int64
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		sum += ticks[pid]
		queue = append(queue, children[pid]...)
	}
	return float64(sum) / clockTicks, nil
}

// readStat parses a /proc/<pid>/stat line: pid, ppid (field 4) and utime+stime (fields 14, 15).
// The command name (field 2) may hold spaces and parentheses, so fields count from its last ')'.
func readStat(path string) (pid, ppid int, ticks int64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, 0, err
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, 0, 0, fmt.Errorf("%s: unexpected format", path)
	}
	if pid, err = strconv.Atoi(strings.TrimSpace(s[:open])); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: pid: %w", path, err)
	}
	rest := strings.Fields(s[end+1:]) // rest[0] is field 3 (state)
	if len(rest) < 13 {
		return 0, 0, 0, fmt.Errorf("%s: %d fields after the name, want at least 13", path, len(rest))
	}
	if ppid, err = strconv.Atoi(rest[1]); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: ppid: %w", path, err)
	}
	utime, err1 := strconv.ParseInt(rest[11], 10, 64)
	stime, err2 := strconv.ParseInt(rest[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, 0, fmt.Errorf("%s: utime/stime not numbers", path)
	}
	return pid, ppid, utime + stime, nil
}
