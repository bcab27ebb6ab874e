package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/versions"
)

// versionReport is what version prints, as --format json shows it.
type versionReport struct {
	Sandboxctl buildVersion `json:"sandboxctl"`
	// Go is the Go release the binary was built with.
	Go string `json:"go"`
	// Ollama and LiteLLM are the releases the nodes install, pinned in package versions.
	Ollama  string `json:"ollama"`
	LiteLLM string `json:"litellm"`
}

// buildVersion is the sandboxctl build, as the Go toolchain stamps it into the binary.
type buildVersion struct {
	// Version is the module version: a tag or pseudo-version when built from a git checkout
	// (+dirty with uncommitted changes), "(devel)" when the toolchain could not tell.
	Version string `json:"version"`
	// Revision, Time and Modified are the commit the binary was built from, its time, and
	// whether the work tree had uncommitted changes; empty when built without VCS stamping
	// (-buildvcs=false, or outside a git checkout).
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
}

func runVersion(e env, _ string, args []string) int {
	return exit(e, "version", printVersion(e, args))
}

func printVersion(e env, args []string) error {
	fs := flagSet(e, "version", "version [--format text|json]",
		"Prints the sandboxctl build (module version and the git revision it was built from, when\n"+
			"the Go toolchain stamped them), the Go release it was built with, and the Ollama and\n"+
			"LiteLLM releases the nodes install (package versions). \"sandboxctl --version\" is the\n"+
			`same. json prints {"sandboxctl": {"version", "revision", "time", "modified"}, "go",`+"\n"+
			`"ollama", "litellm"}. Exit 0, or 2 usage error.`)
	format := formatFlag(fs)
	positional, err := parseArgs(fs, args, format)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usagef("takes no arguments (got %s)", strings.Join(positional, " "))
	}
	info, _ := debug.ReadBuildInfo()
	r := readVersion(info)
	if *format == "json" {
		out, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
		return nil
	}
	build := r.Sandboxctl.Version
	if r.Sandboxctl.Revision != "" {
		build += " (revision " + r.Sandboxctl.Revision
		if r.Sandboxctl.Time != "" {
			build += ", " + r.Sandboxctl.Time
		}
		if r.Sandboxctl.Modified {
			build += ", with uncommitted changes"
		}
		build += ")"
	}
	fmt.Fprintf(e.stdout, "sandboxctl  %s\ngo          %s\nollama      %s (pinned for the nodes)\nlitellm     %s (pinned for the nodes)\n",
		build, r.Go, r.Ollama, r.LiteLLM)
	return nil
}

// readVersion reads the version report from the binary's build information (nil when the
// binary has none).
func readVersion(info *debug.BuildInfo) versionReport {
	r := versionReport{
		Sandboxctl: buildVersion{Version: "(devel)"},
		Go:         "unknown",
		Ollama:     versions.Ollama.Version,
		LiteLLM:    versions.LiteLLM.Version,
	}
	if info == nil {
		return r
	}
	if info.Main.Version != "" {
		r.Sandboxctl.Version = info.Main.Version
	}
	if info.GoVersion != "" {
		r.Go = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			r.Sandboxctl.Revision = s.Value
		case "vcs.time":
			r.Sandboxctl.Time = s.Value
		case "vcs.modified":
			r.Sandboxctl.Modified = s.Value == "true"
		}
	}
	return r
}
