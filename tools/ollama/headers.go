//go:build headers

// This file is never built. It keeps github.com/gen2brain/malgo in go.mod and go.sum (go mod
// tidy considers every build tag) so that its miniaudio.h, which the Go module zip of Ollama's
// vendored llama.cpp lacks, comes pinned and checksum-verified: `make e2e-deps` copies it into
// the include folder it passes to the Ollama cgo build with CGO_CPPFLAGS.
package headers

import _ "github.com/gen2brain/malgo"
