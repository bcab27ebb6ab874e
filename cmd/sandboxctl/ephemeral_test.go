package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/config"
)

// ephemeralClock is the fixed "now" of these tests.
var ephemeralClock = time.Date(2026, 11, 28, 7, 30, 15, 987654321, time.FixedZone("PST", -8*3600))

// realStacks returns the checked-in stack files (stack name → contents), the templates CI copies.
func realStacks(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(projectRoot(t), "stacks", "Pulumi.*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no stack files in stacks/ (%v)", err)
	}
	stacks := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		stacks[strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "Pulumi."), ".yaml")] = string(data)
	}
	for _, s := range []string{"dev", "chemistry"} {
		if _, ok := stacks[s]; !ok {
			t.Fatalf("want the template stacks/Pulumi.%s.yaml", s)
		}
	}
	return stacks
}

// ephemeralProject is a project with the real stack files plus extra (name → contents); the
// dev template is given an encryptionsalt, as a stack file on a passphrase backend has.
func ephemeralProject(t *testing.T, extra map[string]string) string {
	t.Helper()
	stacks := realStacks(t)
	stacks["dev"] = "encryptionsalt: v1:c2FsdHNhbHQ=:v1:AAAAAAAAAAAAAAAA:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBB==\n" + stacks["dev"]
	for k, v := range extra {
		stacks[k] = v
	}
	return tempProject(t, stacks)
}

// ephemeralAt runs "sandboxctl ephemeral args..." in dir with the clock at ephemeralClock.
func ephemeralAt(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := ephemeral(env{stdout: &out, stderr: &errOut, cwd: dir}, "", args, func() time.Time { return ephemeralClock })
	return code, out.String(), errOut.String()
}

func readStack(t *testing.T, dir, stack string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(config.StackFile(stack))))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// stackDir lists the files in dir/stacks, temporary ones included.
func stackDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "stacks"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// loadSet loads every stack of dir and fails the test unless they are valid together.
func loadSet(t *testing.T, dir string) map[string]*config.Spec {
	t.Helper()
	stacks, err := config.Stacks(dir)
	if err != nil {
		t.Fatal(err)
	}
	specs := map[string]*config.Spec{}
	var list []*config.Spec
	for _, s := range stacks {
		spec, err := config.Load(dir, s)
		if err != nil {
			t.Fatalf("load %s: %v", s, err)
		}
		specs[s] = spec
		list = append(list, spec)
	}
	if ps := config.CheckSet(list); len(ps) > 0 {
		t.Fatalf("the stacks are not valid together: %v", ps)
	}
	return specs
}

// From the internal dev template without a zone: a valid copy with its own department, the first
// free ephemeral range, deletion protection off, the TTL tags, no hostname, the template's
// comments, no encryptionsalt, and a warning that CI cannot reach it.
func TestEphemeralFromInternalTemplate(t *testing.T) {
	dir := ephemeralProject(t, nil)
	code, out, errOut := ephemeralAt(t, dir, "dev", "--name", "eph-1", "--ttl", "90m")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	spec := loadSet(t, dir)["eph-1"]
	if spec == nil {
		t.Fatal("no stacks/Pulumi.eph-1.yaml")
	}
	dev, _ := config.Load(dir, "dev")
	if spec.Department != "eph-1" || spec.Network.CIDR != netip.MustParsePrefix("10.200.0.0/16") || spec.Gateway.DeletionProtection {
		t.Errorf("department %q, cidr %s, deletionProtection %v; want eph-1, 10.200.0.0/16, false",
			spec.Department, spec.Network.CIDR, spec.Gateway.DeletionProtection)
	}
	wantTags := map[string]string{"CostCenter": "IT-DEV", "Ephemeral": "true", "ExpiresAt": "2026-11-28T17:00:15Z"}
	if !reflect.DeepEqual(spec.Tags, wantTags) {
		t.Errorf("tags %v, want %v", spec.Tags, wantTags)
	}
	if !reflect.DeepEqual(spec.Access, dev.Access) || spec.Access.Hostname != "" {
		t.Errorf("access %+v, want the template's %+v", spec.Access, dev.Access)
	}
	if !reflect.DeepEqual(spec.Pools, dev.Pools) || spec.Region != dev.Region {
		t.Errorf("pools or region differ from the template's")
	}
	body := readStack(t, dir, "eph-1")
	for _, want := range []string{
		"# Ephemeral stack eph-1: a copy of stacks/Pulumi.dev.yaml\n# made by `sandboxctl ephemeral`",
		"Never commit it",
		"# Development: CPU only, a tiny model, one node of each kind",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("want %q in the copy:\n%s", want, body)
		}
	}
	if strings.Contains(body, "encryptionsalt") {
		t.Errorf("the template's encryptionsalt was copied:\n%s", body)
	}
	if !strings.Contains(readStack(t, dir, "dev"), "encryptionsalt") {
		t.Error("the test's template lost its encryptionsalt: the check above proves nothing")
	}
	// The template's key order is kept, the new key goes at the end of its section.
	last := -1
	for _, k := range []string{"aws:region", "llm-sandbox:department", "llm-sandbox:network", "llm-sandbox:access",
		"llm-sandbox:pools", "llm-sandbox:gateway", "    maxSize: 1\n    deletionProtection: false", "llm-sandbox:tags"} {
		i := strings.Index(body, k)
		if i <= last {
			t.Errorf("%q out of the template's order in:\n%s", k, body)
		}
		last = i
	}
	for _, want := range []string{"stack          eph-1", "cidr           10.200.0.0/16", "expires at     2026-11-28T17:00:15Z",
		"endpoint       the load balancer's DNS name"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in the summary:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "warning: eph-1 is internal") || !strings.Contains(errOut, "--hosted-zone-id") {
		t.Errorf("want the warning that a CI runner cannot reach it, got stderr:\n%s", errOut)
	}
}

// From the public chemistry template with a zone: public at NAME.DOMAIN in that zone, with a
// certificate the program requests, admitting exactly the --allow-cidr ranges; JSON summary.
func TestEphemeralPublicInHostedZone(t *testing.T) {
	dir := ephemeralProject(t, nil)
	code, out, errOut := ephemeralAt(t, dir, "chemistry", "--name", "eph-42", "--format", "json",
		"--hosted-zone-id", "Z0123456789ABCDEFGHIJ", "--domain", "ci.llm.example.edu.",
		"--allow-cidr", "203.0.113.7", "--allow-cidr", "198.51.100.0/24")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	spec := loadSet(t, dir)["eph-42"]
	want := config.Access{
		Mode:         config.AccessPublic,
		AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32"), netip.MustParsePrefix("198.51.100.0/24")},
		Hostname:     "eph-42.ci.llm.example.edu",
		HostedZoneID: "Z0123456789ABCDEFGHIJ",
	}
	if !reflect.DeepEqual(spec.Access, want) || !spec.Access.ManagedCertificate() {
		t.Errorf("access %+v, want %+v with a managed certificate", spec.Access, want)
	}
	if spec.Network.CIDR != netip.MustParsePrefix("10.200.0.0/16") || spec.Gateway.DeletionProtection ||
		spec.Tags["ExpiresAt"] != "2026-11-28T15:30:15Z" || spec.Tags["CostCenter"] != "CHEM-1234" {
		t.Errorf("cidr %s, deletionProtection %v, tags %v", spec.Network.CIDR, spec.Gateway.DeletionProtection, spec.Tags)
	}
	body := readStack(t, dir, "eph-42")
	if strings.Contains(body, "certificateArn") || !strings.Contains(body, "# Chemistry: public HTTPS endpoint") {
		t.Errorf("want no certificateArn and the template's comment:\n%s", body)
	}
	var r ephemeralResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	wantR := ephemeralResult{
		Stack: "eph-42", Template: "chemistry", File: "stacks/Pulumi.eph-42.yaml", CIDR: "10.200.0.0/16",
		Access: "public", Hostname: "eph-42.ci.llm.example.edu", HostedZoneID: "Z0123456789ABCDEFGHIJ",
		Certificate: "managed", Endpoint: "https://eph-42.ci.llm.example.edu",
		AllowedCIDRs: []string{"203.0.113.7/32", "198.51.100.0/24"}, ExpiresAt: "2026-11-28T15:30:15Z", Warnings: []string{},
	}
	if !reflect.DeepEqual(r, wantR) {
		t.Errorf("summary\n%+v\nwant\n%+v", r, wantR)
	}
	if errOut != "" {
		t.Errorf("want no warning, got:\n%s", errOut)
	}
}

// Without a zone a public template keeps its certificate and ranges, loses its hostname, and the
// warning says why TLS fails.
func TestEphemeralPublicTemplateWithoutZone(t *testing.T) {
	dir := ephemeralProject(t, nil)
	code, out, errOut := ephemeralAt(t, dir, "chemistry", "--name", "eph-7")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	specs := loadSet(t, dir)
	got, chem := specs["eph-7"].Access, specs["chemistry"].Access
	chem.Hostname = ""
	if !reflect.DeepEqual(got, chem) || got.CertificateARN == "" {
		t.Errorf("access %+v, want the template's without hostname %+v", got, chem)
	}
	if specs["eph-7"].Tags["ExpiresAt"] != "2026-11-28T15:30:15Z" {
		t.Errorf("ExpiresAt %q, want the clock's time with --ttl 0", specs["eph-7"].Tags["ExpiresAt"])
	}
	if !strings.Contains(errOut, "warning: eph-7 keeps chemistry's certificate") {
		t.Errorf("want the certificate warning, got:\n%s", errOut)
	}
}

// The range is the first 10.X.0.0/16 that overlaps (not only equals) no other stack's.
func TestEphemeralTakesTheNextFreeRange(t *testing.T) {
	dir := ephemeralProject(t, map[string]string{
		"a": stackFile("aaa", "10.200.128.0/20"),
		"b": stackFile("bbb", "10.201.0.0/22"),
	})
	if code, out, errOut := ephemeralAt(t, dir, "dev", "--name", "eph-1"); code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	if got := loadSet(t, dir)["eph-1"].Network.CIDR; got != netip.MustParsePrefix("10.202.0.0/16") {
		t.Errorf("cidr %s, want 10.202.0.0/16", got)
	}
	// A second copy avoids the first.
	if code, out, errOut := ephemeralAt(t, dir, "dev", "--name", "eph-2"); code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	if got := loadSet(t, dir)["eph-2"].Network.CIDR; got != netip.MustParsePrefix("10.203.0.0/16") {
		t.Errorf("second copy's cidr %s, want 10.203.0.0/16", got)
	}
	// --cidr chooses one.
	if code, out, errOut := ephemeralAt(t, dir, "dev", "--name", "eph-3", "--cidr", "10.250.0.0/20"); code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	if got := loadSet(t, dir)["eph-3"].Network.CIDR; got != netip.MustParsePrefix("10.250.0.0/20") {
		t.Errorf("--cidr: cidr %s, want 10.250.0.0/20", got)
	}
}

func TestFreeEphemeralRange(t *testing.T) {
	p := netip.MustParsePrefix
	cases := []struct {
		taken []netip.Prefix
		want  netip.Prefix
	}{
		{nil, p("10.200.0.0/16")},
		{[]netip.Prefix{p("10.200.255.0/24"), {}}, p("10.201.0.0/16")},
		{[]netip.Prefix{p("10.200.0.0/15"), p("10.202.0.0/16")}, p("10.203.0.0/16")},
		{[]netip.Prefix{p("10.192.0.0/10")}, netip.Prefix{}},
		{[]netip.Prefix{p("10.200.0.0/13"), p("10.208.0.0/12"), p("10.224.0.0/11")}, netip.Prefix{}},
	}
	for _, c := range cases {
		if got := freeEphemeralRange(c.taken); got != c.want {
			t.Errorf("taken %v: got %v, want %v", c.taken, got, c.want)
		}
	}
}

// ephemeral-cleanup.yml reads yq '.config["llm-sandbox:tags"].ExpiresAt': the copy has the tag
// there even when the template spells its keys without the namespace.
func TestEphemeralExpiresAtWhereCleanupReadsIt(t *testing.T) {
	unqualified := "# unqualified keys\nconfig:\n  aws:region: ca-central-1\n  department: short\n" +
		"  network:\n    cidr: 10.60.0.0/16\n  access:\n    plainHttp: true\n  pools:\n    gpu:\n      models: [llama3.1:8b]\n  tags:\n    Owner: it\n"
	dir := ephemeralProject(t, map[string]string{"short": unqualified})
	code, out, errOut := ephemeralAt(t, dir, "short", "--name", "eph-9", "--ttl", "48h")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	var doc struct {
		Config map[string]yaml.Node `yaml:"config"`
	}
	if err := yaml.Unmarshal([]byte(readStack(t, dir, "eph-9")), &doc); err != nil {
		t.Fatal(err)
	}
	tags := doc.Config["llm-sandbox:tags"]
	var m map[string]string
	if err := tags.Decode(&m); err != nil || m["ExpiresAt"] != "2026-11-30T15:30:15Z" || m["Owner"] != "it" || m["Ephemeral"] != "true" {
		t.Errorf(`.config["llm-sandbox:tags"] = %v (%v); want Owner, Ephemeral "true" and ExpiresAt 2026-11-30T15:30:15Z`, m, err)
	}
	if _, ok := doc.Config["tags"]; ok {
		t.Error("the unqualified tags key is still there next to the qualified one")
	}
	if got := loadSet(t, dir)["eph-9"]; got.Department != "eph-9" || got.Gateway.DeletionProtection {
		t.Errorf("department %q, deletionProtection %v", got.Department, got.Gateway.DeletionProtection)
	}
}

// An existing file is kept unless --force, and --force replaces only an ephemeral copy.
func TestEphemeralRefusesToOverwrite(t *testing.T) {
	dir := ephemeralProject(t, nil)
	if code, out, errOut := ephemeralAt(t, dir, "dev", "--name", "eph-1"); code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	first := readStack(t, dir, "eph-1")
	code, _, errOut := ephemeralAt(t, dir, "dev", "--name", "eph-1", "--ttl", "1h")
	if code != exitUsage || !strings.Contains(errOut, "stacks/Pulumi.eph-1.yaml already exists") || !strings.Contains(errOut, "--force") {
		t.Errorf("second run: exit %d, stderr:\n%s", code, errOut)
	}
	if readStack(t, dir, "eph-1") != first {
		t.Error("the refused run changed the file")
	}
	// --force replaces the copy, and its own old range does not push the new one further.
	code, out, errOut := ephemeralAt(t, dir, "dev", "--name", "eph-1", "--ttl", "1h", "--force")
	if code != exitOK {
		t.Fatalf("--force: exit %d:\n%s%s", code, out, errOut)
	}
	spec := loadSet(t, dir)["eph-1"]
	if spec.Tags["ExpiresAt"] != "2026-11-28T16:30:15Z" || spec.Network.CIDR != netip.MustParsePrefix("10.200.0.0/16") {
		t.Errorf("after --force: ExpiresAt %q, cidr %s; want 2026-11-28T16:30:15Z, 10.200.0.0/16", spec.Tags["ExpiresAt"], spec.Network.CIDR)
	}
	// A department's own file is never replaced.
	physics := readStack(t, dir, "physics")
	code, _, errOut = ephemeralAt(t, dir, "dev", "--name", "physics", "--force")
	if code != exitUsage || !strings.Contains(errOut, "stacks/Pulumi.physics.yaml is not an ephemeral copy") {
		t.Errorf("--force over physics: exit %d, stderr:\n%s", code, errOut)
	}
	if readStack(t, dir, "physics") != physics {
		t.Error("--force replaced a department's stack file")
	}
}

// Bad flags are usage errors naming the flag, and write nothing.
func TestEphemeralUsageErrors(t *testing.T) {
	dir := ephemeralProject(t, nil)
	before := stackDir(t, dir)
	zone := []string{"--hosted-zone-id", "Z0123456789ABC"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--name", "eph-1"}, "want exactly one TEMPLATE (got 0)"},
		{[]string{"dev"}, "--name is required"},
		{[]string{"dev", "--name", "dev"}, "--name must differ from TEMPLATE"},
		{[]string{"nosuch", "--name", "eph-1"}, `unknown stack "nosuch": no stacks/Pulumi.nosuch.yaml`},
		{[]string{"dev", "--name", "Eph_1"}, `--name must be a lowercase DNS label of 2 to 32 letters, digits and hyphens, starting with a letter (got "Eph_1")`},
		{[]string{"dev", "--name", "../eph"}, `--name must be a lowercase DNS label`},
		{[]string{"dev", "--name", "eph-1", "--format", "yaml"}, "--format must be text or json"},
		{[]string{"dev", "--name", "eph-1", "--ttl", "-1h"}, "--ttl must be 0 or more (got -1h0m0s)"},
		{[]string{"dev", "--name", "eph-1", "--ttl", "3"}, `invalid value "3" for flag -ttl`},
		{append([]string{"dev", "--name", "eph-1", "--allow-cidr", "203.0.113.7"}, zone...), "--hosted-zone-id needs --domain"},
		{[]string{"dev", "--name", "eph-1", "--domain", "ci.example.edu"}, "--domain needs --hosted-zone-id"},
		{append([]string{"dev", "--name", "eph-1", "--domain", "ci.example.edu"}, zone...), "--hosted-zone-id needs at least one --allow-cidr"},
		{[]string{"dev", "--name", "eph-1", "--allow-cidr", "203.0.113.7"}, "--allow-cidr needs --hosted-zone-id and --domain"},
		{[]string{"dev", "--name", "eph-1", "--allow-cidr", "203.0.113.300"}, `invalid value "203.0.113.300" for flag -allow-cidr: must be an IPv4 CIDR`},
		{[]string{"dev", "--name", "eph-1", "--allow-cidr", "2001:db8::1"}, `invalid value "2001:db8::1" for flag -allow-cidr: must be an IPv4 CIDR`},
		{[]string{"dev", "--name", "eph-1", "--allow-cidr", "203.0.113.7/24"}, `for flag -allow-cidr: has host bits set (got 203.0.113.7/24, did you mean 203.0.113.0/24?)`},
		{[]string{"dev", "--name", "eph-1", "--allow-cidr", "0.0.0.0/0"}, `for flag -allow-cidr: admits the whole internet`},
		{[]string{"dev", "--name", "eph-1", "--allow-cidr", "0.0.0.0/1", "--allow-cidr", "128.0.0.0/1"}, `for flag -allow-cidr: `},
		{[]string{"dev", "--name", "eph-1", "--cidr", "10.200.0.0"}, `--cidr must be an IPv4 CIDR such as 10.20.0.0/16 (got "10.200.0.0")`},
		{[]string{"dev", "--name", "eph-1", "--cidr", "10.200.1.0/16"}, `--cidr has host bits set (got 10.200.1.0/16, did you mean 10.200.0.0/16?)`},
	}
	for _, c := range cases {
		code, out, errOut := ephemeralAt(t, dir, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, want %d and %q in stderr:\n%s%s", c.args, code, exitUsage, c.want, out, errOut)
		}
		if out != "" {
			t.Errorf("%v: wrote to stdout:\n%s", c.args, out)
		}
	}
	if after := stackDir(t, dir); !reflect.DeepEqual(after, before) {
		t.Errorf("usage errors changed stacks/: %v, was %v", after, before)
	}
}

// A copy that fails validation, alone or against another file, is removed again: exit 1, the
// problems printed, nothing left in stacks/.
func TestEphemeralRemovesAnInvalidCopy(t *testing.T) {
	zoneFlags := []string{"--hosted-zone-id", "Z0123456789ABC", "--allow-cidr", "203.0.113.7"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		// Whichever file sorts first, the overlap is reported on the copy, naming the other.
		{"overlaps an earlier file", []string{"dev", "--name", "eph-1", "--cidr", "10.150.0.0/16"},
			"stacks/Pulumi.eph-1.yaml: network.cidr: overlaps 10.150.0.0/20 of stacks/Pulumi.a.yaml (got 10.150.0.0/16)"},
		{"overlaps a later file", []string{"dev", "--name", "eph-1", "--cidr", "10.160.0.0/16"},
			"stacks/Pulumi.eph-1.yaml: network.cidr: overlaps 10.160.0.0/20 of stacks/Pulumi.z.yaml (got 10.160.0.0/16)"},
		{"not a private range", []string{"dev", "--name", "eph-1", "--cidr", "11.0.0.0/16"},
			"stacks/Pulumi.eph-1.yaml: network.cidr: must be in a private range"},
		{"bad hostname", append([]string{"chemistry", "--name", "eph-1", "--domain", "ci_example"}, zoneFlags...),
			`stacks/Pulumi.eph-1.yaml: access.hostname: must be a DNS name such as llm.chem.example.edu (got "eph-1.ci_example")`},
		{"bad zone", []string{"chemistry", "--name", "eph-1", "--domain", "ci.example.edu", "--hosted-zone-id", "/hostedzone/Z1", "--allow-cidr", "203.0.113.7"},
			`stacks/Pulumi.eph-1.yaml: access.hostedZoneId: must be the bare zone id`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := ephemeralProject(t, map[string]string{
				"a": stackFile("aaa", "10.150.0.0/20"),
				"z": stackFile("zzz", "10.160.0.0/20"),
			})
			before := stackDir(t, dir)
			code, out, errOut := ephemeralAt(t, dir, c.args...)
			if code != exitInvalid || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "stacks/Pulumi.eph-1.yaml removed") {
				t.Errorf("exit %d, want %d and %q in stderr:\n%s%s", code, exitInvalid, c.want, out, errOut)
			}
			if after := stackDir(t, dir); !reflect.DeepEqual(after, before) {
				t.Errorf("stacks/ is %v, was %v: the invalid copy (or a temporary file) is left", after, before)
			}
		})
	}
}

// A public template whose certificate comes from its own zone cannot be copied without a zone:
// the copy would have no certificate. With a zone it gets its own name and certificate.
func TestEphemeralTemplateWithItsOwnZone(t *testing.T) {
	zoned := strings.Replace(stackFile("zoned", "10.70.0.0/16"), "  llm-sandbox:access:\n    plainHttp: true\n", "  llm-sandbox:access:\n    mode: public\n"+
		"    # the department's zone\n    hostname: llm.zoned.example.edu\n    hostedZoneId: Z0DEPARTMENT\n"+
		"    allowedCidrs: [142.103.0.0/16]\n", 1)
	dir := ephemeralProject(t, map[string]string{"zoned": zoned})
	if _, err := config.Load(dir, "zoned"); err != nil {
		t.Fatalf("the test's template is invalid: %v", err)
	}
	before := stackDir(t, dir)
	code, out, errOut := ephemeralAt(t, dir, "zoned", "--name", "eph-1")
	if code != exitUsage || !strings.Contains(errOut, "stacks/Pulumi.zoned.yaml is public with a certificate from its hosted zone") {
		t.Errorf("exit %d, want %d and the zone message:\n%s%s", code, exitUsage, out, errOut)
	}
	if after := stackDir(t, dir); !reflect.DeepEqual(after, before) {
		t.Errorf("stacks/ is %v, was %v", after, before)
	}
	code, out, errOut = ephemeralAt(t, dir, "zoned", "--name", "eph-1", "--hosted-zone-id", "Z0CI",
		"--domain", "ci.example.edu", "--allow-cidr", "203.0.113.7")
	if code != exitOK {
		t.Fatalf("with a zone: exit %d:\n%s%s", code, out, errOut)
	}
	acc := loadSet(t, dir)["eph-1"].Access
	if acc.Hostname != "eph-1.ci.example.edu" || acc.HostedZoneID != "Z0CI" || !acc.ManagedCertificate() ||
		len(acc.AllowedCIDRs) != 1 || acc.AllowedCIDRs[0] != netip.MustParsePrefix("203.0.113.7/32") {
		t.Errorf("access %+v", acc)
	}
	if body := readStack(t, dir, "eph-1"); strings.Contains(body, "the department's zone") {
		t.Errorf("the template's comment on its own hostname is kept on the copy's:\n%s", body)
	}
}

func TestEphemeralHelp(t *testing.T) {
	code, out, errOut := sandboxctl(t, projectRoot(t), "ephemeral", "--help")
	for _, want := range []string{
		"Usage: sandboxctl [--project DIR] ephemeral TEMPLATE --name NAME",
		"-hosted-zone-id ZONE", "-allow-cidr CIDR", "-ttl D", "ephemeral-cleanup.yml reads",
		"Exit 0 written, 1 the copy is invalid (nothing left behind), 2 usage error.",
	} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("ephemeral --help: exit %d, want %q in:\n%s%s", code, want, out, errOut)
		}
	}
	code, out, _ = sandboxctl(t, projectRoot(t), "--help")
	if code != exitOK || !strings.Contains(out, "\n  ephemeral TEMPLATE --name NAME\n") {
		t.Errorf("sandboxctl --help does not list ephemeral:\n%s", out)
	}
	// Through run(), with the real clock: the command is registered and writes its file.
	dir := ephemeralProject(t, nil)
	start := time.Now().UTC().Truncate(time.Second)
	code, out, errOut = sandboxctl(t, dir, "ephemeral", "dev", "--name", "eph-5", "--ttl", "2h")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, out, errOut)
	}
	got, err := time.Parse(time.RFC3339, loadSet(t, dir)["eph-5"].Tags["ExpiresAt"])
	if err != nil || got.Before(start.Add(2*time.Hour)) || got.After(time.Now().Add(2*time.Hour)) {
		t.Errorf("ExpiresAt %v (%v), want now + 2h", got, err)
	}
}
