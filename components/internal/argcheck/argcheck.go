// Package argcheck checks a component's arguments before it registers anything: a Checker
// collects every problem at once, each naming its field, and applies the rules of
// internal/rules so that a component refuses what the stack-file parser refuses, in the same
// words. Every component uses it, whether it launches nodes or not.
package argcheck

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// TagName is the Name tag, which a component sets itself on what it creates.
const TagName = catalog.TagName

// Tag is one tag a component sets itself and that identifies what it creates.
type Tag struct {
	// Key and Value are the tag.
	Key, Value string
	// Field is the component argument the value comes from (e.g. "Department"), named in
	// messages; "" for a value the component fixes itself.
	Field string
}

// FieldError is one problem with one field of a component's arguments.
type FieldError struct {
	Kind      string // what the component is: "model pool", "gateway"
	Component string // the component's logical name
	Field     string // e.g. "MinSize", "Schedule.Start", "Models[1]"
	Problem   string // what is wrong, with the value got
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %q: %s: %s", e.Kind, e.Component, e.Field, e.Problem)
}

// Checker collects every problem with a component's arguments, so that all are reported at
// once, each naming its field.
type Checker struct {
	kind, component string
	errs            []error
}

// NewChecker returns a checker for the component of that kind and logical name.
func NewChecker(kind, component string) *Checker {
	return &Checker{kind: kind, component: component}
}

// Add records a problem with field.
func (c *Checker) Add(field, format string, a ...any) {
	c.errs = append(c.errs, &FieldError{c.kind, c.component, field, fmt.Sprintf(format, a...)})
}

// Err returns every problem recorded, joined, or nil.
func (c *Checker) Err() error { return errors.Join(c.errs...) }

// Rule records what a rule of the rules package says about field, if anything, and reports
// whether the value passed.
func (c *Checker) Rule(field, problem string) bool {
	if problem != "" {
		c.Add(field, "%s", problem)
		return false
	}
	return true
}

// Department checks a department's short name (rules.Department).
func (c *Checker) Department(v string) { c.Rule("Department", rules.Department(v)) }

// Region checks an AWS region name (rules.Region).
func (c *Checker) Region(v string) { c.Rule("Region", rules.Region(v)) }

// InstanceType checks the shape of an EC2 instance type and reports whether it is well formed.
func (c *Checker) InstanceType(field, v, example string) bool {
	return c.Rule(field, rules.InstanceTypeShape(v, example))
}

// Sizes checks a group's bounds: floor <= min <= max, max >= 1.
func (c *Checker) Sizes(minSize, maxSize, floor int) {
	if minSize < floor {
		c.Add("MinSize", "must be at least %d (got %d)", floor, minSize)
	}
	if maxSize < 1 {
		c.Add("MaxSize", "must be at least 1 (got %d)", maxSize)
	} else if minSize > maxSize {
		c.Add("MaxSize", "must be at least MinSize (got %d, MinSize %d)", maxSize, minSize)
	}
}

// SHA256 checks a lowercase hex SHA-256 and reports whether it is well formed.
func (c *Checker) SHA256(field, v string) bool { return c.Rule(field, rules.SHA256Hex(v)) }

// Required reports every field whose input is nil.
func (c *Checker) Required(inputs map[string]bool) {
	for _, field := range slices.Sorted(maps.Keys(inputs)) {
		if inputs[field] {
			c.Add(field, "required (got nil)")
		}
	}
}

// Tags checks the extra tags of what a component of that kind and name creates: they may not
// set Name, may repeat a scope tag only with its value, must follow AWS's tag rules
// (rules.TagKey, rules.TagValue), and must fit beside Name and the scope tags within AWS's
// per-resource limit.
func (c *Checker) Tags(tags map[string]string, kind, name string, scope []Tag) {
	own := 1 // Name
	for _, t := range scope {
		if _, given := tags[t.Key]; !given {
			own++
		}
	}
	c.Rule("Tags", rules.TagCount(len(tags), own))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		v, field := tags[k], fmt.Sprintf("Tags[%q]", k)
		if k == TagName {
			c.Add(field, "is set by the %s (%s); leave it out", kind, name)
			continue
		}
		if !c.Rule(field, rules.TagKey(k)) || !c.Rule(field, rules.TagValue(v)) {
			continue
		}
		for _, t := range scope {
			switch {
			case t.Key != k || v == t.Value:
			case t.Field != "":
				c.Add(field, "must equal %s (got %q, %s %q)", t.Field, v, t.Field, t.Value)
			default:
				c.Add(field, "is set by the %s to %q; leave it out (got %q)", kind, t.Value, v)
			}
		}
	}
}

// Models checks a list of Ollama tags: at least one, each a tag such as llama3.1:8b (no path
// separators, spaces or control characters, the node agent's rule), no duplicates.
func (c *Checker) Models(field string, models []string) {
	if len(models) == 0 {
		c.Add(field, "must list at least one Ollama tag (got none)")
	}
	seen := map[string]bool{}
	for i, m := range models {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !c.Rule(f, rules.OllamaTag(m)):
		case seen[m]:
			c.Add(f, "lists %q twice", m)
		}
		seen[m] = true
	}
}
