// Command gatewaybench measures what the LiteLLM gateway adds to a request: it stands up the
// department on loopback as `sandboxctl local --tiny` runs it (internal/localrun: a real Ollama
// serving the tiny model and a real pinned LiteLLM in front of it, both installed by the real
// sandbox-node agent)
// and drives streaming chat completions at 1, 8 and 32 concurrent clients, straight to
// Ollama's /v1/chat/completions and through LiteLLM's, in alternating rounds so both paths see
// the same machine state. It reports, per level and path, time to first token and total
// latency (p50, p95), completed requests/s and tokens/s, then the latency LiteLLM adds and the
// throughput ratio.
//
// It is a command, not a timed test: the figures are for reading, not for asserting.
// `make bench` runs it with the helpers `make e2e-deps` prepares; see docs/performance.md.
//
// Usage:
//
//	gatewaybench [-levels 1,8,32] [-requests 128] [-rounds 4] [-max-tokens 64]
//	             [-ollama-parallel 4] [-workers 1] [-json FILE]
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
	Levels         []int  `json:"levels"`
	Requests       int    `json:"requestsPerPathPerLevel"`
	Rounds         int    `json:"roundsPerLevel"`
	MaxTokens      int    `json:"maxTokens"`
	Temperature    int    `json:"temperature"`
	OllamaParallel int    `json:"ollamaNumParallel"`
	Workers        int    `json:"litellmWorkers"`
	Model          string `json:"model"`
	Prompt         string `json:"prompt"`
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
	Clients int        `json:"clients"`
	Direct  pathResult `json:"direct"`
	LiteLLM pathResult `json:"litellm"`
	// What LiteLLM adds (milliseconds) and keeps (ratio of throughputs).
	AddedTTFTP50  float64 `json:"addedTtftP50Ms"`
	AddedTTFTP95  float64 `json:"addedTtftP95Ms"`
	AddedTotalP50 float64 `json:"addedTotalP50Ms"`
	AddedTotalP95 float64 `json:"addedTotalP95Ms"`
	ReqRatio      float64 `json:"requestsPerSecondRatio"`
	TokRatio      float64 `json:"tokensPerSecondRatio"`
	// GatewayCPUSeconds is the CPU (user + system, all LiteLLM processes) the gateway used
	// during its rounds at this level; CPUMsPerToken divides it by the tokens it streamed, and
	// TokPerVCPU is the tokens/s one fully busy vCPU would carry at that cost.
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
	flag.IntVar(&s.Rounds, "rounds", 4, "rounds per level; each round runs both paths, the first path alternating")
	flag.IntVar(&s.MaxTokens, "max-tokens", 64, "max_tokens of every request (the tiny model never stops earlier)")
	flag.IntVar(&s.OllamaParallel, "ollama-parallel", 4, "OLLAMA_NUM_PARALLEL of the pool node")
	flag.IntVar(&s.Workers, "workers", 1, "LiteLLM workers")
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	flag.StringVar(&s.logs, "logs", "", "copy the nodes' Ollama and LiteLLM logs into this directory at the end")
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
	s.Model, s.Prompt = localrun.ModelName, prompt

	// An interrupt stops the load and then the deployment (cleanups run either way).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	r := localrun.NewRunner(os.Stderr)
	var rep report
	err := r.Run(func() { rep = bench(ctx, r, s) })
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

// bench stands the deployment up, warms both paths, and measures every level.
func bench(ctx context.Context, r *localrun.Runner, s settings) (rep report) {
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
	ollama, gw, key := stack.Pool(), stack.Gateway, stack.Key
	gwPid, running := node.DetachedPid(gw.PidPath("litellm"))
	if !running {
		r.Fatalf("LiteLLM's pid file %s names no running process", gw.PidPath("litellm"))
	}

	rep.Machine = describeMachine(r, ollama, gw)
	rep.Machine.LoadBefore = loadBefore

	direct := target{name: "direct", url: ollama.URL() + "/v1/chat/completions"}
	litellm := target{name: "litellm", url: gw.URL() + "/v1/chat/completions", key: key}
	maxC := 0
	for _, c := range s.Levels {
		maxC = max(maxC, c)
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        4 * maxC,
		MaxIdleConnsPerHost: 2 * maxC,
		IdleConnTimeout:     time.Minute,
	}}
	defer client.CloseIdleConnections()
	body := request(s.Model, s.Prompt, s.MaxTokens)
	bodies := func(int) []byte { return body }
	// Each request's own context bounds it; the interrupt cancels them all.
	reqCtx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()

	// Warm-up, not recorded: connections, LiteLLM's lazily imported code paths, Ollama's slots.
	for _, tg := range []target{direct, litellm, direct, litellm} {
		samples, _ := round(reqCtx, client, tg, min(4, maxC), 8, bodies)
		for _, smp := range samples {
			if smp.err != nil {
				r.Fatalf("warm-up through %s: %v", tg.name, smp.err)
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
		var all = map[string][]sample{}
		var wall = map[string]time.Duration{}
		var gwCPU float64
		for k := range s.Rounds {
			order := []target{direct, litellm}
			if k%2 == 1 {
				order = []target{litellm, direct}
			}
			for _, tg := range order {
				cpuBefore, err := treeCPUSeconds(gwPid)
				if err != nil {
					r.Fatalf("LiteLLM's CPU: %v", err)
				}
				samples, took := round(reqCtx, client, tg, c, perRound, bodies)
				if tg.name == litellm.name {
					cpuAfter, err := treeCPUSeconds(gwPid)
					if err != nil {
						r.Fatalf("LiteLLM's CPU: %v", err)
					}
					gwCPU += cpuAfter - cpuBefore
				}
				all[tg.name] = append(all[tg.name], samples...)
				wall[tg.name] += took
			}
			if ctx.Err() != nil {
				return rep
			}
		}
		lv := level{
			Clients: c,
			Direct:  summarise(direct.name, all[direct.name], wall[direct.name]),
			LiteLLM: summarise(litellm.name, all[litellm.name], wall[litellm.name]),
		}
		lv.AddedTTFTP50 = lv.LiteLLM.TTFTP50 - lv.Direct.TTFTP50
		lv.AddedTTFTP95 = lv.LiteLLM.TTFTP95 - lv.Direct.TTFTP95
		lv.AddedTotalP50 = lv.LiteLLM.TotalP50 - lv.Direct.TotalP50
		lv.AddedTotalP95 = lv.LiteLLM.TotalP95 - lv.Direct.TotalP95
		if lv.Direct.ReqPerS > 0 {
			lv.ReqRatio = lv.LiteLLM.ReqPerS / lv.Direct.ReqPerS
		}
		if lv.Direct.TokPerS > 0 {
			lv.TokRatio = lv.LiteLLM.TokPerS / lv.Direct.TokPerS
		}
		lv.GatewayCPUSeconds = gwCPU
		if lv.LiteLLM.Tokens > 0 && gwCPU > 0 {
			lv.CPUMsPerToken = gwCPU * 1000 / float64(lv.LiteLLM.Tokens)
			lv.TokPerVCPU = float64(lv.LiteLLM.Tokens) / gwCPU
		}
		r.Logf("level %d clients: direct %d ok / %d errors, litellm %d ok / %d errors", c, lv.Direct.OK, lv.Direct.Errors, lv.LiteLLM.OK, lv.LiteLLM.Errors)
		for _, p := range []pathResult{lv.Direct, lv.LiteLLM} {
			if p.Errors > 0 {
				r.Errorf("%d clients, %s: %d of %d requests failed; first: %s", c, p.Path, p.Errors, p.Errors+p.OK, p.FirstError)
			}
		}
		rep.Levels = append(rep.Levels, lv)
	}
	rep.Duration = time.Since(start).Seconds()
	return rep
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

// printReport writes the table: per level, one row per path and one row of differences.
func printReport(w io.Writer, rep report) {
	m, s := rep.Machine, rep.Settings
	fmt.Fprintf(w, "machine: %s, %d cores, %d GiB, Linux %s\n", m.CPU, m.Cores, m.MemGiB, m.Kernel)
	fmt.Fprintf(w, "load average (1, 5, 15 min): %s before the set-up, %s after the last round\n", m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "versions: Go %s, Python %s, Ollama %s, LiteLLM %s\n", strings.TrimPrefix(m.Go, "go"), m.Python, m.Ollama, m.LiteLLM)
	fmt.Fprintf(w, "load: %d streamed requests per path per level in %d alternating rounds, temperature 0, max_tokens %d, model %s (tiny, CPU), OLLAMA_NUM_PARALLEL %d, LiteLLM workers %d; %.0f s\n\n",
		s.Requests, s.Rounds, s.MaxTokens, s.Model, s.OllamaParallel, s.Workers, rep.Duration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tpath\tok\terr\tTTFT p50 ms\tTTFT p95 ms\ttotal p50 ms\ttotal p95 ms\treq/s\ttok/s\t")
	for _, lv := range rep.Levels {
		for _, p := range []pathResult{lv.Direct, lv.LiteLLM} {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t\n",
				lv.Clients, p.Path, p.OK, p.Errors, p.TTFTP50, p.TTFTP95, p.TotalP50, p.TotalP95, p.ReqPerS, p.TokPerS)
		}
		fmt.Fprintf(tw, "%d\tLiteLLM adds\t\t\t%+.1f\t%+.1f\t%+.1f\t%+.1f\t×%.3f\t×%.3f\t\n",
			lv.Clients, lv.AddedTTFTP50, lv.AddedTTFTP95, lv.AddedTotalP50, lv.AddedTotalP95, lv.ReqRatio, lv.TokRatio)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ngateway CPU (user + system of every LiteLLM process, from /proc) during its rounds:\n")
	for _, lv := range rep.Levels {
		fmt.Fprintf(w, "  %d clients: %.2f CPU s for %d tokens = %.2f ms of a vCPU per token, %.0f tokens/s per busy vCPU\n",
			lv.Clients, lv.GatewayCPUSeconds, lv.LiteLLM.Tokens, lv.CPUMsPerToken, lv.TokPerVCPU)
	}
	fmt.Fprintf(w, "\nOllama model loads during the measured rounds: %d (0 means no request forced a reload)\n", rep.ModelLoads)
	if len(rep.Levels) > 0 {
		fmt.Fprintf(w, "tokens counted from: direct %s, litellm %s (\"usage\": the server's completion_tokens; \"chunks\": content chunks)\n",
			rep.Levels[0].Direct.UsageFrom, rep.Levels[0].LiteLLM.UsageFrom)
	}
}
