// Command loadgenbench measures the load generator of `sandboxctl loadtest` (internal/loadgen)
// on its own: can it drive hundreds of concurrent streams from a 2-core machine without being
// the bottleneck? It runs the load double (internal/loadgen/loadgentest, a test double for load
// only: fake tokens at a fixed rate per stream) in a child process on 127.0.0.1, drives it at
// each concurrency level with loadgen.Run exactly as loadtest does, and reports, per level,
// the offered and achieved aggregate tokens/s, the users' tokens/s (p50, p5), the time to
// first token, and the CPU time the generator spent per token (its own rusage; the double's
// CPU is measured apart from /proc).
//
// When the generator keeps up, achieved equals offered, every user streams at the double's
// rate and the TTFT is one token interval; when it falls behind, the p5 user slows and the
// TTFT grows first.
//
// It is a command, not a timed test: nothing asserts on the figures. `make bench-loadgen` runs
// it; docs/performance.md holds the figures.
//
// Usage:
//
//	loadgenbench [-levels 500,1000] [-rate 20] [-tokens 40] [-duration 30s] [-json FILE]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/loadgen"
	"github.com/llm-sandbox/llm-sandbox/internal/loadgen/loadgentest"
	"github.com/llm-sandbox/llm-sandbox/tests/bench/host"
)

// settings are the benchmark's knobs, recorded in the report.
type settings struct {
	Levels   []int   `json:"levels"`
	Rate     float64 `json:"tokensPerSecondPerStream"`
	Tokens   int     `json:"tokensPerAnswer"`
	Duration float64 `json:"durationSeconds"`
	Warmup   float64 `json:"warmupSeconds"`
}

// level is one concurrency level's result.
type level struct {
	Streams int `json:"streams"`
	// Offered is what the double sends when the generator keeps up: streams × rate.
	Offered  float64 `json:"offeredTokensPerSecond"`
	Achieved float64 `json:"achievedTokensPerSecond"`
	Ratio    float64 `json:"achievedOverOffered"`
	// The generator's own CPU (user + system, its whole process) over the measured run.
	CPUSeconds        float64 `json:"loadgenCpuSeconds"`
	CPUPerTokenMicros float64 `json:"loadgenCpuMicrosecondsPerToken"`
	CPUCores          float64 `json:"loadgenCores"`
	// The double's CPU over the same run.
	DoubleCPUSeconds float64         `json:"doubleCpuSeconds"`
	PeakHeapMiB      float64         `json:"loadgenHeapMiB"`
	Summary          loadgen.Summary `json:"summary"`
}

type report struct {
	Started  time.Time `json:"started"`
	Machine  machine   `json:"machine"`
	Settings settings  `json:"settings"`
	Levels   []level   `json:"levels"`
}

type machine struct {
	host.Host
	// LoadBefore is /proc/loadavg's 1, 5 and 15 minute averages before the first level.
	LoadBefore string `json:"loadAverageBefore"`
}

func main() { os.Exit(run()) }

func run() int {
	serve := flag.Bool("serve-load-double", false, "internal: run the load double and print its URL (the child process)")
	levels := flag.String("levels", "500,1000", "comma-separated numbers of concurrent streams")
	var s settings
	flag.Float64Var(&s.Rate, "rate", 20, "tokens/s of every stream")
	flag.IntVar(&s.Tokens, "tokens", 40, "tokens per answer (an answer lasts tokens/rate seconds)")
	dur := flag.Duration("duration", 30*time.Second, "measured time per level")
	warm := flag.Duration("warmup", 5*time.Second, "unmeasured load before each level (connections, buffers)")
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: loadgenbench [flags]\n\nMeasures sandboxctl loadtest's load generator against a loopback load double.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *serve {
		return serveDouble(s)
	}
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "loadgenbench: -levels: %q is not a positive number\n", f)
			return 2
		}
		s.Levels = append(s.Levels, n)
	}
	if s.Rate <= 0 || s.Tokens < 2 || *dur <= 0 || *warm < 0 {
		fmt.Fprintln(os.Stderr, "loadgenbench: -rate and -duration must be positive, -tokens at least 2, -warmup not negative")
		return 2
	}
	s.Duration, s.Warmup = dur.Seconds(), warm.Seconds()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := report{Started: time.Now().UTC(), Machine: describeMachine(), Settings: s}
	for _, n := range s.Levels {
		lv, err := measure(ctx, s, n, *dur, *warm)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgenbench: %d streams: %v\n", n, err)
			return 1
		}
		rep.Levels = append(rep.Levels, lv)
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "loadgenbench: interrupted")
			return 1
		}
	}
	printReport(os.Stdout, rep)
	if *jsonOut != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "loadgenbench: %v\n", err)
			return 1
		}
	}
	for _, lv := range rep.Levels {
		if lv.Summary.Requests.Failed > 0 {
			fmt.Fprintf(os.Stderr, "loadgenbench: %d streams: %d requests failed: %v\n", lv.Streams, lv.Summary.Requests.Failed, lv.Summary.ErrorExamples)
			return 1
		}
	}
	return 0
}

// serveDouble is the child: it serves the load double until stdin closes or it is signalled.
func serveDouble(s settings) int {
	srv, err := loadgentest.Start("127.0.0.1:0", loadgentest.Options{TokensPerSecond: s.Rate, TokensPerAnswer: s.Tokens})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(srv.URL)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The parent holds our stdin open; when it goes away, so do we.
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop() }()
	<-ctx.Done()
	_ = srv.Close()
	return 0
}

// double is the child process serving the load double.
type double struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	url    string
	exited chan struct{}
}

func startDouble(s settings) (*double, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-load-double", "-rate", fmt.Sprint(s.Rate), "-tokens", strconv.Itoa(s.Tokens))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &double{cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(d.exited) }()
	select {
	case d.url = <-lines:
		if !strings.HasPrefix(d.url, "http://127.0.0.1:") {
			d.stop()
			return nil, fmt.Errorf("the load double printed %q, want its loopback URL", d.url)
		}
		return d, nil
	case <-time.After(30 * time.Second):
		d.stop()
		return nil, errors.New("the load double did not start within 30s")
	}
}

// cpuSeconds is the child's user + system CPU so far, from /proc/<pid>/stat.
func (d *double) cpuSeconds() float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// stop closes the child's stdin, then signals it, then kills it, waiting at most 15 s.
func (d *double) stop() {
	_ = d.stdin.Close()
	select {
	case <-d.exited:
		return
	case <-time.After(5 * time.Second):
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return
	case <-time.After(5 * time.Second):
	}
	_ = d.cmd.Process.Kill()
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(os.Stderr, "loadgenbench: the load double (pid %d) survived SIGKILL\n", d.cmd.Process.Pid)
	}
}

func rusageSelf() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// measure runs one level: a fresh double, a warm-up, then the measured run.
func measure(ctx context.Context, s settings, streams int, dur, warm time.Duration) (level, error) {
	d, err := startDouble(s)
	if err != nil {
		return level{}, err
	}
	defer d.stop()
	c := loadgen.NewClient(d.url, "sk-loadgenbench", streams)
	defer c.Close()
	body := loadgen.ChatRequest("loadgentest", "hi", s.Tokens, true)
	progress := func(p loadgen.Progress) {
		fmt.Fprintf(os.Stderr, "  %d streams, %3.0fs: %d open, %d completed, %d failed, %.0f text chunks/s\n",
			streams, p.Elapsed.Seconds(), p.Open, p.Completed, p.Failed, p.ChunksPerSecond)
	}
	if warm > 0 {
		fmt.Fprintf(os.Stderr, "loadgenbench: %d streams: warming up for %s\n", streams, warm)
		loadgen.Run(ctx, c, loadgen.Options{Users: streams, Duration: warm, Body: body, Timeout: time.Minute})
	}
	runtime.GC()
	fmt.Fprintf(os.Stderr, "loadgenbench: %d streams: measuring for %s\n", streams, dur)
	var peak uint64
	stopHeap := sampleHeap(&peak)
	cpu0, dcpu0 := rusageSelf(), d.cpuSeconds()
	res := loadgen.Run(ctx, c, loadgen.Options{
		Users: streams, Duration: dur, Body: body, Timeout: time.Minute,
		Progress: progress, ProgressEvery: 10 * time.Second,
	})
	cpu, dcpu := rusageSelf()-cpu0, d.cpuSeconds()-dcpu0
	stopHeap()
	sum := loadgen.Summarise(res)
	lv := level{
		Streams: streams, Offered: float64(streams) * s.Rate, Achieved: sum.AggregateTokensPerSecond,
		CPUSeconds: round(cpu, 2), CPUCores: round(cpu/res.Wall.Seconds(), 3), DoubleCPUSeconds: round(dcpu, 2),
		PeakHeapMiB: round(float64(peak)/(1<<20), 1), Summary: sum,
	}
	lv.Ratio = round(lv.Achieved/lv.Offered, 3)
	if sum.Tokens > 0 {
		lv.CPUPerTokenMicros = round(cpu/float64(sum.Tokens)*1e6, 2)
	}
	return lv, nil
}

// sampleHeap records the peak of the live heap every 500 ms until stopped.
func sampleHeap(peak *uint64) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

func round(x float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

func describeMachine() machine {
	return machine{Host: host.Describe(), LoadBefore: host.LoadAverage()}
}

func printReport(w io.Writer, rep report) {
	m, s := rep.Machine, rep.Settings
	fmt.Fprintf(w, "machine: %s, %d cores, %d GiB, Linux %s, %s; load average before: %s\n", m.CPU, m.Cores, m.MemGiB, m.Kernel, m.Go, m.LoadBefore)
	fmt.Fprintf(w, "load: every stream %g tokens/s, %d tokens per answer (%.1f s), %.0f s measured per level after %.0f s of warm-up; the load double in its own process\n\n",
		s.Rate, s.Tokens, float64(s.Tokens)/s.Rate, s.Duration, s.Warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "streams\toffered tok/s\tachieved tok/s\tratio\tuser p50 tok/s\tuser p5 tok/s\tTTFT p50 ms\tTTFT p95 ms\tcompleted\terrors\tloadgen CPU s\tcores\tCPU µs/token\theap MiB\tdouble CPU s\t")
	for _, lv := range rep.Levels {
		u := lv.Summary.UserTokensPerSecond
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.2f\t%.3f\t%.1f\t%.1f\t%.2f\t\n",
			lv.Streams, lv.Offered, lv.Achieved, lv.Ratio, u.P50, u.P5, lv.Summary.TTFT.P50Ms, lv.Summary.TTFT.P95Ms,
			lv.Summary.Requests.Completed, lv.Summary.Requests.Failed, lv.CPUSeconds, lv.CPUCores, lv.CPUPerTokenMicros, lv.PeakHeapMiB, lv.DoubleCPUSeconds)
	}
	tw.Flush()
}
