package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/ollamastore"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// DefaultRegistry is the base URL of the Ollama registry models are fetched from: the host
// Ollama itself pulls library models from (ollamastore.DefaultRegistry).
const DefaultRegistry = "https://" + ollamastore.DefaultRegistry

// Object is one file of the mirror: where it goes in the bucket, what it must hash to, and
// where the deploying machine fetches it from.
type Object struct {
	// Key is the bucket key (see the Key functions of layout.go).
	Key string
	// SHA256 is the file's lowercase hex SHA-256.
	SHA256 string
	// Size is its length in bytes; 0 when not known before fetching.
	Size int64
	// What names the object for people: "Ollama 0.35.1 release", "model llama3.1:8b
	// manifest", "model llama3.1:8b blob sha256:…", "LiteLLM 1.108.7 wheelhouse".
	What string
	// Source is the https:// (or, for loopback test servers, http://) URL it is fetched
	// from; "" for the wheelhouse, which is built.
	Source string
}

// Set is what a stack's nodes fetch, known from pins alone, with no network (plan time).
type Set struct {
	// Ollama is the release; its object key is OllamaReleaseKey(Ollama.SHA256).
	Ollama versions.Release
	// Wheelhouse is nil when the stack has no gateway that installs LiteLLM.
	Wheelhouse *versions.WheelhousePin
	// Models are sorted by name, each once.
	Models []Model
}

// Model is one model of a Set.
type Model struct {
	// Name is the Ollama tag as in the stack ("llama3.1:8b").
	Name string
	// Pin is the model's recorded manifest.
	Pin versions.ModelPin
}

// NewSet builds the set for the given models. Every model must have a pin in pins; the error
// lists every unpinned model at once and says to run `sandboxctl pin model NAME` on a machine
// with internet access. The release must pass versions.CheckOllama, and the wheelhouse, when
// given, must be pinned for the lock nodes install (versions.LiteLLMRequirements): a pin of
// another lock would make every gateway node refuse the wheelhouse.
func NewSet(release versions.Release, wheelhouse *versions.WheelhousePin, models []string, pins map[string]versions.ModelPin) (Set, error) {
	var problems []string
	if p := versions.CheckOllama(release); p != "" {
		problems = append(problems, p)
	}
	if wheelhouse != nil {
		if p := CheckWheelhouse(*wheelhouse, versions.LiteLLMRequirements); p != "" {
			problems = append(problems, p)
		}
	}
	names := slices.Clone(models)
	sort.Strings(names)
	names = slices.Compact(names)
	set := Set{Ollama: release, Wheelhouse: wheelhouse}
	var unpinned []string
	for _, name := range names {
		if _, err := ollamastore.ParseName(name); err != nil || !rules.IsOllamaTag(name) {
			problems = append(problems, fmt.Sprintf("model %q is not an Ollama tag such as llama3.1:8b", name))
			continue
		}
		pin, ok := pins[name]
		if !ok {
			unpinned = append(unpinned, name)
			continue
		}
		if p := CheckModelPin(pin); p != "" {
			problems = append(problems, fmt.Sprintf("versions.ModelPins[%q]: %s", name, p))
			continue
		}
		set.Models = append(set.Models, Model{Name: name, Pin: pin})
	}
	if len(unpinned) > 0 {
		word := "model"
		if len(unpinned) > 1 {
			word = "models"
		}
		problems = append(problems, fmt.Sprintf("%s %s not pinned in versions/models_pinned.go: a mirror holds only models whose manifest hash is recorded; "+
			"run `sandboxctl pin model %s` on a machine with internet access, review the change and commit it",
			word, strings.Join(unpinned, ", "), strings.Join(unpinned, " ")))
	}
	if len(problems) > 0 {
		return Set{}, fmt.Errorf("mirror: %s", strings.Join(problems, "; "))
	}
	return set, nil
}

// CheckModelPin says what is wrong with a model pin, or "" when nothing is.
func CheckModelPin(p versions.ModelPin) string {
	var problems []string
	if !rules.IsSHA256Hex(p.Manifest) {
		problems = append(problems, fmt.Sprintf("Manifest must be 64 lowercase hex digits (got %q)", p.Manifest))
	}
	if p.Size <= 0 {
		problems = append(problems, fmt.Sprintf("Size must be positive (got %d)", p.Size))
	}
	if _, err := time.Parse(time.DateOnly, p.Pinned); err != nil {
		problems = append(problems, fmt.Sprintf("Pinned must be a date YYYY-MM-DD (got %q)", p.Pinned))
	}
	return strings.Join(problems, "; ")
}

// CheckWheelhouse says what is wrong with a wheelhouse pin for the hash-locked requirements
// lock, or "" when nothing is: a pin of another lock is stale, and every field must be set.
func CheckWheelhouse(p versions.WheelhousePin, lock string) string {
	var problems []string
	if p.Python == "" || p.Platform == "" {
		problems = append(problems, fmt.Sprintf("Python and Platform must be set (got %q, %q)", p.Python, p.Platform))
	}
	if !rules.IsSHA256Hex(p.SHA256) || p.Size <= 0 {
		problems = append(problems, fmt.Sprintf("SHA256 and Size must describe the archive (got %q, %d)", p.SHA256, p.Size))
	}
	if len(p.Files) == 0 {
		problems = append(problems, "Files lists no wheel")
	}
	for _, f := range p.Files {
		if !strings.HasSuffix(f.Name, ".whl") || strings.ContainsAny(f.Name, `/\`) || !rules.IsSHA256Hex(f.SHA256) {
			problems = append(problems, fmt.Sprintf("Files: %q (sha256 %q) is not a wheel file name with its hash", f.Name, f.SHA256))
		}
	}
	if want := SHA256Hex([]byte(lock)); p.Lock != want {
		problems = append(problems, fmt.Sprintf("it was built from another lock (Lock %q, litellm-requirements.txt has %s)", p.Lock, want))
	}
	if len(problems) == 0 {
		return ""
	}
	return "versions.Wheelhouse: " + strings.Join(problems, "; ") +
		"; run `sandboxctl pin wheelhouse` on a machine that reaches PyPI, review the change to versions/wheelhouse_pinned.go and commit it"
}

// Pins are the set's model pins by model name, as the model pools take them.
func (s Set) Pins() map[string]versions.ModelPin {
	out := make(map[string]versions.ModelPin, len(s.Models))
	for _, m := range s.Models {
		out[m.Name] = m.Pin
	}
	return out
}

// SHA256Hex is the lowercase hex SHA-256 of data.
func SHA256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Objects lists the objects known at plan time: the release, the wheelhouse, each model's
// manifest (model blobs are only known once the manifest is fetched). Sorted by key.
func (s Set) Objects() []Object {
	objs := []Object{s.releaseObject(s.Ollama.URL)}
	if s.Wheelhouse != nil {
		objs = append(objs, wheelhouseObject(*s.Wheelhouse))
	}
	for _, m := range s.Models {
		objs = append(objs, manifestObject(m, DefaultRegistry))
	}
	sortObjects(objs)
	return objs
}

func sortObjects(objs []Object) {
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
}

// releaseObject is the release fetched from url.
func (s Set) releaseObject(url string) Object {
	return Object{
		Key:    OllamaReleaseKey(s.Ollama.SHA256),
		SHA256: s.Ollama.SHA256,
		What:   fmt.Sprintf("Ollama %s release", s.Ollama.Version),
		Source: url,
	}
}

func wheelhouseObject(p versions.WheelhousePin) Object {
	return Object{
		Key:    WheelhouseKey(p.SHA256),
		SHA256: p.SHA256,
		Size:   p.Size,
		What:   fmt.Sprintf("LiteLLM %s wheelhouse", versions.LiteLLM.Version),
	}
}

// manifestObject is m's manifest as the registry at base serves it. The name was checked by
// NewSet; a name that does not parse gets no source.
func manifestObject(m Model, base string) Object {
	o := Object{
		Key:    ModelManifestKey(m.Pin.Manifest),
		SHA256: m.Pin.Manifest,
		What:   fmt.Sprintf("model %s manifest", m.Name),
	}
	if n, err := ollamastore.ParseName(m.Name); err == nil {
		o.Source = strings.TrimSuffix(base, "/") + n.RegistryManifestPath()
	}
	return o
}

// blobObject is one blob of model name, as the registry at base serves it.
func blobObject(name ollamastore.Name, model string, l ollamastore.Layer, base string) (Object, error) {
	hexSum, err := ollamastore.DigestHex(l.Digest)
	if err != nil {
		return Object{}, fmt.Errorf("model %s manifest: %w", model, err)
	}
	return Object{
		Key:    ModelBlobKey(hexSum),
		SHA256: hexSum,
		Size:   l.Size,
		What:   fmt.Sprintf("model %s blob %s", model, l.Digest),
		Source: strings.TrimSuffix(base, "/") + name.RegistryBlobPath(l.Digest),
	}, nil
}
