package catalog

// Tag keys llm-sandbox sets itself. The stack file may not set any of them: the components
// would refuse the value or overwrite it.
const (
	// TagDepartment, TagManagedBy and TagStack are on every taggable resource of a department
	// (the provider's default tags).
	TagDepartment = "Department"
	TagManagedBy  = "ManagedBy"
	TagStack      = "Stack"
	// TagName is the console name of what a component creates.
	TagName = "Name"
	// TagPool names a model pool on its group, instances and volumes.
	TagPool = "Pool"
	// TagTier marks the gateway's group, instances and volumes.
	TagTier = "llm-sandbox:tier"
)

// ProjectTagKeys returns every tag key llm-sandbox sets itself.
func ProjectTagKeys() []string {
	return []string{TagDepartment, TagManagedBy, TagStack, TagName, TagPool, TagTier}
}

// ProjectTagsPerResource is the most project tags one resource carries: a node and its volumes
// have the three default tags, Name, and Pool or the tier tag. The stack's own tags share the
// per-resource tag limit with them.
const ProjectTagsPerResource = 5
