// Command ollama is the real Ollama CLI and server, built from the Go module proxy for the
// local end-to-end tests (CPU only: cgo compiles the ggml CPU backend in). It is the same
// entry point as the main package of github.com/ollama/ollama, which cannot be imported; the
// pinned version is in this module's go.mod and `make e2e-deps` stamps it with -ldflags.
package main

import (
	"context"

	"github.com/ollama/ollama/cmd"
	"github.com/spf13/cobra"
)

func main() {
	cobra.CheckErr(cmd.NewCLI().ExecuteContext(context.Background()))
}
