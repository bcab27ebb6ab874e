// Package mockaws is a Pulumi mock resource monitor that records every registration and answers
// the AWS look-ups the program makes with canned values, so that a program can be rendered with
// no cloud account and no credentials. The offline plan (`sandboxctl plan`) and the component
// tests both run on it.
package mockaws

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// DefaultAccountID is the account id the canned look-ups answer with when none is set.
const DefaultAccountID = "123456789012"

// Resource is one registration seen by the monitor.
type Resource struct {
	// Type is the resource's type token, e.g. "aws:ec2/vpc:Vpc".
	Type string
	// Name is the resource's logical name.
	Name string
	// URN is the resource's URN as the mock monitor builds it.
	URN string
	// Parent is the URN of the parent resource ("" for a child of the stack).
	Parent string
	// Custom is true for provider-managed resources and false for components.
	Custom bool
	// Inputs are the resource's inputs as registered, secrets still marked.
	Inputs resource.PropertyMap
	// IgnoreChanges are the properties the resource's ignoreChanges option names.
	IgnoreChanges []string
	// Provider is the provider reference ("<urn>::<id>") of a custom resource.
	Provider string
	// RetainOnDelete is true when the resource's retainOnDelete option is set.
	RetainOnDelete bool
	// AliasTypes are the type tokens the resource's aliases name (its former types).
	AliasTypes []string
	// ID is the id the monitor gave a custom resource ("" for components), which other
	// resources' inputs refer to.
	ID string
	// ARN is the ARN the monitor gave a custom resource, which other inputs refer to.
	ARN string
}

// Monitor implements pulumi.MockResourceMonitor. Create it with New; it is safe for the
// concurrent registrations the SDK makes.
type Monitor struct {
	// Region is the AWS region the canned look-ups answer for.
	Region string
	// AccountID is the account id in canned ARNs and caller identity.
	AccountID string

	mu        sync.Mutex
	resources []Resource
}

// New returns a monitor answering for region with the default account id.
func New(region string) *Monitor {
	return &Monitor{Region: region, AccountID: DefaultAccountID}
}

// Resources returns the registrations seen so far, in registration order. A resource parented to
// the stack has Parent "".
func (m *Monitor) Resources() []Resource {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Resource, 0, len(m.resources))
	for _, r := range m.resources {
		if isStack(r.Parent) {
			r.Parent = ""
		}
		out = append(out, r)
	}
	return out
}

// ByType returns the recorded resources of one type token.
func (m *Monitor) ByType(typ string) []Resource {
	var out []Resource
	for _, r := range m.Resources() {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// ByName returns the recorded resource with the logical name and type, and whether it exists.
func (m *Monitor) ByName(typ, name string) (Resource, bool) {
	for _, r := range m.Resources() {
		if r.Type == typ && r.Name == name {
			return r, true
		}
	}
	return Resource{}, false
}

// NameOf returns the logical name of the resource with the URN ("" when unknown).
func (m *Monitor) NameOf(urn string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.resources {
		if r.URN == urn {
			return r.Name
		}
	}
	return ""
}

// NewResource records the registration and returns a deterministic id and a state that echoes
// the inputs plus the identifiers AWS would compute (arn, id).
func (m *Monitor) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	parent, ignore, retain := "", []string(nil), false
	if args.RegisterRPC != nil {
		parent, ignore = args.RegisterRPC.GetParent(), args.RegisterRPC.GetIgnoreChanges()
		retain = args.RegisterRPC.GetRetainOnDelete()
	}
	var aliasTypes []string
	for _, a := range args.RegisterRPC.GetAliases() {
		if t := a.GetSpec().GetType(); t != "" {
			aliasTypes = append(aliasTypes, t)
		}
	}
	rec := Resource{
		Type:   args.TypeToken,
		Name:   args.Name,
		URN:    resourceURN(args, parent),
		Parent: parent,
		Custom: args.Custom,
		Inputs: args.Inputs,

		IgnoreChanges:  ignore,
		Provider:       args.Provider,
		RetainOnDelete: retain,
		AliasTypes:     aliasTypes,
	}
	if !args.Custom {
		m.record(rec)
		return "", args.Inputs, nil
	}
	id, state := m.customState(args)
	rec.ID = id
	if arn := state["arn"]; arn.IsString() {
		rec.ARN = arn.StringValue()
	}
	m.record(rec)
	return id, state, nil
}

func (m *Monitor) record(r Resource) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resources = append(m.resources, r)
}

// customState returns a custom resource's id and its state: the inputs plus what AWS would
// compute (arn, id, generated names).
func (m *Monitor) customState(args pulumi.MockResourceArgs) (string, resource.PropertyMap) {
	id := args.Name + "-id"
	state := args.Inputs.Copy()
	if _, ok := state["arn"]; !ok {
		state["arn"] = resource.NewStringProperty(m.arn(args.TypeToken, id))
	}
	// Resources whose AWS identifier is not the name get a plausible one, so that
	// look-ups of ids and ARNs in child inputs read naturally in a plan.
	switch args.TypeToken {
	case "aws:kms/key:Key":
		state["keyId"] = resource.NewStringProperty(id)
	case "aws:ec2/vpc:Vpc":
		state["defaultSecurityGroupId"] = resource.NewStringProperty(args.Name + "-default-sg-id")
		state["mainRouteTableId"] = resource.NewStringProperty(args.Name + "-main-rtb-id")
	case "aws:ec2/launchTemplate:LaunchTemplate":
		// The first version of a new template.
		state["latestVersion"] = resource.NewNumberProperty(1)
		state["defaultVersion"] = resource.NewNumberProperty(1)
	case "aws:lb/loadBalancer:LoadBalancer":
		// ELB derives the DNS name from the load balancer's name; an internal one's starts
		// with "internal-".
		dns := fmt.Sprintf("%s-%s.%s.elb.amazonaws.com", args.Name, CannedNameSuffix, m.Region)
		if v, ok := args.Inputs["internal"]; ok && v.IsBool() && v.BoolValue() {
			dns = "internal-" + dns
		}
		state["dnsName"] = resource.NewStringProperty(dns)
		state["zoneId"] = resource.NewStringProperty(CannedELBZoneID)
		// The ARN's last part, which CloudWatch metrics name the load balancer by.
		state["arnSuffix"] = resource.NewStringProperty(fmt.Sprintf("app/%s/%s", args.Name, cannedELBID(args.Name)))
	case "aws:lb/targetGroup:TargetGroup":
		state["arnSuffix"] = resource.NewStringProperty(fmt.Sprintf("targetgroup/%s/%s", args.Name, cannedELBID(args.Name)))
	case "aws:acm/certificate:Certificate":
		// ACM publishes one CNAME per name to validate; its labels are hashes ACM picks.
		if v, ok := args.Inputs["domainName"]; ok && v.IsString() {
			d := v.StringValue()
			h := fmt.Sprintf("%x", sha256.Sum256([]byte(d)))
			state["domainValidationOptions"] = resource.NewArrayProperty([]resource.PropertyValue{
				resource.NewObjectProperty(resource.PropertyMap{
					"domainName":          resource.NewStringProperty(d),
					"resourceRecordName":  resource.NewStringProperty("_" + h[:32] + "." + d + "."),
					"resourceRecordType":  resource.NewStringProperty("CNAME"),
					"resourceRecordValue": resource.NewStringProperty("_" + h[32:] + ".mock.acm-validations.aws."),
				}),
			})
		}
	case "aws:route53/record:Record":
		// The record's name as Route 53 stores it, without the trailing dot.
		if v, ok := args.Inputs["name"]; ok && v.IsString() {
			state["fqdn"] = resource.NewStringProperty(strings.TrimSuffix(v.StringValue(), "."))
		}
	case "aws:autoscaling/group:Group", "aws:iam/role:Role":
		// The provider generates these names when none is given.
		if v, ok := args.Inputs["name"]; !ok || !v.IsString() {
			state["name"] = resource.NewStringProperty(args.Name + "-" + CannedNameSuffix)
		}
	case "aws:elasticache/replicationGroup:ReplicationGroup":
		// The primary endpoint ElastiCache names after the group id, a hash and the region.
		rg := args.Name
		if v, ok := args.Inputs["replicationGroupId"]; ok && v.IsString() {
			rg = v.StringValue()
		}
		state["primaryEndpointAddress"] = resource.NewStringProperty(fmt.Sprintf("master.%s.%s.%s.cache.amazonaws.com", rg, cannedELBID(rg)[:6], regionCode(m.Region)))
	case "aws:dynamodb/table:Table":
		// A table's id is its name; its ARN ends in table/<name>.
		if v, ok := args.Inputs["name"]; ok && v.IsString() {
			id = v.StringValue()
		}
		state["arn"] = resource.NewStringProperty(fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", m.Region, m.AccountID, id))
	case "aws:s3/bucketV2:BucketV2":
		// A bucket's id is its name, which S3 derives from bucketPrefix when no name is given
		// (26 unique characters appended); its ARN has no region or account.
		name := args.Name
		if v, ok := args.Inputs["bucket"]; ok && v.IsString() {
			name = v.StringValue()
		} else if v, ok := args.Inputs["bucketPrefix"]; ok && v.IsString() {
			name = v.StringValue() + CannedBucketSuffix
		}
		id = name
		state["bucket"] = resource.NewStringProperty(name)
		state["arn"] = resource.NewStringProperty("arn:aws:s3:::" + name)
		state["region"] = resource.NewStringProperty(m.Region)
		state["bucketRegionalDomainName"] = resource.NewStringProperty(fmt.Sprintf("%s.s3.%s.amazonaws.com", name, m.Region))
	}
	return id, state
}

// cannedELBID stands in for the 16 hex digits ELB ends a load balancer's or target group's
// ARN with: derived from the logical name, so every plan run gives the same.
func cannedELBID(name string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(name)))[:16]
}

// CannedELBZoneID is the offline plan's hosted zone id of every load balancer, where ELB gives
// each region's load balancers one zone of its own for alias records.
const CannedELBZoneID = "ZELBMOCK0000000"

// CannedNameSuffix is what the offline plan appends to a logical name where the provider would
// generate a unique name (autoscaling groups, IAM roles).
const CannedNameSuffix = "0000001"

// CannedBucketSuffix is what the offline plan appends to a bucketPrefix, in place of the 26
// unique characters S3 (through the provider) would.
const CannedBucketSuffix = "20260101000000000000000001"

// resourceURN builds the URN the way the SDK's mock monitor does, so recorded parents resolve.
func resourceURN(args pulumi.MockResourceArgs, parent string) string {
	p := resource.URN(parent)
	if parent == "" || !p.IsValid() {
		return string(resource.NewURN("mock", "mock", "", tokens.Type(args.TypeToken), args.Name))
	}
	parentType := tokens.Type("")
	if p.QualifiedType() != resource.RootStackType {
		parentType = p.QualifiedType()
	}
	return string(resource.NewURN(p.Stack(), p.Project(), parentType, tokens.Type(args.TypeToken), args.Name))
}

// isStack reports whether urn names the root stack resource.
func isStack(urn string) bool {
	u := resource.URN(urn)
	return urn != "" && u.IsValid() && u.QualifiedType() == resource.RootStackType
}

// arn builds a plausible ARN for a resource, in the shape AWS gives that type where later
// inputs or validation read it (secrets, keys, roles), generic otherwise.
func (m *Monitor) arn(typeToken, id string) string {
	service := "unknown"
	if parts := strings.Split(typeToken, ":"); len(parts) == 3 {
		service = strings.SplitN(parts[1], "/", 2)[0]
	}
	switch typeToken {
	case "aws:secretsmanager/secret:Secret":
		// Secrets Manager appends six random characters to the name.
		return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf", m.Region, m.AccountID, id)
	case "aws:kms/key:Key":
		return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", m.Region, m.AccountID, id)
	case "aws:iam/role:Role":
		return fmt.Sprintf("arn:aws:iam::%s:role/%s", m.AccountID, id)
	}
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s", service, m.Region, m.AccountID, id)
}

// Call answers the AWS look-ups the program makes. A look-up without a canned answer is an
// error, so that a new look-up cannot slip into the offline plan unnoticed.
func (m *Monitor) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	switch args.Token {
	case "aws:index/getAvailabilityZones:getAvailabilityZones":
		var names, ids []any
		for i, suffix := range []string{"a", "b", "c", "d"} {
			names = append(names, m.Region+suffix)
			ids = append(ids, fmt.Sprintf("%s-az%d", regionCode(m.Region), i+1))
		}
		return resource.NewPropertyMapFromMap(map[string]any{
			"names": names, "zoneIds": ids, "state": "available", "id": m.Region,
		}), nil
	case "aws:index/getCallerIdentity:getCallerIdentity":
		return resource.NewPropertyMapFromMap(map[string]any{
			"accountId": m.AccountID,
			"arn":       fmt.Sprintf("arn:aws:iam::%s:role/offline-plan", m.AccountID),
			"userId":    "AROAOFFLINEPLAN",
			"id":        m.AccountID,
		}), nil
	case "aws:index/getRegion:getRegion":
		return resource.NewPropertyMapFromMap(map[string]any{
			"name": m.Region, "id": m.Region, "endpoint": "ec2." + m.Region + ".amazonaws.com",
			"description": m.Region,
		}), nil
	case "aws:index/getPartition:getPartition":
		return resource.NewPropertyMapFromMap(map[string]any{
			"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws",
			"reverseDnsPrefix": "com.amazonaws",
		}), nil
	case "aws:ssm/getParameter:getParameter":
		name := args.Args["name"].StringValue()
		return resource.NewPropertyMapFromMap(map[string]any{
			"name": name, "value": CannedAMI(name), "type": "String", "id": name,
			"arn": fmt.Sprintf("arn:aws:ssm:%s::parameter%s", m.Region, name),
		}), nil
	}
	return nil, fmt.Errorf("the offline plan has no canned answer for the look-up %s", args.Token)
}

// CannedAMI is the AMI id the offline plan resolves an SSM parameter to: stable per parameter,
// so plans are reproducible, and plainly not a real image.
func CannedAMI(parameter string) string {
	sum := sha256.Sum256([]byte(parameter))
	return "ami-0" + hex.EncodeToString(sum[:])[:16]
}

// regionCode abbreviates a region for zone ids ("ca-central-1" -> "cac1").
func regionCode(region string) string {
	parts := strings.Split(region, "-")
	if len(parts) != 3 || len(parts[0]) < 2 || parts[1] == "" {
		return region
	}
	return parts[0] + parts[1][:1] + parts[2]
}

// Run runs body under the monitor as the named project and stack, with the given config values
// (namespaced keys, as the Pulumi engine passes them), and returns the program's error.
func (m *Monitor) Run(project, stack string, config map[string]string, body pulumi.RunFunc) error {
	withConfig := func(info *pulumi.RunInfo) { info.Config = config }
	return pulumi.RunErr(body, pulumi.WithMocks(project, stack, m), withConfig)
}

// SecretMask is what a secret input reads as in Plain.
const SecretMask = "[secret]"

// Plain turns recorded inputs into plain Go values (maps, slices, strings, float64, bool, nil),
// with every secret replaced by SecretMask and every unknown value by "[unknown]".
func Plain(props resource.PropertyMap) map[string]any {
	out := make(map[string]any, len(props))
	for k, v := range props {
		out[string(k)] = plainValue(v)
	}
	return out
}

func plainValue(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return SecretMask
	case v.IsComputed(), v.IsOutput() && !v.OutputValue().Known:
		return "[unknown]"
	case v.IsOutput():
		if v.OutputValue().Secret {
			return SecretMask
		}
		return plainValue(v.OutputValue().Element)
	case v.IsNull():
		return nil
	case v.IsString():
		return v.StringValue()
	case v.IsNumber():
		return v.NumberValue()
	case v.IsBool():
		return v.BoolValue()
	case v.IsArray():
		arr := v.ArrayValue()
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = plainValue(e)
		}
		return out
	case v.IsObject():
		return Plain(v.ObjectValue())
	case v.IsResourceReference():
		return v.ResourceReferenceValue().URN
	case v.IsAsset(), v.IsArchive():
		return "[asset]"
	}
	return fmt.Sprint(v.V)
}
