// Package nodegroup holds what every autoscaling group of llm-sandbox nodes shares, whichever
// component owns it (the model pools' Ollama nodes, the gateway's LiteLLM nodes): the AMI
// resolved from a public SSM parameter to a concrete id, the hardened launch template, the node
// role (trust policy, Session Manager, the tag-scoped CompleteLifecycleAction statement and the
// artifact reads), the group's launch lifecycle hook and instance refresh, target tracking and
// the tags. It is a helper package, not a component: it registers resources under the caller's component,
// with the caller's options, and the names it gives them are the caller's name plus a fixed role
// suffix.
package nodegroup

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// Tag keys every group of nodes carries on its instances, volumes and the group itself.
const (
	TagName       = argcheck.TagName
	TagDepartment = catalog.TagDepartment
)

// Identity names and scopes one group of nodes. The Scope tags propagate to the instances, and
// the node role may complete lifecycle actions only on groups that carry all of them, so a
// pool's nodes cannot act on another pool's (or the gateway's) group.
type Identity struct {
	// Kind is what owns the group in messages: "model pool", "gateway".
	Kind string
	// Name is the Name tag of the instances, their volumes and the group.
	Name string
	// Scope are the identifying tags, Department first.
	Scope []argcheck.Tag
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
