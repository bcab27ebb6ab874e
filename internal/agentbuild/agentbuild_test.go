package agentbuild

import (
	"context"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"
)

func TestBuildIsReproducibleAndLinuxAmd64(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	first, err := Build(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	// A second build from the same source must give the same bytes. Its hash is taken from the
	// freshly built file before it replaces the first; the first is not removed, because other
	// packages' tests run the same content-addressed binary from the project's cache meanwhile.
	second, err := Build(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if first.SHA256 != second.SHA256 || first.Path != second.Path {
		t.Errorf("two builds differ: %s vs %s", first.SHA256, second.SHA256)
	}
	if filepath.Base(second.Path) != "sandbox-node-"+second.SHA256 {
		t.Errorf("binary is not content-addressed: %s", second.Path)
	}
	if sum, _ := fileSHA256(second.Path); sum != second.SHA256 {
		t.Errorf("reported SHA-256 %s, file has %s", second.SHA256, sum)
	}
	f, err := elf.Open(second.Path)
	if err != nil {
		t.Fatalf("not an ELF binary: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("want a static linux/amd64 executable, got machine %v type %v", f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the agent is dynamically linked (cgo must be off)")
		}
	}
}

// A project directory given relative to the working directory (as `..` from a test, or a
// path on the command line) builds the same agent as the absolute one: never an empty file.
func TestBuildFromARelativeProjectDir(t *testing.T) {
	agent, err := Build(context.Background(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(agent.Path) {
		t.Errorf("agent path %s is relative", agent.Path)
	}
	st, err := os.Stat(agent.Path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() == 0 {
		t.Fatalf("%s is empty", agent.Path)
	}
	if sum, _ := fileSHA256(agent.Path); sum != agent.SHA256 {
		t.Errorf("reported SHA-256 %s, file has %s", agent.SHA256, sum)
	}
}

func TestBuildFailureNamesTheCommand(t *testing.T) {
	dir := t.TempDir()
	if _, err := Build(context.Background(), dir); err == nil {
		t.Error("want an error building outside a Go module")
	}
}
