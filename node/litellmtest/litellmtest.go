// Package litellmtest is a stand-in for the `litellm` command of a LiteLLM venv, for the node
// agent's unit and command tests, which must stay offline and fast: installing the real
// LiteLLM takes ~170 MB of wheels (the end-to-end tests run the real one). A test binary runs
// Main when the venv's bin/litellm script execs it.
//
// It answers `--version` like LiteLLM ("LiteLLM: Current Version = X"), and otherwise serves
// GET /health/liveliness on 127.0.0.1 (whatever --host says: tests bind only to loopback) at
// --port, after checking what the agent must hand LiteLLM: a readable --config and
// LITELLM_MASTER_KEY starting with sk-. GET /fake/auth answers 200 only to
// "Authorization: Bearer <that key>", so a test can prove the key arrived without reading it.
package litellmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Environment variables that steer the fake.
const (
	// EnvExec makes a test binary's TestMain run Main.
	EnvExec = "FAKE_LITELLM_EXEC"
	// EnvVersion is the version --version reports.
	EnvVersion = "FAKE_LITELLM_VERSION"
	// EnvRecord names a JSON file the fake writes at start: its arguments and its LITELLM_*,
	// DISABLE_* and HOME variables, with the master key replaced by its SHA-256 (the key itself
	// must reach no file but the agent's environment file).
	EnvRecord = "FAKE_LITELLM_RECORD"
	// EnvUnhealthy=1 makes /health/liveliness answer 503.
	EnvUnhealthy = "FAKE_LITELLM_UNHEALTHY"
)

// Record is what the fake writes to EnvRecord.
type Record struct {
	Args []string          `json:"args"`
	Env  map[string]string `json:"env"`
	// MasterKeySHA256 is the hex SHA-256 of LITELLM_MASTER_KEY.
	MasterKeySHA256 string `json:"masterKeySha256"`
}

// KeySHA256 is how Record names a key.
func KeySHA256(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

// Main runs the fake with LiteLLM's command-line arguments and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-v") {
		fmt.Fprintf(stdout, "\nLiteLLM: Current Version = %s\n", os.Getenv(EnvVersion))
		return 0
	}
	fs := flag.NewFlagSet("litellm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "")
	host := fs.String("host", "", "")
	port := fs.Int("port", 0, "")
	workers := fs.Int("num_workers", 0, "")
	keepAlive := fs.Int("keepalive_timeout", 0, "")
	fs.Int("timeout_worker_healthcheck", 0, "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "litellmtest: unsupported arguments %q\n", args)
		return 2
	}
	if *host == "" || *port == 0 || *workers < 1 || *keepAlive < 1 {
		fmt.Fprintf(stderr, "litellmtest: --host, --port, --num_workers and --keepalive_timeout are required (got %q)\n", args)
		return 2
	}
	data, err := os.ReadFile(*config)
	if err != nil || !strings.Contains(string(data), `master_key: "os.environ/LITELLM_MASTER_KEY"`) {
		fmt.Fprintf(stderr, "litellmtest: --config %s is not a config that reads the master key from the environment (%v)\n", *config, err)
		return 1
	}
	key := os.Getenv("LITELLM_MASTER_KEY")
	if !strings.HasPrefix(key, "sk-") {
		fmt.Fprintln(stderr, "litellmtest: LITELLM_MASTER_KEY is not set to an sk- key")
		return 1
	}
	if file := os.Getenv(EnvRecord); file != "" {
		rec := Record{Args: args, Env: map[string]string{}, MasterKeySHA256: KeySHA256(key)}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			if k != "LITELLM_MASTER_KEY" && (strings.HasPrefix(k, "LITELLM_") || strings.HasPrefix(k, "DISABLE_") || k == "HOME") {
				rec.Env[k] = v
			}
		}
		out, _ := json.Marshal(rec)
		if err := os.WriteFile(file, out, 0o644); err != nil {
			fmt.Fprintln(stderr, "litellmtest:", err)
			return 1
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(stderr, "litellmtest:", err)
		return 1
	}
	unhealthy := os.Getenv(EnvUnhealthy) == "1"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/liveliness", func(w http.ResponseWriter, r *http.Request) {
		if unhealthy {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `"I'm alive!"`)
	})
	mux.HandleFunc("GET /fake/auth", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	})
	srv := &http.Server{Handler: mux}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		_ = srv.Close()
	}()
	fmt.Fprintf(stderr, "litellmtest: listening on %s (asked for %s:%d, %d workers, keep-alive %d s)\n", ln.Addr(), *host, *port, *workers, *keepAlive)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(stderr, "litellmtest:", err)
		return 1
	}
	return 0
}
