// Package launch holds what every autoscaling group of llm-sandbox nodes shares, whichever
// component owns it (the model pools' Ollama nodes, the gateway's LiteLLM nodes): the AMI
// resolved from a public SSM parameter to a concrete id, the hardened launch template, the node
// role (trust policy, Session Manager, the tag-scoped CompleteLifecycleAction statement and the
// artifact reads), the group's launch lifecycle hook and instance refresh, target tracking, the
// tags and the argument checks (the Checker, which the keys and artifacts components use too).
// It is a helper package, not a component: it registers resources under the caller's component,
// with the caller's options, and the names it gives them are the caller's name plus a fixed role
// suffix.
package launch

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// Tag keys every group of nodes carries on its instances, volumes and the group itself.
const (
	TagName       = "Name"
	TagDepartment = "Department"
)

// Tag is one tag that identifies a group of nodes.
type Tag struct {
	// Key and Value are the tag.
	Key, Value string
	// Field is the component argument the value comes from (e.g. "Department"), named in
	// messages; "" for a value the component fixes itself.
	Field string
}

// Identity names and scopes one group of nodes. The Scope tags propagate to the instances, and
// the node role may complete lifecycle actions only on groups that carry all of them, so a
// pool's nodes cannot act on another pool's (or the gateway's) group.
type Identity struct {
	// Kind is what owns the group in messages: "model pool", "gateway".
	Kind string
	// Name is the Name tag of the instances, their volumes and the group.
	Name string
	// Scope are the identifying tags, Department first.
	Scope []Tag
}

// InstanceTags are the tags of every instance and volume: extra, then Name and the Scope tags
// (which win).
func (id Identity) InstanceTags(extra map[string]string) pulumi.StringMap {
	tags := pulumi.StringMap{}
	for k, v := range extra {
		tags[k] = pulumi.String(v)
	}
	tags[TagName] = pulumi.String(id.Name)
	for _, t := range id.Scope {
		tags[t.Key] = pulumi.String(t.Value)
	}
	return tags
}

// owns reports whether key is a tag the identity sets itself.
func (id Identity) owns(key string) bool {
	if key == TagName {
		return true
	}
	for _, t := range id.Scope {
		if t.Key == key {
			return true
		}
	}
	return false
}

// NameTag is the Name tag the console shows for a child.
func NameTag(name string) pulumi.StringMap {
	return pulumi.StringMap{TagName: pulumi.String(name)}
}

// SortedKeys returns a map's keys in order, so that per-key resources and lists are built the
// same way every run.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
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
	for _, field := range SortedKeys(inputs) {
		if inputs[field] {
			c.Add(field, "required (got nil)")
		}
	}
}

// Tags checks the extra tags of a group: they may not set Name, may repeat a Scope tag only
// with its value, and may not use the aws: prefix, which AWS reserves.
func (c *Checker) Tags(tags map[string]string, id Identity) {
	for _, k := range SortedKeys(tags) {
		v, field := tags[k], fmt.Sprintf("Tags[%q]", k)
		if k == TagName {
			c.Add(field, "is set by the %s (%s); leave it out", id.Kind, id.Name)
			continue
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			c.Add(field, "the aws: prefix is reserved by AWS")
			continue
		}
		for _, t := range id.Scope {
			switch {
			case t.Key != k || v == t.Value:
			case t.Field != "":
				c.Add(field, "must equal %s (got %q, %s %q)", t.Field, v, t.Field, t.Value)
			default:
				c.Add(field, "is set by the %s to %q; leave it out (got %q)", id.Kind, t.Value, v)
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
