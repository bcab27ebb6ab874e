// Command gatewaybench measures what the LiteLLM gateway adds to a request: it stands up the
// department on loopback as `sandboxctl local --tiny` runs it (internal/localrun: a real Ollama
// serving the tiny model and a real pinned LiteLLM in front of it, both installed by the real
// sandbox-node agent) and drives streaming chat completions at 1, 8 and 32 concurrent clients,
// straight to Ollama's /v1/chat/completions and through one or more gateway variants: the
// gateway as the agent starts it, and copies of it with one LiteLLM setting changed (the route
// to Ollama, the worker count, the server and its event loop, the log level, ...; -variants).
// Every level runs in rounds; each round runs every path once, the order rotating from round
// to round, so all paths see the same machine state. It reports, per level and path, time to
// first token and total latency (p50, p90, p95), completed requests/s and tokens/s, then what
// each variant adds to direct Ollama and the throughput ratio, and the gateway's CPU per token.
//
// It is a command, not a timed test: the figures are for reading, not for asserting.
// `make bench` runs it with the helpers `make e2e-deps` prepares; see docs/performance.md.
//
// Usage:
//
//	gatewaybench [-levels 1,8,32] [-requests 128] [-rounds 4] [-max-tokens 64]
//	             [-ollama-parallel 4] [-workers 1] [-variants litellm,litellm+openai,...]
//	             [-json FILE] [-logs DIR]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/node"
	"github.com/llm-sandbox/llm-sandbox/tests/bench/host"
)

// settings are the benchmark's knobs, recorded in the report.
type settings struct {
	Levels         []int    `json:"levels"`
	Requests       int      `json:"requestsPerPathPerLevel"`
	Rounds         int      `json:"roundsPerLevel"`
	MaxTokens      int      `json:"maxTokens"`
	Temperature    int      `json:"temperature"`
	OllamaParallel int      `json:"ollamaNumParallel"`
	Workers        int      `json:"litellmWorkers"`
	Variants       []string `json:"variants"`
	Model          string   `json:"model"`
	Prompt         string   `json:"prompt"`
	logs           string
}

// machine describes where the figures were measured.
type machine struct {
	host.Host
	// LoadBefore and LoadAfter are /proc/loadavg's 1, 5 and 15 minute load averages before the
	// set-up and after the last round: above the benchmark's own load, something else shared
	// the cores.
	LoadBefore string `json:"loadAverageBefore"`
	LoadAfter  string `json:"loadAverageAfter"`
	Python     string `json:"python"`
	Ollama     string `json:"ollama"`
	LiteLLM    string `json:"litellm"`
}

// level is one concurrency level's result.
type level struct {
	Clients  int             `json:"clients"`
	Direct   pathResult      `json:"direct"`
	Variants []variantResult `json:"variants"`
}

// variantResult is one variant at one level and what it adds to direct Ollama.
type variantResult struct {
	pathResult
	// MeasureOnly: the variant drops something the gateway needs; it bounds that part's cost.
	MeasureOnly bool `json:"measureOnly,omitempty"`
	// What the variant adds (milliseconds) and keeps (ratio of throughputs).
	AddedTTFTP50  float64 `json:"addedTtftP50Ms"`
	AddedTTFTP90  float64 `json:"addedTtftP90Ms"`
	AddedTTFTP95  float64 `json:"addedTtftP95Ms"`
	AddedTotalP50 float64 `json:"addedTotalP50Ms"`
	AddedTotalP95 float64 `json:"addedTotalP95Ms"`
	ReqRatio      float64 `json:"requestsPerSecondRatio"`
	TokRatio      float64 `json:"tokensPerSecondRatio"`
	// GatewayCPUSeconds is the CPU (user + system, all processes of the variant's LiteLLM)
	// the gateway used during its rounds at this level; CPUMsPerToken divides it by the tokens
	// it streamed, and TokPerVCPU is the tokens/s one fully busy vCPU would carry at that cost.
	// Zero for direct variants. The accounting proxy's CPU is not in it: it runs in the
	// benchmark's own process.
	GatewayCPUSeconds float64 `json:"gatewayCpuSeconds"`
	CPUMsPerToken     float64 `json:"gatewayCpuMsPerToken"`
	TokPerVCPU        float64 `json:"tokensPerSecondPerGatewayVcpu"`
}

type report struct {
	Started  time.Time `json:"started"`
	Duration float64   `json:"durationSeconds"`
	// ModelLoads counts Ollama runner starts during the measured rounds: a load there means
	// a request's options forced Ollama to reload the model, which the figures then include.
	ModelLoads int      `json:"modelLoadsDuringRun"`
	Machine    machine  `json:"machine"`
	Settings   settings `json:"settings"`
	Levels     []level  `json:"levels"`
}

const prompt = "In three sentences, why would a university department run its own private language model service?"

func main() { os.Exit(run()) }

func run() int {
	var s settings
	levels := flag.String("levels", "1,8,32", "comma-separated numbers of concurrent streaming clients")
	flag.IntVar(&s.Requests, "requests", 128, "requests per path at each level")
	flag.IntVar(&s.Rounds, "rounds", 4, "rounds per level; each round runs every path once, the order rotating")
	flag.IntVar(&s.MaxTokens, "max-tokens", 64, "max_tokens of every request (the tiny model never stops earlier)")
	flag.IntVar(&s.OllamaParallel, "ollama-parallel", 4, "OLLAMA_NUM_PARALLEL of the pool node")
	flag.IntVar(&s.Workers, "workers", 1, "LiteLLM workers of the gateway as the agent renders it (and of every variant that does not change them)")
	variants := flag.String("variants", "litellm", variantsHelp()+"the default measures the gateway as rendered; \"all\" in the list stands for\n"+defaultVariants)
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	flag.StringVar(&s.logs, "logs", "", "copy the nodes' Ollama and LiteLLM logs (and the variants' configs and logs) into this directory at the end")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: gatewaybench [flags]\n\nMeasures LiteLLM's added latency and throughput against direct Ollama on loopback.\nNeeds the helpers of `make e2e-deps` (run it through `make bench`).\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "gatewaybench: -levels: %q is not a positive number\n", f)
			return 2
		}
		s.Levels = append(s.Levels, n)
	}
	if s.Requests < 1 || s.Rounds < 1 || s.Requests%s.Rounds != 0 || s.MaxTokens < 1 || s.OllamaParallel < 1 || s.Workers < 1 {
		fmt.Fprintln(os.Stderr, "gatewaybench: -requests, -rounds, -max-tokens, -ollama-parallel and -workers must be positive, and -rounds must divide -requests")
		return 2
	}
	// "all" in the list stands for defaultVariants.
	var names []string
	for _, n := range strings.Split(*variants, ",") {
		if strings.TrimSpace(n) == "all" {
			n = defaultVariants
		}
		names = append(names, n)
	}
	*variants = strings.Join(names, ",")
	plans, err := parseVariants(*variants)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gatewaybench: %v\n", err)
		return 2
	}
	for _, p := range plans {
		s.Variants = append(s.Variants, p.name)
	}
	s.Model, s.Prompt = localrun.ModelName, prompt

	// An interrupt stops the load and then the deployment (cleanups run either way).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	r := localrun.NewRunner(os.Stderr)
	var rep report
	err = r.Run(func() { rep = bench(ctx, r, s, plans) })
	r.Close()
	if err != nil || r.Failed() {
		fmt.Fprintln(os.Stderr, "gatewaybench: failed (see above)")
		return 1
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "gatewaybench: interrupted")
		return 1
	}

	printReport(os.Stdout, rep)
	if *jsonOut != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "gatewaybench: %v\n", err)
			return 1
		}
	}
	return 0
}

// path is one measured way to the model, and the process whose CPU is its gateway's.
type path struct {
	target
	pid         int // 0: no gateway (direct)
	measureOnly bool
}

// setUpPaths turns the plans into paths: the agent's gateway as it is, copies of it started
// with a setting changed, and the accounting proxy in front where a plan asks for it.
func setUpPaths(ctx context.Context, r *localrun.Runner, s settings, plans []variantPlan, stack *localrun.Stack, gwPid int) []path {
	ollama, gw := stack.Pool(), stack.Gateway
	paths := make([]path, len(plans))
	errs := make([]error, len(plans))
	var wg sync.WaitGroup
	starting := make(chan struct{}, 2)
	for i, p := range plans {
		paths[i] = path{target: target{name: p.name}, measureOnly: p.measureOnly}
		switch {
		case p.base == "direct":
			paths[i].url = ollama.URL()
		case !p.custom:
			paths[i].url, paths[i].key, paths[i].pid = gw.URL(), stack.Key, gwPid
		default:
			paths[i].key = stack.Key
			if p.spec.noAuth {
				paths[i].key = stack.MasterKey
			}
			// Two at a time: each takes tens of seconds of CPU to import LiteLLM, and more at once
			// on a busy machine only slows them all.
			wg.Add(1)
			go func() {
				defer wg.Done()
				starting <- struct{}{}
				defer func() { <-starting }()
				dir := filepath.Join(r.TempDir(), "variant-"+strconv.Itoa(i))
				g, err := startGateway(ctx, gw.Root, dir, ollama.URL(), s.Workers, 75, p.spec)
				if err != nil {
					errs[i] = fmt.Errorf("start %s: %w", p.name, err)
					if s.logs != "" {
						keepVariant(r, s.logs, p.name, dir)
					}
					return
				}
				r.Cleanup(g.stop)
				if s.logs != "" {
					r.Cleanup(func() { keepVariant(r, s.logs, p.name, dir) })
				}
				paths[i].url, paths[i].pid = g.url, g.pid
			}()
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			r.Fatalf("%v", err)
		}
	}
	for i, p := range plans {
		if p.proxy {
			url, stop, err := startProxy(paths[i].url)
			if err != nil {
				r.Fatalf("the accounting proxy of %s: %v", p.name, err)
			}
			r.Cleanup(stop)
			paths[i].url = url
		}
		paths[i].url += "/v1/chat/completions"
	}
	return paths
}

// bench stands the deployment up, warms every path, and measures every level.
func bench(ctx context.Context, r *localrun.Runner, s settings, plans []variantPlan) (rep report) {
	rep = report{Started: time.Now().UTC(), Settings: s}
	loadBefore := host.LoadAverage()
	h := localruntest.RequireLiteLLM(r)

	r.Logf("setting up: agent, Ollama node, LiteLLM node (installing LiteLLM takes a minute or two)")
	stack := localrun.StartGatewayStack(r, h,
		// A queue long enough for every client: a 503 from a full queue would measure the queue.
		localrun.OllamaOptions{Parallel: s.OllamaParallel, MaxQueue: 512},
		localrun.GatewayOptions{
			Workers: s.Workers,
			// Long enough that nothing times out in a queue of 32: a timeout would measure it.
			RequestTimeoutSeconds: 600,
		})
	ollama, gw := stack.Pool(), stack.Gateway
	gwPid, running := node.DetachedPid(gw.PidPath("litellm"))
	if !running {
		r.Fatalf("LiteLLM's pid file %s names no running process", gw.PidPath("litellm"))
	}

	rep.Machine = describeMachine(r, ollama, gw)
	rep.Machine.LoadBefore = loadBefore

	r.Logf("starting the variants: %s", strings.Join(s.Variants, ", "))
	direct := path{target: target{name: "direct", url: ollama.URL() + "/v1/chat/completions"}}
	paths := append([]path{direct}, setUpPaths(ctx, r, s, plans, stack, gwPid)...)
	maxC := 0
	for _, c := range s.Levels {
		maxC = max(maxC, c)
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        2 * maxC * len(paths),
		MaxIdleConnsPerHost: 2 * maxC,
		IdleConnTimeout:     time.Minute,
	}}
	defer client.CloseIdleConnections()
	body := request(s.Model, s.Prompt, s.MaxTokens)
	bodies := func(int) []byte { return body }
	// Each request's own context bounds it; the interrupt cancels them all.
	reqCtx, cancel := context.WithTimeout(ctx, 4*time.Hour)
	defer cancel()

	// Warm-up, not recorded: connections, LiteLLM's lazily imported code paths, Ollama's slots.
	for range 2 {
		for _, p := range paths {
			samples, _ := round(reqCtx, client, p.target, min(4, maxC), 8, bodies)
			for _, smp := range samples {
				if smp.err != nil {
					r.Fatalf("warm-up through %s: %v", p.name, smp.err)
				}
			}
		}
	}

	loadsBefore := modelLoads(r, ollama)
	defer func() {
		rep.ModelLoads = modelLoads(r, ollama) - loadsBefore
		rep.Machine.LoadAfter = host.LoadAverage()
		if s.logs != "" {
			keepLogs(r, s.logs, ollama, gw)
		}
	}()
	start := time.Now()
	for _, c := range s.Levels {
		perRound := s.Requests / s.Rounds
		all := make([][]sample, len(paths))
		wall := make([]time.Duration, len(paths))
		cpu := make([]float64, len(paths))
		for k := range s.Rounds {
			// Rotate the order: round k starts with path k mod n, so no path always follows
			// the same one.
			for j := range paths {
				i := (j + k) % len(paths)
				p := paths[i]
				var before float64
				if p.pid != 0 {
					var err error
					if before, err = treeCPUSeconds(p.pid); err != nil {
						r.Fatalf("%s: LiteLLM's CPU: %v", p.name, err)
					}
				}
				samples, took := round(reqCtx, client, p.target, c, perRound, bodies)
				if p.pid != 0 {
					after, err := treeCPUSeconds(p.pid)
					if err != nil {
						r.Fatalf("%s: LiteLLM's CPU: %v", p.name, err)
					}
					cpu[i] += after - before
				}
				all[i] = append(all[i], samples...)
				wall[i] += took
			}
			if ctx.Err() != nil {
				return rep
			}
		}
		lv := level{Clients: c, Direct: summarise(direct.name, all[0], wall[0])}
		for i, p := range paths[1:] {
			lv.Variants = append(lv.Variants, compare(lv.Direct, summarise(p.name, all[i+1], wall[i+1]), cpu[i+1], p.measureOnly))
		}
		summary := fmt.Sprintf("level %d clients: direct %d ok / %d errors", c, lv.Direct.OK, lv.Direct.Errors)
		for _, v := range lv.Variants {
			summary += fmt.Sprintf(", %s %d / %d", v.Path, v.OK, v.Errors)
		}
		r.Logf("%s", summary)
		results := []pathResult{lv.Direct}
		for _, v := range lv.Variants {
			results = append(results, v.pathResult)
		}
		for _, p := range results {
			if p.Errors > 0 {
				r.Errorf("%d clients, %s: %d of %d requests failed; first: %s", c, p.Path, p.Errors, p.Errors+p.OK, p.FirstError)
			}
		}
		rep.Levels = append(rep.Levels, lv)
	}
	rep.Duration = time.Since(start).Seconds()
	return rep
}

// compare is what variant v adds to direct at one level; cpu is its gateway's CPU seconds.
func compare(direct, v pathResult, cpu float64, measureOnly bool) variantResult {
	res := variantResult{pathResult: v, MeasureOnly: measureOnly,
		AddedTTFTP50:  v.TTFTP50 - direct.TTFTP50,
		AddedTTFTP90:  v.TTFTP90 - direct.TTFTP90,
		AddedTTFTP95:  v.TTFTP95 - direct.TTFTP95,
		AddedTotalP50: v.TotalP50 - direct.TotalP50,
		AddedTotalP95: v.TotalP95 - direct.TotalP95,
	}
	if direct.ReqPerS > 0 {
		res.ReqRatio = v.ReqPerS / direct.ReqPerS
	}
	if direct.TokPerS > 0 {
		res.TokRatio = v.TokPerS / direct.TokPerS
	}
	res.GatewayCPUSeconds = cpu
	if v.Tokens > 0 && cpu > 0 {
		res.CPUMsPerToken = cpu * 1000 / float64(v.Tokens)
		res.TokPerVCPU = float64(v.Tokens) / cpu
	}
	return res
}

// keepVariant copies a started variant's config and log into dir/<name>/.
func keepVariant(r *localrun.Runner, dir, name, from string) {
	to := filepath.Join(dir, strings.ReplaceAll(name, "+", "_"))
	if err := copyDir(filepath.Join(from, "litellm"), to); err != nil {
		r.Errorf("-logs: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(from, "litellm.log")); err == nil {
		if err := os.WriteFile(filepath.Join(to, "litellm.log"), data, 0o644); err != nil {
			r.Errorf("-logs: %v", err)
		}
	}
}

// modelLoads counts the runner starts in the pool node's Ollama log.
func modelLoads(r *localrun.Runner, ollama *localrun.Node) int {
	data, err := os.ReadFile(ollama.LogPath("ollama"))
	if err != nil {
		r.Errorf("read Ollama's log: %v", err)
		return 0
	}
	return strings.Count(string(data), "llama runner started")
}

// keepLogs copies the services' logs into dir.
func keepLogs(r *localrun.Runner, dir string, ollama, gw *localrun.Node) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Errorf("-logs: %v", err)
		return
	}
	for name, path := range map[string]string{"ollama.log": ollama.LogPath("ollama"), "litellm.log": gw.LogPath("litellm"), "litellm-config.yaml": filepath.Join(gw.Root, node.LiteLLMConfigFile)} {
		data, err := os.ReadFile(path)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), data, 0o644)
		}
		if err != nil {
			r.Errorf("-logs: %v", err)
		}
	}
}

// describeMachine records the CPU, the memory, and the versions of everything measured.
func describeMachine(r *localrun.Runner, ollama, gw *localrun.Node) machine {
	m := machine{Host: host.Describe()}
	var version struct {
		Version string `json:"version"`
	}
	localruntest.GetJSON(r, ollama.URL()+"/api/version", "", &version)
	m.Ollama = version.Version

	// The gateway's interpreter is its venv's python: the first word of LiteLLM's command line.
	python := gw.VenvPython(r)
	m.Python = strings.TrimPrefix(outputOf(r, python, "--version"), "Python ")
	m.LiteLLM = outputOf(r, python, "-c", "import importlib.metadata as m; print(m.version('litellm'))")
	return m
}

func outputOf(r *localrun.Runner, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		r.Errorf("%s %s: %v", name, strings.Join(args, " "), err)
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// printReport writes the tables: per level, one row per path, then per variant what it adds
// to direct Ollama, then a summary per variant against the goals.
func printReport(w io.Writer, rep report) {
	m, s := rep.Machine, rep.Settings
	fmt.Fprintf(w, "machine: %s, %d cores, %d GiB, Linux %s\n", m.CPU, m.Cores, m.MemGiB, m.Kernel)
	fmt.Fprintf(w, "load average (1, 5, 15 min): %s before the set-up, %s after the last round\n", m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "versions: Go %s, Python %s, Ollama %s, LiteLLM %s\n", strings.TrimPrefix(m.Go, "go"), m.Python, m.Ollama, m.LiteLLM)
	fmt.Fprintf(w, "load: %d streamed requests per path per level in %d rotating rounds, temperature 0, max_tokens %d, model %s (tiny, CPU), OLLAMA_NUM_PARALLEL %d, LiteLLM workers %d; %.0f s\n",
		s.Requests, s.Rounds, s.MaxTokens, s.Model, s.OllamaParallel, s.Workers, rep.Duration)
	fmt.Fprintf(w, "variants: %s\n\n", strings.Join(s.Variants, ", "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tpath\tok\terr\tTTFT p50 ms\tTTFT p90 ms\tTTFT p95 ms\ttotal p50 ms\ttotal p95 ms\treq/s\ttok/s\tCPU ms/tok\t")
	for _, lv := range rep.Levels {
		d := lv.Direct
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t\t\n",
			lv.Clients, d.Path, d.OK, d.Errors, d.TTFTP50, d.TTFTP90, d.TTFTP95, d.TotalP50, d.TotalP95, d.ReqPerS, d.TokPerS)
		for _, v := range lv.Variants {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t%s\t\n",
				lv.Clients, v.Path, v.OK, v.Errors, v.TTFTP50, v.TTFTP90, v.TTFTP95, v.TotalP50, v.TotalP95, v.ReqPerS, v.TokPerS, cpuCell(v))
			fmt.Fprintf(tw, "%d\t  adds\t\t\t%+.1f\t%+.1f\t%+.1f\t%+.1f\t%+.1f\t×%.3f\t×%.3f\t\t\n",
				lv.Clients, v.AddedTTFTP50, v.AddedTTFTP90, v.AddedTTFTP95, v.AddedTotalP50, v.AddedTotalP95, v.ReqRatio, v.TokRatio)
		}
	}
	tw.Flush()

	fmt.Fprintf(w, "\nper variant, against direct Ollama in the same rounds (added first-token ms p50 / p90; tokens/s ratio; gateway CPU ms per token):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "variant\t"
	for _, lv := range rep.Levels {
		header += fmt.Sprintf("%d: +TTFT p50/p90\t%d: tok/s ratio\t%d: CPU ms/tok\t", lv.Clients, lv.Clients, lv.Clients)
	}
	fmt.Fprintln(tw, header)
	for i, name := range s.Variants {
		row := name
		if len(rep.Levels) > 0 && i < len(rep.Levels[0].Variants) && rep.Levels[0].Variants[i].MeasureOnly {
			row += " (measurement only)"
		}
		row += "\t"
		for _, lv := range rep.Levels {
			if i >= len(lv.Variants) {
				continue
			}
			v := lv.Variants[i]
			row += fmt.Sprintf("%+.1f / %+.1f\t×%.2f\t%s\t", v.AddedTTFTP50, v.AddedTTFTP90, v.TokRatio, cpuCell(v))
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nCPU: user + system of every process of the variant's LiteLLM (from /proc) during its rounds, per streamed token; the accounting proxy's is not in it (it runs in this process)\n")
	fmt.Fprintf(w, "Ollama model loads during the measured rounds: %d (0 means no request forced a reload)\n", rep.ModelLoads)
	if len(rep.Levels) > 0 {
		from := "direct " + rep.Levels[0].Direct.UsageFrom
		for _, v := range rep.Levels[0].Variants {
			from += ", " + v.Path + " " + v.UsageFrom
		}
		fmt.Fprintf(w, "tokens counted from: %s (\"usage\": the server's completion_tokens; \"chunks\": content chunks)\n", from)
	}
}

func cpuCell(v variantResult) string {
	if v.CPUMsPerToken == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v.CPUMsPerToken)
}
