package localrun

import (
	"context"
	"crypto/rand"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// Layout is what a local run serves: one pool node per pool and one gateway node in front.
type Layout struct {
	// Pools, in order; each pool's Models are routed through the gateway to its node.
	Pools []OllamaOptions
	// Gateway's Routes, OllamaURL and key fields are filled in by StartStack.
	Gateway GatewayOptions
	// Teams are the teams whose keys the gateway accepts; StartStack issues one key of each
	// (owner LocalOwner). Empty: HarnessTeam, for tests and benchmarks.
	Teams []Team
}

// Team is a team of a local run and how long its keys live.
type Team struct {
	node.LiteLLMTeam
	KeyLifetime time.Duration
}

// LocalOwner is the owner label of the keys a local run issues when it starts.
const LocalOwner = "local"

// HarnessTeam is the team of a stack started without teams (tests, benchmarks): every model
// the gateway routes, limits no test reaches, keys for a day.
func HarnessTeam(models []string) Team {
	return Team{LiteLLMTeam: node.LiteLLMTeam{Name: "local", Models: models,
		RequestsPerMinute: 1000000, TokensPerMinute: 1000000000, ParallelPerKey: 100000}, KeyLifetime: 24 * time.Hour}
}

// Stack is a department's serving path on this machine, as a deployed stack exposes it: its
// pool nodes (real Ollama) behind a gateway node (the pinned LiteLLM) on the local platform,
// whose master key is in an owner-only file.
type Stack struct {
	*Deployment
	Pools   map[string]*Node
	Gateway *Node
	// MasterKey is the gateway's master key (operations only: the gateway refuses it for
	// inference); MasterKeyFile the file that holds it.
	MasterKey, MasterKeyFile string
	// KeyStore is the run's key store (keyregistry.LocalStoreFile in the work directory).
	KeyStore *keyregistry.FileStore
	// Keys are the keys issued at start, one per team, in the Layout's team order; Key is
	// the first team's: what clients of a test stack use.
	Keys []keyregistry.Issued
	Key  string
}

// URL is the gateway's base URL, without /v1 (what a stack's output endpointUrl names).
func (s *Stack) URL() string { return s.Gateway.URL() }

// Pool is the node of the stack's only pool (tests and benchmarks run one).
func (s *Stack) Pool() *Node {
	for _, n := range s.Pools {
		return n
	}
	return nil
}

// NodeDir is where a stack started on d keeps the node of the given name: under the
// deployment's work directory, so a command that keeps its state directory between runs finds
// each node's installs again (the agent skips what is already in place).
func (d *Deployment) NodeDir(t T, name string) string {
	dir := filepath.Join(d.Work, "nodes", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	return dir
}

// StartStack bootstraps l's pool nodes, one after the other (with a deployment that has the
// tiny-model writer, each model is a tiny model of its own), then writes a fresh master key
// into an owner-only file and bootstraps the gateway routing each model to its pool.
// Installing LiteLLM takes a minute or two; callers that need the path in several tests share
// one Stack. progress, when not nil, gives the writer each node's step log goes to as it
// bootstraps. Cleanups registered on t stop everything.
func StartStack(t T, d *Deployment, l Layout, progress func(nodeName string) io.Writer) *Stack {
	t.Helper()
	s := &Stack{Deployment: d, Pools: map[string]*Node{}}
	var routes []node.LiteLLMModel
	limit := BootstrapLimit
	if d.Tiny == nil {
		limit = PullLimit
	}
	for _, p := range l.Pools {
		if d.Tiny != nil {
			for _, m := range p.Models {
				d.AddTinyModel(t, m)
			}
		}
		cfg := d.OllamaConfig(0, d.Release, p)
		name := "pool-" + cfg.Pool
		n := NewNode(t, d.NodeDir(t, name), d.Agent)
		n.Ctx = d.Ctx
		if progress != nil {
			n.Progress = progress(name)
		}
		cfg.Ollama.Port = n.Port
		n.Start(t, cfg, limit)
		s.Pools[cfg.Pool] = n
		for _, m := range cfg.Ollama.Models {
			routes = append(routes, node.NewLiteLLMModel(m.Name, n.URL(), cfg.Ollama.ContextLength))
		}
	}
	s.MasterKey = "sk-" + RandomAlphanumeric(t, 48)
	s.MasterKeyFile = filepath.Join(d.Work, "master-key")
	if err := writeOwnerOnly(s.MasterKeyFile, s.MasterKey+"\n"); err != nil {
		t.Fatalf("master key: %v", err)
	}
	gw := l.Gateway
	gw.Routes, gw.MasterKeyFile, gw.MasterKeySecretArn = routes, s.MasterKeyFile, ""
	teams := l.Teams
	if len(teams) == 0 {
		var models []string
		for _, r := range routes {
			models = append(models, r.Name)
		}
		teams = []Team{HarnessTeam(models)}
	}
	gw.KeyRegistry = s.issueKeys(t, teams)
	s.Gateway = NewNode(t, d.NodeDir(t, "gateway"), d.Agent)
	s.Gateway.Ctx = d.Ctx
	if progress != nil {
		s.Gateway.Progress = progress("gateway")
	}
	if gw.Port != 0 {
		s.Gateway.Port = gw.Port
	}
	s.Gateway.Start(t, d.LiteLLMConfig(s.Gateway.Port, gw), BootstrapLimit)
	return s
}

// issueKeys opens (or creates) the key store in the work directory, issues one key of each
// team and returns the gateway's view of the store.
func (s *Stack) issueKeys(t T, teams []Team) *node.KeyRegistry {
	t.Helper()
	store, err := keyregistry.CreateFileStore(filepath.Join(s.Work, keyregistry.LocalStoreFile))
	if err != nil {
		t.Fatalf("%v", err)
	}
	s.KeyStore = store
	reg := &node.KeyRegistry{File: store.Path()}
	now := time.Now()
	for _, team := range teams {
		issued, err := store.Issue(context.Background(), team.Name, LocalOwner, now, now.Add(team.KeyLifetime), "")
		if err != nil {
			t.Fatalf("issue a key of team %s: %v", team.Name, err)
		}
		s.Keys = append(s.Keys, issued)
		reg.Teams = append(reg.Teams, team.LiteLLMTeam)
	}
	s.Key = s.Keys[0].Key
	return reg
}

// StartGatewayStack is StartStack on a new deployment in a temporary directory with one pool
// serving the tiny model as ModelName: what the benchmark and the verify and loadtest tests
// run against. h must have the tiny-model writer and the LiteLLM wheels.
func StartGatewayStack(t T, h Helpers, pool OllamaOptions, gw GatewayOptions) *Stack {
	t.Helper()
	return StartStack(t, NewDeployment(t, h, ""), Layout{Pools: []OllamaOptions{pool}, Gateway: gw}, nil)
}

// writeOwnerOnly writes data into path, readable by its owner only, through a file created
// with that mode, so the content is never readable by another user, even briefly.
func writeOwnerOnly(path, data string) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// URL is the node's server on loopback.
func (n *Node) URL() string { return "http://127.0.0.1:" + strconv.Itoa(n.Port) }

// RandomAlphanumeric returns n random characters from [A-Za-z0-9].
func RandomAlphanumeric(t T, n int) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	for range n {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			t.Fatalf("random: %v", err)
		}
		b.WriteByte(alphabet[i.Int64()])
	}
	return b.String()
}
