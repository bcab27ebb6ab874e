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
	"github.com/llm-sandbox/llm-sandbox/internal/endpoints"
	"github.com/llm-sandbox/llm-sandbox/internal/mirror"
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
	// Endpoints are the VPC endpoints the stack's network creates, and why each is there.
	Endpoints []PlannedEndpoint `json:"endpoints"`
	// Mirror is what the deploy puts into the artifacts bucket for the nodes
	// (artifacts.mirror): the objects known before anything is fetched (the Ollama release,
	// the LiteLLM wheelhouse, each model's manifest); the blobs each manifest names follow
	// it. Empty when the nodes fetch from the internet.
	Mirror []PlannedArtifact `json:"mirror,omitempty"`

	spec *config.Spec
}

// PlannedEndpoint is one VPC endpoint of a Plan.
type PlannedEndpoint struct {
	// Service is the short service name, as in com.amazonaws.<region>.<service>.
	Service string `json:"service"`
	// Kind is Gateway or Interface.
	Kind string `json:"kind"`
	// Why says who calls it and for what.
	Why string `json:"why"`
}

// PlannedArtifact is one object of the stack's mirror.
type PlannedArtifact struct {
	// Key is the object's key in the artifacts bucket.
	Key string `json:"key"`
	// SHA256 is its pinned lowercase hex SHA-256.
	SHA256 string `json:"sha256"`
	// Size is its size in bytes, where the pin records it (0 otherwise).
	Size int64 `json:"size,omitempty"`
	// What names it, e.g. "model llama3.1:8b manifest".
	What string `json:"what"`
	// Source is where the deploying machine fetches it from ("" for the wheelhouse, which
	// pip builds from the package index).
	Source string `json:"source,omitempty"`
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
	return PlanWith(spec, projectDir, &sandbox.SandboxArgs{OllamaRelease: &ollama})
}

// PlanWith is PlanStack with the sandbox's arguments passed in: the Ollama release, the model
// pins and the wheelhouse a stack renders with, where they are not the repository's pins (the
// VM boot test renders a stack with the artifacts it serves itself). It sets the rest: the
// agent, built from projectDir. Nothing is uploaded.
func PlanWith(spec *config.Spec, projectDir string, args *sandbox.SandboxArgs) (*Plan, error) {
	m := mockaws.New(spec.Region)
	// The release is rendered as it is, pinned or not: the plan shows what `up` would refuse,
	// and the pinned-ollama rule of `check` fails it.
	args.RenderUnpinnedOllama, args.UploadMirror = true, nil
	ollama := *args.OllamaRelease
	var set *mirror.Set
	err := m.Run(Project, spec.Stack, nil, func(ctx *pulumi.Context) error {
		sb, err := build(ctx, spec, projectDir, args)
		if sb != nil {
			set = sb.Mirror
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("plan stack %s: %w", spec.Stack, err)
	}
	plan := &Plan{Stack: spec.Stack, Department: spec.Department, Region: spec.Region, spec: spec}
	for _, e := range endpoints.For(spec.Network.NAT == config.NATNone) {
		plan.Endpoints = append(plan.Endpoints, PlannedEndpoint{Service: e.Service, Kind: string(e.Kind), Why: e.Why})
	}
	if set != nil {
		for _, o := range set.Objects() {
			plan.Mirror = append(plan.Mirror, PlannedArtifact{Key: o.Key, SHA256: o.SHA256, Size: o.Size, What: o.What, Source: o.Source})
		}
	}
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
	p.writeNeeds(&b)
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

// writeNeeds writes what the stack's nodes need besides its resources: the VPC endpoints, and
// the mirror's objects when it has one.
func (p *Plan) writeNeeds(b *strings.Builder) {
	b.WriteString("\nVPC endpoints the nodes reach AWS through:\n")
	for _, e := range p.Endpoints {
		fmt.Fprintf(b, "  %-14s %-9s  %s\n", e.Service, e.Kind, e.Why)
	}
	if len(p.Mirror) == 0 {
		b.WriteString("\nMirror: none (artifacts.mirror false): nodes download the Ollama release from GitHub, LiteLLM from PyPI and the models from the Ollama registry through the NAT gateway.\n")
		return
	}
	b.WriteString("\nMirror (artifacts.mirror): `up` puts these into the artifacts bucket before any node boots, fetching on the deploying machine only what the bucket lacks; nodes fetch only from the bucket:\n")
	for _, a := range p.Mirror {
		size := ""
		if a.Size > 0 {
			size = fmt.Sprintf(", %d bytes", a.Size)
		}
		fmt.Fprintf(b, "  %s\n    %s (sha256 %s%s)\n", a.What, a.Key, a.SHA256, size)
	}
	b.WriteString("  and every blob each model manifest names, under " + mirror.ModelBlobPrefix + "sha256-<digest>\n")
}
