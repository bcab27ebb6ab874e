package program

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/sandbox"
	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/policy"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// Plan is what a stack would create, rendered offline.
type Plan struct {
	// Stack is the stack name.
	Stack string `json:"stack"`
	// Department and Region are the Spec's.
	Department string `json:"department"`
	Region     string `json:"region"`
	// Resources are every resource the program registers, parents before children.
	Resources []PlannedResource `json:"resources"`
	// Warnings are what `up` would refuse although the plan renders: an Ollama release nodes
	// would not install (versions.CheckOllama).
	Warnings []string `json:"warnings,omitempty"`

	spec *config.Spec
}

// Check runs every policy rule over the plan. An unpinned Ollama release, which the plan
// renders with a warning, fails the pinned-ollama rule.
func (p *Plan) Check() []policy.Finding {
	pp := &policy.Plan{Spec: p.spec}
	for _, r := range p.Resources {
		pp.Resources = append(pp.Resources, policy.Resource{Type: r.Type, Name: r.Name, ID: r.ID, ARN: r.ARN, Inputs: r.Inputs})
	}
	return policy.Check(pp)
}

// ByType returns the plan's resources of one Pulumi type token, in plan order.
func (p *Plan) ByType(typ string) []PlannedResource {
	var out []PlannedResource
	for _, r := range p.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// PlannedResource is one resource of a Plan.
type PlannedResource struct {
	// Type is the Pulumi type token, e.g. "aws:ec2/vpc:Vpc".
	Type string `json:"type"`
	// Name is the logical name.
	Name string `json:"name"`
	// Parent is the parent's logical name ("" for a child of the stack).
	Parent string `json:"parent"`
	// ID is the id the offline plan gives the resource (other inputs refer to it); "" for
	// components.
	ID string `json:"id,omitempty"`
	// ARN is the ARN the offline plan gives the resource, likewise.
	ARN string `json:"arn,omitempty"`
	// Inputs are the inputs as registered, with Pulumi property names; secrets read "[secret]".
	Inputs map[string]any `json:"inputs"`
}

// PlanStack runs the program body for a validated Spec under mocks: canned look-ups (AZ names,
// AMI ids, account id), no cloud calls, no credentials. projectDir is where the node agent is
// built from, as `pulumi up` would.
// Unlike Run, it renders a stack whose Ollama release is not pinned, and says so in Warnings.
func PlanStack(spec *config.Spec, projectDir string) (*Plan, error) {
	return planStack(spec, projectDir, versions.Ollama)
}

// planStack is PlanStack with the Ollama release to check passed in.
func planStack(spec *config.Spec, projectDir string, ollama versions.Release) (*Plan, error) {
	m := mockaws.New(spec.Region)
	// The release is rendered as it is, pinned or not: the plan shows what `up` would refuse,
	// and the pinned-ollama rule of `check` fails it.
	args := &sandbox.SandboxArgs{OllamaRelease: &ollama, RenderUnpinnedOllama: true}
	err := m.Run(Project, spec.Stack, nil, func(ctx *pulumi.Context) error { return build(ctx, spec, projectDir, args) })
	if err != nil {
		return nil, fmt.Errorf("plan stack %s: %w", spec.Stack, err)
	}
	plan := &Plan{Stack: spec.Stack, Department: spec.Department, Region: spec.Region, spec: spec}
	if p := versions.CheckOllama(ollama); p != "" {
		plan.Warnings = append(plan.Warnings, "preview and up will refuse this stack: "+p)
	}
	for _, r := range m.Resources() {
		plan.Resources = append(plan.Resources, PlannedResource{
			Type: r.Type, Name: r.Name, Parent: m.NameOf(r.Parent), ID: r.ID, ARN: r.ARN, Inputs: mockaws.Plain(r.Inputs),
		})
	}
	sortTree(plan.Resources)
	return plan, nil
}

// sortTree orders resources depth-first, siblings by name, so a plan reads the same every run
// whatever order the SDK registered them in.
func sortTree(rs []PlannedResource) {
	parent := map[string]string{}
	for _, r := range rs {
		parent[r.Name] = r.Parent
	}
	path := func(name string) string {
		var parts []string
		for n, seen := name, 0; n != "" && seen <= len(rs); n, seen = parent[n], seen+1 {
			parts = append([]string{n}, parts...)
		}
		return strings.Join(parts, "\x00")
	}
	sort.SliceStable(rs, func(i, j int) bool {
		pi, pj := path(rs[i].Name), path(rs[j].Name)
		if pi != pj {
			return pi < pj
		}
		return rs[i].Type < rs[j].Type // leaves may share a name across types
	})
}

// WriteJSON writes the plan as indented JSON.
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// WriteText writes the resource tree by parent, then a count per type.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for stack %s (department %s, %s): %d resources, rendered offline\n\n",
		p.Stack, p.Department, p.Region, len(p.Resources))
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "warning: %s\n\n", w)
	}
	depth := map[string]int{}
	for _, r := range p.Resources {
		d := 0
		if r.Parent != "" {
			d = depth[r.Parent] + 1
		}
		depth[r.Name] = d
		fmt.Fprintf(&b, "%s%s  %s\n", strings.Repeat("  ", d), r.Name, r.Type)
	}
	counts := map[string]int{}
	for _, r := range p.Resources {
		counts[r.Type]++
	}
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	sort.Strings(types)
	b.WriteString("\nResources by type:\n")
	for _, t := range types {
		fmt.Fprintf(&b, "  %4d  %s\n", counts[t], t)
	}
	if p.spec != nil {
		q := p.spec.QuotaNeeds()
		b.WriteString("\nvCPU quotas this stack needs (every group at maxSize plus one node for instance refreshes):\n")
		fmt.Fprintf(&b, "  %4d  L-DB2E81BA  Running On-Demand G and VT instances\n", q.OnDemandG)
		fmt.Fprintf(&b, "  %4d  L-3819A6DF  All G and VT Spot Instance Requests\n", q.SpotG)
		fmt.Fprintf(&b, "  %4d  L-1216C47A  Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances\n", q.OnDemandStandard)
		fmt.Fprintf(&b, "  %4d  L-34B43A08  All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests\n", q.SpotStandard)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
