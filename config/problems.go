package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a stack file, located by file and key path.
type Problem struct {
	// Source is the stack file, e.g. "stacks/Pulumi.chemistry.yaml".
	Source string
	// Path is the key path without the namespace, e.g. "pools.gpu.maxSize".
	Path string
	// Message says what is wrong, with the value found.
	Message string
}

// String formats the problem as "<file>: <key.path>: <message>".
func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s", p.Source, p.Path, p.Message)
}

// Problems is every problem found in one or more stack files. It is the error that Parse, Load
// and CheckSet return when anything is wrong.
type Problems []Problem

// Error lists every problem, one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// joinPath appends a key to a dotted key path. An empty key shows as "" so that a message
// still points somewhere.
func joinPath(path, key string) string {
	if key == "" {
		key = `""`
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// unknownMessage says that key is not one of known, with the likely meant one when the key is
// close to one, else the list.
func unknownMessage(key string, known []string) string {
	if s := suggest(key, known); s != "" {
		return fmt.Sprintf("unknown key %q (did you mean %q?)", key, s)
	}
	return fmt.Sprintf("unknown key %q (known keys: %s)", key, strings.Join(known, ", "))
}

// suggest returns the known name closest to an unknown one, when it is close enough to be a
// likely typo ("" otherwise).
func suggest(unknown string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(unknown), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
