package main

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"maps"
	"path/filepath"
	"time"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
)

// storeFlags choose the key store of the keys commands: the registry table (default) or the
// key store of the stack's local run (--local, --state DIR).
type storeFlags struct {
	local *bool
	state *string
}

func addStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		local: fs.Bool("local", false, "work on the key store of STACK's local run (sandboxctl local), not the registry table"),
		state: fs.String("state", "", "the local run's state `directory` (implies --local; default <user cache>/llm-sandbox/local/STACK)"),
	}
}

// isLocal says whether the command works on a local run's key store; a command without the
// flags (keys usage) always reads the deployed stack.
func (f storeFlags) isLocal() bool {
	return (f.local != nil && *f.local) || (f.state != nil && *f.state != "")
}

// openLocalStore opens the key store of spec's local run in state (the default state
// directory when empty). The stack's teams are the local run's (localSpecTeams).
func openLocalStore(spec *config.Spec, positional []string, state string) (*keysSession, []string, context.CancelFunc, error) {
	if state == "" {
		var err error
		if state, err = localStateDir(spec.Stack); err != nil {
			return nil, nil, nil, err
		}
	}
	store, err := keyregistry.OpenFileStore(filepath.Join(state, keyregistry.LocalStoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, usagef("no local run of %s in %s: start one with sandboxctl local %s (or pass its --state DIR)", spec.Stack, state, spec.Stack)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	local := *spec
	local.Teams = localSpecTeams(spec)
	ctx, cancel := context.WithTimeout(context.Background(), keysTimeout)
	return &keysSession{spec: &local, registry: store, ctx: ctx, now: time.Now().UTC()}, positional[1:], cancel, nil
}

// localSpecTeams are the teams of a local run of spec: the stack's, or, when it declares
// none, one team "local" with every model and the defaults of a team declared without
// settings.
func localSpecTeams(spec *config.Spec) map[string]config.Team {
	if len(spec.Teams) > 0 {
		return maps.Clone(spec.Teams)
	}
	return map[string]config.Team{"local": {
		Name: "local", Models: spec.ModelNames(),
		RequestsPerMinute: config.DefaultTeamRequestsPerMinute, TokensPerMinute: config.DefaultTeamTokensPerMinute,
		ParallelPerKey: config.DefaultTeamParallelPerKey, MaxKeyLifetimeDays: config.DefaultTeamMaxKeyLifetimeDays,
	}}
}
