package localrun

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/llm-sandbox/llm-sandbox/node"
)

// RunRecordFile is the file in a state directory that a detached run writes once it is ready.
const RunRecordFile = "run.json"

// RunRecord is what a detached run leaves in its state directory for `--status`: where it
// serves and what. The servers' pid files are in the node roots, where the agent wrote them.
type RunRecord struct {
	Stack   string    `json:"stack"`
	URL     string    `json:"url"`
	Model   string    `json:"model"`
	Tiny    bool      `json:"tiny"`
	Started time.Time `json:"started"`
}

// WriteRunRecord writes rec into state.
func WriteRunRecord(state string, rec RunRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(state, RunRecordFile), append(data, '\n'), 0o644)
}

// ReadRunRecord reads the record of the run in state; ok is false when it has none.
func ReadRunRecord(state string) (rec RunRecord, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(state, RunRecordFile))
	if errors.Is(err, os.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, false, fmt.Errorf("%s: %w", filepath.Join(state, RunRecordFile), err)
	}
	return rec, true, nil
}

// Service is one server of a local run: a node's Ollama or LiteLLM, started detached by the
// agent, with its pid file.
type Service struct {
	Node, Name, PidFile string
	Pid                 int
	Running             bool
}

// Services lists the servers whose pid files are in the node roots under state (what
// StartStack's nodes leave there), sorted by node and name. A server is Running only when its
// pid is alive and runs from under state: a pid file left by a run that ended with the machine
// may name an unrelated process by now.
func Services(state string) []Service {
	roots, _ := filepath.Glob(filepath.Join(state, "nodes", "*", "root"))
	slices.Sort(roots)
	under := ProcessesUnder(state)
	var list []Service
	for _, root := range roots {
		for _, name := range slices.Sorted(maps.Keys(services)) {
			pidFile := filepath.Join(root, services[name].pid)
			if _, err := os.Stat(pidFile); err != nil {
				continue
			}
			pid, running := node.DetachedPid(pidFile)
			_, ours := under[pid]
			list = append(list, Service{Node: filepath.Base(filepath.Dir(root)), Name: name, PidFile: pidFile, Pid: pid, Running: running && ours})
		}
	}
	return list
}

// StopRun stops every server of the run in state (each with its process group, as Ctrl-C
// does), then kills any process still running from under state, removes the run record and
// returns what it stopped. It fails when a process survived.
func StopRun(state string) ([]Service, error) {
	var stopped []Service
	var errs []error
	for _, s := range Services(state) {
		if !s.Running {
			// A stale pid file: whatever has that pid now is not the run's to stop.
			if err := os.Remove(s.PidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		if err := node.StopDetached(s.PidFile, 15*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("%s of %s: %w", s.Name, s.Node, err))
		}
		stopped = append(stopped, s)
	}
	left := ProcessesUnder(state)
	for _, pid := range slices.Sorted(maps.Keys(left)) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(100 * time.Millisecond)
	if still := ProcessesUnder(state); len(still) > 0 {
		errs = append(errs, fmt.Errorf("processes still running under %s: %v", state, still))
	}
	if err := os.Remove(filepath.Join(state, RunRecordFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return stopped, errors.Join(errs...)
}
