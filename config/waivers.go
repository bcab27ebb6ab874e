package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// WaiversKey is the stack-file key, without the namespace, under which a stack waives policy
// rules: `llm-sandbox:waivers: {RULE-ID: "reason (who, until when)"}`. A waiver lives only in
// the stack file it applies to; the program itself does not read it (waivers change no
// resource), `sandboxctl check` does.
const WaiversKey = "waivers"

// Waiver is one waived policy rule of a stack.
type Waiver struct {
	// Rule is the waived rule's id.
	Rule string `json:"rule"`
	// Reason says why, who decided and until when.
	Reason string `json:"reason"`
}

// ParseWaivers reads the waivers of a stack's config values, sorted by rule. ruleIDs are the
// rules that exist: a waiver of any other id is a problem (with the likely meant id), and so
// is an empty reason. source names the stack file in problems.
func ParseWaivers(source string, values Values, ruleIDs []string) ([]Waiver, error) {
	raw, ok := values[Namespace+":"+WaiversKey]
	if !ok {
		return nil, nil
	}
	fail := func(path, format string, args ...any) Problem {
		return Problem{Source: source, Path: path, Message: fmt.Sprintf(format, args...)}
	}
	var entries map[string]any
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		return nil, Problems{fail(WaiversKey, "must be a mapping of rule ids to reasons (got %q)", raw)}
	}
	var ps Problems
	var out []Waiver
	for id, v := range entries {
		path := joinPath(WaiversKey, id)
		reason, isString := v.(string)
		reason = strings.TrimSpace(reason)
		switch {
		case !slices.Contains(ruleIDs, id):
			msg := fmt.Sprintf("unknown rule %q", id)
			if s := suggest(id, ruleIDs); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (sandboxctl check --list shows the rules)"
			}
			ps = append(ps, fail(path, "%s", msg))
		case !isString || reason == "":
			ps = append(ps, fail(path, "must give the reason for the waiver, who decided it and until when (got %v)", v))
		default:
			out = append(out, Waiver{Rule: id, Reason: reason})
		}
	}
	if len(ps) > 0 {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Path < ps[j].Path })
		return nil, ps
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out, nil
}

// LoadWaivers reads the waivers of stacks/Pulumi.<stack>.yaml under projectDir.
func LoadWaivers(projectDir, stack string, ruleIDs []string) ([]Waiver, error) {
	source := StackFile(stack)
	data, err := os.ReadFile(filepath.Join(projectDir, source))
	if err != nil {
		return nil, Problems{{Source: source, Path: "(file)", Message: err.Error()}}
	}
	values, err := stackFileValues(source, data)
	if err != nil {
		return nil, err
	}
	return ParseWaivers(source, values, ruleIDs)
}
