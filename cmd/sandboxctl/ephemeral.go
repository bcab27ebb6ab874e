package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/atomicfile"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// The ranges an ephemeral copy takes its VPC from unless --cidr names one: 10.X.0.0/16 for X in
// ephemeralFirstOctet..ephemeralLastOctet (docs/ci.md leaves 10.200.0.0/13 and above to them).
const (
	ephemeralFirstOctet = 200
	ephemeralLastOctet  = 254
)

// The tags an ephemeral copy carries; ephemeral-cleanup.yml reads ExpiresAt from the stack file
// (.config["llm-sandbox:tags"].ExpiresAt), so these names and that key are an interface.
const (
	ephemeralTag = "Ephemeral"
	expiresAtTag = "ExpiresAt"
)

// ephemeralResult is what ephemeral prints: the copy it wrote, as --format json shows it.
type ephemeralResult struct {
	Stack        string   `json:"stack"`
	Template     string   `json:"template"`
	File         string   `json:"file"`
	CIDR         string   `json:"cidr"`
	Access       string   `json:"access"`
	Hostname     string   `json:"hostname"`
	HostedZoneID string   `json:"hostedZoneId"`
	Certificate  string   `json:"certificate"`
	Endpoint     string   `json:"endpoint"`
	AllowedCIDRs []string `json:"allowedCidrs"`
	ExpiresAt    string   `json:"expiresAt"`
	Warnings     []string `json:"warnings"`
}

// cidrList is a repeatable flag of IPv4 ranges; a bare address is its /32.
type cidrList []netip.Prefix

func (c *cidrList) String() string {
	if c == nil {
		return ""
	}
	s := make([]string, len(*c))
	for i, p := range *c {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (c *cidrList) Set(v string) error {
	var p netip.Prefix
	if strings.Contains(v, "/") {
		pfx, problem := rules.IPv4CIDR(v)
		if problem != "" {
			return errors.New(problem)
		}
		p = pfx
	} else {
		addr, err := netip.ParseAddr(v)
		if err != nil || !addr.Is4() {
			return fmt.Errorf("must be an IPv4 CIDR such as 203.0.113.7/32 or an IPv4 address (got %q)", v)
		}
		p = netip.PrefixFrom(addr, 32)
	}
	if _, problem := rules.WideAllowList(append(slices.Clone(*c), p)); problem != "" {
		return fmt.Errorf("%s; an ephemeral copy admits named ranges only", problem)
	}
	*c = append(*c, p)
	return nil
}

func runEphemeral(e env, projectFlag string, args []string) int {
	return ephemeral(e, projectFlag, args, time.Now)
}

// ephemeral is the command with its clock passed in, so tests can fix ExpiresAt.
func ephemeral(e env, projectFlag string, args []string, now func() time.Time) int {
	return exit(e, "ephemeral", writeEphemeral(e, projectFlag, args, now))
}

// writeEphemeral parses the arguments, plans the copy, writes and validates it, and reports it.
func writeEphemeral(e env, projectFlag string, args []string, now func() time.Time) error {
	opts, err := parseEphemeral(e, args)
	if err != nil {
		return err
	}
	p, err := planEphemeral(e, projectFlag, opts, now)
	if err != nil {
		return err
	}
	spec, err := p.write()
	if err != nil {
		return err
	}
	return reportEphemeral(e, p, spec)
}

// ephemeralOptions are ephemeral's arguments, checked.
type ephemeralOptions struct {
	template, name string
	ttl            time.Duration
	cidr           netip.Prefix // the zero Prefix unless --cidr named one
	zone, domain   string
	allow          cidrList
	force          bool
	format         string
}

// parseEphemeral parses and checks the arguments; every mistake is a usage error.
func parseEphemeral(e env, args []string) (ephemeralOptions, error) {
	fs := flagSet(e, "ephemeral", "ephemeral TEMPLATE --name NAME [--ttl D] [--cidr CIDR]\n"+
		"         [--hosted-zone-id ZONE --domain DOMAIN --allow-cidr CIDR...] [--force] [--format text|json]",
		"Writes stacks/Pulumi.<NAME>.yaml, an ephemeral copy of stacks/Pulumi.<TEMPLATE>.yaml for a\n"+
			"CI run or a test (docs/ci.md), keeping the template's comments and key order. The copy:\n"+
			"  department          NAME\n"+
			"  network.cidr        --cidr, or the first 10.X.0.0/16 (X 200..254) that overlaps no\n"+
			"                      other stack file\n"+
			"  gateway             deletionProtection: false\n"+
			"  encryptionsalt      removed (a new stack gets its own)\n"+
			"  tags                Ephemeral: \"true\", ExpiresAt: now + --ttl (RFC 3339, UTC), which\n"+
			"                      ephemeral-cleanup.yml reads\n"+
			"  access              with --hosted-zone-id and --domain: public, hostname NAME.DOMAIN\n"+
			"                      in that Route 53 zone with a certificate the program requests,\n"+
			"                      allowedCidrs the --allow-cidr values, plainHttp removed. Without\n"+
			"                      them: hostname and hostedZoneId removed (they name the template's\n"+
			"                      endpoint), the rest\n"+
			"                      kept, so the endpoint is the load balancer's DNS name, which no TLS\n"+
			"                      client outside the VPC can use: verify and loadtest from a CI\n"+
			"                      runner need the zone flags, and so does a template whose own\n"+
			"                      certificate comes from its zone.\n"+
			"The file is then validated with every other stack file as validate does, and removed\n"+
			"again if it is invalid. An existing stacks/Pulumi.<NAME>.yaml is kept unless --force,\n"+
			"which replaces only an earlier ephemeral copy. text prints a summary; json prints\n"+
			`{"stack", "template", "file", "cidr", "access", "hostname", "hostedZoneId", "certificate",`+"\n"+
			` "endpoint", "allowedCidrs", "expiresAt", "warnings"}. Never commit the file.`+"\n"+
			"Exit 0 written, 1 the copy is invalid (nothing left behind), 2 usage error.")
	var o ephemeralOptions
	fs.StringVar(&o.name, "name", "", "the new stack and department `NAME` (required), e.g. eph-<run id>")
	fs.DurationVar(&o.ttl, "ttl", 0, "how long to keep the stack: ExpiresAt is now + `D`, a Go duration such as 4h; 0 (the default) means now")
	cidrFlag := fs.String("cidr", "", "the VPC `CIDR` (default: the first free 10.X.0.0/16, X 200..254)")
	fs.StringVar(&o.zone, "hosted-zone-id", "", "public Route 53 hosted `ZONE` id for the copy's hostname and certificate; needs --domain and --allow-cidr")
	fs.StringVar(&o.domain, "domain", "", "the zone's `DOMAIN`: the copy's hostname is NAME.DOMAIN; needs --hosted-zone-id")
	fs.Var(&o.allow, "allow-cidr", "an IPv4 `CIDR` (or address, /32) admitted to the public copy; repeatable, required with --hosted-zone-id")
	fs.BoolVar(&o.force, "force", false, "replace an existing ephemeral copy stacks/Pulumi.<NAME>.yaml")
	format := formatFlag(fs)
	positional, err := parseArgs(fs, args, format)
	if err != nil {
		return o, err
	}
	o.format = *format
	o.domain = strings.TrimSuffix(o.domain, ".")
	switch {
	case len(positional) != 1:
		return o, usagef("want exactly one TEMPLATE (got %d)", len(positional))
	case o.name == "":
		return o, usagef("--name is required (the new stack, e.g. eph-<run id>)")
	case o.name == positional[0]:
		return o, usagef("--name must differ from TEMPLATE (got %q for both)", o.name)
	case o.ttl < 0:
		return o, usagef("--ttl must be 0 or more (got %s)", o.ttl)
	case o.zone != "" && o.domain == "":
		return o, usagef("--hosted-zone-id needs --domain, the zone's domain (the hostname is %s.DOMAIN)", o.name)
	case o.zone == "" && o.domain != "":
		return o, usagef("--domain needs --hosted-zone-id, the Route 53 zone that holds %s", o.domain)
	case o.zone != "" && len(o.allow) == 0:
		return o, usagef("--hosted-zone-id needs at least one --allow-cidr (the ranges the public copy admits, e.g. the runner's address/32)")
	case o.zone == "" && len(o.allow) > 0:
		return o, usagef("--allow-cidr needs --hosted-zone-id and --domain (without them the template's access is kept)")
	}
	o.template = positional[0]
	if msg := config.DepartmentProblem(o.name); msg != "" {
		return o, usagef("--name %s", msg)
	}
	if *cidrFlag != "" {
		p, problem := rules.IPv4CIDR(*cidrFlag)
		if problem != "" {
			return o, usagef("--cidr %s", problem)
		}
		o.cidr = p
	}
	return o, nil
}

// ephemeralPlan is the copy to write: where, from what, and the warnings so far.
type ephemeralPlan struct {
	opts     ephemeralOptions
	stacks   stackArgs // the project and its stacks before the copy
	file     string    // the copy's stack file, as config names it
	path     string    // and on disk
	edit     ephemeralEdit
	warnings []string
	stderr   io.Writer
}

// warn records a warning for the report and prints it now.
func (p *ephemeralPlan) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.warnings = append(p.warnings, msg)
	fmt.Fprintf(p.stderr, "warning: %s\n", msg)
}

// planEphemeral checks the template and any existing copy against the project, and chooses the
// copy's range and expiry.
func planEphemeral(e env, projectFlag string, o ephemeralOptions, now func() time.Time) (*ephemeralPlan, error) {
	sa, err := findStacks(e, projectFlag, []string{o.template}, false)
	if err != nil {
		return nil, err
	}
	if o.zone == "" {
		// Such a template's certificate is one the program requests for its hostname in its zone;
		// the copy may use neither, so it would have no certificate at all.
		if t, err := config.Load(sa.project, o.template); err == nil && t.Access.Mode == config.AccessPublic && t.Access.ManagedCertificate() {
			return nil, usagef("%s is public with a certificate from its hosted zone, which a copy must not use: pass --hosted-zone-id, --domain and --allow-cidr for one of its own",
				config.StackFile(o.template))
		}
	}
	p := &ephemeralPlan{opts: o, stacks: sa, file: config.StackFile(o.name), stderr: e.stderr}
	p.path = filepath.Join(sa.project, filepath.FromSlash(p.file))
	if slices.Contains(sa.all, o.name) {
		if !o.force {
			return nil, usagef("%s already exists; pass --force to replace it (only an ephemeral copy is replaced)", p.file)
		}
		if !isEphemeralCopy(p.path) {
			return nil, usagef("%s is not an ephemeral copy (no tag %s: \"true\"); --force replaces only those", p.file, ephemeralTag)
		}
	}
	cidr := o.cidr
	if !cidr.IsValid() {
		taken, unreadable := takenRanges(sa.project, sa.all, o.name)
		for _, f := range unreadable {
			p.warn("%s does not load, so its network.cidr was not avoided", f)
		}
		if cidr = freeEphemeralRange(taken); !cidr.IsValid() {
			return nil, fmt.Errorf("every 10.X.0.0/16 for X %d..%d overlaps a stack file; pass --cidr",
				ephemeralFirstOctet, ephemeralLastOctet)
		}
	}
	p.edit = ephemeralEdit{
		stack: o.name, template: config.StackFile(o.template), cidr: cidr,
		expiresAt: now().Add(o.ttl).UTC().Truncate(time.Second).Format(time.RFC3339),
		zone:      o.zone, domain: o.domain, allow: o.allow,
	}
	return p, nil
}

// write writes the copy and validates it as validate would, against every other stack file,
// removing it again when it is invalid. It returns the copy's Spec.
func (p *ephemeralPlan) write() (*config.Spec, error) {
	data, err := os.ReadFile(filepath.Join(p.stacks.project, filepath.FromSlash(p.edit.template)))
	if err != nil {
		return nil, err
	}
	copyData, err := ephemeralCopy(data, p.edit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.edit.template, err)
	}
	if err := atomicfile.Write(p.path, copyData, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", p.file, err)
	}
	all := p.stacks.all
	if !slices.Contains(all, p.opts.name) {
		all = append(slices.Clone(all), p.opts.name)
		slices.Sort(all)
	}
	results, specs, valid := validateStacks(p.stacks.project, all, []string{p.opts.name})
	if valid {
		return specs[p.opts.name], nil
	}
	if err := os.Remove(p.path); err != nil {
		fmt.Fprintf(p.stderr, "sandboxctl ephemeral: remove the invalid %s: %v\n", p.file, err)
	}
	for _, pr := range results[0].Problems {
		fmt.Fprintf(p.stderr, "%s: %s: %s\n", pr.File, pr.Path, pr.Message)
	}
	return nil, fmt.Errorf("the copy of %s is invalid (everything but department, network.cidr, access, gateway.deletionProtection and tags comes from the template); %s removed",
		p.edit.template, p.file)
}

// reportEphemeral warns about a copy CI cannot reach and prints what was written.
func reportEphemeral(e env, p *ephemeralPlan, spec *config.Spec) error {
	o := p.opts
	r := ephemeralResult{
		Stack: o.name, Template: o.template, File: p.file, CIDR: spec.Network.CIDR.String(),
		Access: string(spec.Access.Mode), Hostname: spec.Access.Hostname, HostedZoneID: spec.Access.HostedZoneID,
		Certificate: spec.Access.CertificateARN, AllowedCIDRs: []string{}, ExpiresAt: spec.Tags[expiresAtTag],
	}
	if spec.Access.ManagedCertificate() {
		r.Certificate = "managed"
	}
	if spec.Access.Hostname != "" {
		r.Endpoint = "https://" + spec.Access.Hostname
	}
	for _, a := range spec.Access.AllowedCIDRs {
		r.AllowedCIDRs = append(r.AllowedCIDRs, a.String())
	}
	if o.zone == "" {
		if spec.Access.Mode == config.AccessPublic {
			p.warn("%s keeps %s's certificate, which does not cover the load balancer's DNS name that is now its endpoint, so TLS clients refuse it; it admits only %s's allowedCidrs. For verify and loadtest from a CI runner pass --hosted-zone-id, --domain and --allow-cidr",
				o.name, o.template, o.template)
		} else {
			p.warn("%s is internal: its endpoint is reachable only from inside its own new VPC, so verify and loadtest from a CI runner cannot reach it. For a public copy of its own pass --hosted-zone-id, --domain and --allow-cidr",
				o.name)
		}
	}
	r.Warnings = append([]string{}, p.warnings...)

	if o.format == "json" {
		out, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
		return nil
	}
	writeEphemeralText(e, r)
	return nil
}

func writeEphemeralText(e env, r ephemeralResult) {
	var b strings.Builder
	fmt.Fprintf(&b, "wrote %s, an ephemeral copy of %s (never commit it)\n", r.File, config.StackFile(r.Template))
	row := func(k, v string) { fmt.Fprintf(&b, "  %-14s %s\n", k, v) }
	row("stack", r.Stack)
	row("template", r.Template)
	row("cidr", r.CIDR)
	access := r.Access
	switch {
	case r.Certificate == "managed":
		access += fmt.Sprintf(", %s in zone %s, certificate requested by the program", r.Hostname, r.HostedZoneID)
	case r.Certificate != "":
		access += ", certificate " + r.Certificate
	}
	row("access", access)
	if r.Endpoint != "" {
		row("endpoint", r.Endpoint)
	} else {
		row("endpoint", "the load balancer's DNS name (stack output endpointUrl after up)")
	}
	if len(r.AllowedCIDRs) > 0 {
		row("allowed CIDRs", strings.Join(r.AllowedCIDRs, ", "))
	} else {
		row("allowed CIDRs", "none (internal: its VPC only)")
	}
	row("expires at", r.ExpiresAt)
	fmt.Fprint(e.stdout, b.String())
}

// isEphemeralCopy reports whether the stack file at path carries the tag Ephemeral: "true".
func isEphemeralCopy(path string) bool {
	values, err := config.ReadStackFile(path)
	if err != nil {
		return false
	}
	// ReadStackFile qualifies an unqualified "tags" key, as Pulumi reads it.
	var tags map[string]any
	return json.Unmarshal([]byte(values[config.Namespace+":tags"]), &tags) == nil && tags[ephemeralTag] == "true"
}

// takenRanges returns the VPC ranges of every stack but skip, as config parses them, and the
// files that do not load (whose range is unknown).
func takenRanges(project string, stacks []string, skip string) (taken []netip.Prefix, unreadable []string) {
	for _, s := range stacks {
		if s == skip {
			continue
		}
		spec, err := config.Load(project, s)
		if err != nil {
			unreadable = append(unreadable, config.StackFile(s))
			continue
		}
		taken = append(taken, spec.Network.CIDR)
	}
	return taken, unreadable
}

// freeEphemeralRange returns the first 10.X.0.0/16 of the ephemeral block that overlaps none of
// taken, or the zero Prefix when every one does.
func freeEphemeralRange(taken []netip.Prefix) netip.Prefix {
next:
	for x := ephemeralFirstOctet; x <= ephemeralLastOctet; x++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(x), 0, 0}), 16)
		for _, t := range taken {
			if t.IsValid() && t.Overlaps(p) {
				continue next
			}
		}
		return p
	}
	return netip.Prefix{}
}

// ephemeralEdit is what changes between a template and its ephemeral copy.
type ephemeralEdit struct {
	stack, template string
	cidr            netip.Prefix
	expiresAt       string
	// zone and domain, when set, make the copy public at stack.domain in that Route 53 zone,
	// admitting allow.
	zone, domain string
	allow        []netip.Prefix
}

// ephemeralCopy edits the template's YAML node tree into the copy, so that its comments and key
// order survive, and returns the copy's bytes.
func ephemeralCopy(template []byte, ed ephemeralEdit) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(template, &doc); err != nil {
		return nil, fmt.Errorf("not a valid stack file: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a stack file: want a mapping with a config: key")
	}
	root := doc.Content[0]
	deleteKey(root, "encryptionsalt")
	cfg := valueOf(root, "config")
	if cfg == nil || cfg.Kind != yaml.MappingNode {
		return nil, errors.New("not a stack file: want a mapping with a config: key")
	}

	setKey(cfg, qualify(cfg, "department"), scalar(ed.stack))

	network, err := section(cfg, "network")
	if err != nil {
		return nil, err
	}
	setKey(network, "cidr", scalar(ed.cidr.String()))

	gateway, err := section(cfg, "gateway")
	if err != nil {
		return nil, err
	}
	setKey(gateway, "deletionProtection", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"})

	if ed.zone != "" {
		access, err := section(cfg, "access")
		if err != nil {
			return nil, err
		}
		setKey(access, "mode", scalar(string(config.AccessPublic)))
		deleteKey(access, "certificateArn")
		// A public endpoint is HTTPS only: the template's plain-HTTP choice does not carry over.
		deleteKey(access, "plainHttp")
		cidrs := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
		for _, p := range ed.allow {
			cidrs.Content = append(cidrs.Content, scalar(p.String()))
		}
		setKey(access, "allowedCidrs", cidrs)
		setKey(access, "allowAnywhere", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"})
		setKey(access, "hostname", scalar(ed.stack+"."+ed.domain))
		setKey(access, "hostedZoneId", scalar(ed.zone))
		// The template's comments on these keys describe its own endpoint, not the copy's.
		clearComments(access, "mode", "allowedCidrs", "allowAnywhere", "hostname", "hostedZoneId")
	} else if access := valueOf(cfg, qualify(cfg, "access")); access != nil && access.Kind == yaml.MappingNode {
		// Both name the template's own endpoint: the copy must not take over its DNS name.
		deleteKey(access, "hostname")
		deleteKey(access, "hostedZoneId")
	}

	tags, err := section(cfg, "tags")
	if err != nil {
		return nil, err
	}
	quoted := func(s string) *yaml.Node {
		n := scalar(s)
		n.Style = yaml.DoubleQuotedStyle
		return n
	}
	setKey(tags, ephemeralTag, quoted("true"))
	setKey(tags, expiresAtTag, quoted(ed.expiresAt))

	header := fmt.Sprintf("# Ephemeral stack %s: a copy of %s\n"+
		"# made by `sandboxctl ephemeral` (docs/ci.md). Never commit it: it lives for one CI run\n"+
		"# or until tags.ExpiresAt, then it is destroyed.",
		ed.stack, ed.template)
	if doc.HeadComment != "" {
		header += "\n\n" + doc.HeadComment
	}
	doc.HeadComment = header

	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// qualify renames an unqualified project key of cfg to its qualified form and returns that form.
// A template may spell a key unqualified (Pulumi reads that as the project's); the copy always
// spells it "llm-sandbox:<name>", the form ephemeral-cleanup.yml reads.
func qualify(cfg *yaml.Node, name string) string {
	full := config.Namespace + ":" + name
	for i := 0; i+1 < len(cfg.Content); i += 2 {
		if cfg.Content[i].Value == name {
			cfg.Content[i].Value = full
		}
	}
	return full
}

// section returns the mapping of the project key name, made (or a null value replaced) when
// absent.
func section(cfg *yaml.Node, name string) (*yaml.Node, error) {
	full := qualify(cfg, name)
	v := valueOf(cfg, full)
	switch {
	case v == nil || (v.Kind == yaml.ScalarNode && v.Tag == "!!null"):
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setKey(cfg, full, m)
		return m, nil
	case v.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("config key %s: want a mapping of keys to values (got line %d)", full, v.Line)
	}
	return v, nil
}

// valueOf returns the value of key in mapping m, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setKey replaces the value of key in mapping m, keeping the old value's comments, or appends
// the key.
func setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			old := m.Content[i+1]
			v.LineComment, v.HeadComment, v.FootComment = old.LineComment, old.HeadComment, old.FootComment
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, scalar(key), v)
}

// clearComments removes the comments of the given keys of mapping m and of their values.
func clearComments(m *yaml.Node, keys ...string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if slices.Contains(keys, m.Content[i].Value) {
			for _, n := range m.Content[i : i+2] {
				n.HeadComment, n.LineComment, n.FootComment = "", "", ""
			}
		}
	}
}

// deleteKey removes key from mapping m, if there.
func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
