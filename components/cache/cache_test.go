package cache

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
)

const (
	region     = "ca-central-1"
	rgType     = "aws:elasticache/replicationGroup:ReplicationGroup"
	subnetType = "aws:elasticache/subnetGroup:SubnetGroup"
	sgType     = "aws:ec2/securityGroup:SecurityGroup"
	keyArn     = "arn:aws:kms:ca-central-1:123456789012:key/chem-key-id"
	token      = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWxYz01"
)

func goodArgs() *RateLimitCacheArgs {
	return &RateLimitCacheArgs{
		Department:       "chem",
		VpcID:            pulumi.String("vpc-1"),
		PrivateSubnetIDs: pulumi.ToStringArray([]string{"subnet-a", "subnet-b"}),
		KMSKeyArn:        pulumi.String(keyArn),
		AuthToken:        pulumi.ToSecret(pulumi.String(token)).(pulumi.StringOutput),
	}
}

type outputs struct {
	host, sg   string
	port       int
	hostSecret bool
}

func run(t *testing.T, args *RateLimitCacheArgs) (*mockaws.Monitor, outputs, error) {
	t.Helper()
	m := mockaws.New(region)
	var got outputs
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		c, err := NewRateLimitCache(ctx, "chem-cache", args)
		if err != nil {
			return err
		}
		pulumi.All(c.Host, c.Port, c.SecurityGroupID).ApplyT(func(v []any) error {
			got.host, got.port, got.sg = v[0].(string), v[1].(int), string(v[2].(pulumi.ID))
			return nil
		})
		got.hostSecret = pulumi.IsSecret(c.Host)
		return nil
	})
	return m, got, err
}

// The replication group is encrypted in transit (TLS required) and at rest with the
// department key, requires the AUTH token it was given (kept secret), runs in the private
// subnets behind its own security group, fails over across AZs, and keeps no snapshot.
func TestReplicationGroup(t *testing.T) {
	m, got, err := run(t, goodArgs())
	if err != nil {
		t.Fatal(err)
	}
	rg := mocktest.Only(t, m, rgType)
	in := mockaws.Plain(rg.Inputs)
	want := map[string]any{
		"replicationGroupId":       "chem-limits",
		"engine":                   Engine,
		"engineVersion":            EngineVersion,
		"nodeType":                 DefaultNodeType,
		"numCacheClusters":         float64(DefaultNodes),
		"automaticFailoverEnabled": true,
		"multiAzEnabled":           true,
		"port":                     float64(Port),
		"transitEncryptionEnabled": true,
		"transitEncryptionMode":    "required",
		"atRestEncryptionEnabled":  true,
		"kmsKeyId":                 keyArn,
		"snapshotRetentionLimit":   0.0,
		"subnetGroupName":          "chem-limits",
	}
	for k, v := range want {
		if in[k] != v {
			t.Errorf("%s = %#v, want %#v", k, in[k], v)
		}
	}
	if v, ok := rg.Inputs["authToken"]; !ok || !v.IsSecret() || v.SecretValue().Element.StringValue() != token {
		t.Errorf("authToken = %v, want the given token, marked secret", v)
	}
	if sgs := mocktest.Strings(in["securityGroupIds"]); len(sgs) != 1 || sgs[0] != "chem-cache-sg-id" {
		t.Errorf("securityGroupIds = %v, want only the cache's own group", sgs)
	}
	subnets := mocktest.OnlyInputs(t, m, subnetType)
	if ids := mocktest.Strings(subnets["subnetIds"]); len(ids) != 2 || ids[0] != "subnet-a" || ids[1] != "subnet-b" {
		t.Errorf("subnet group subnetIds = %v, want the private subnets", ids)
	}
	sg := mocktest.OnlyInputs(t, m, sgType)
	for _, k := range []string{"ingress", "egress"} {
		if rules, ok := sg[k].([]any); ok && len(rules) > 0 {
			t.Errorf("the cache's security group has inline %s rules %v; want none (the gateway admits its nodes)", k, rules)
		}
	}
	if sg["vpcId"] != "vpc-1" {
		t.Errorf("security group vpcId = %v", sg["vpcId"])
	}
	if !strings.HasPrefix(got.host, "master.chem-limits.") || got.port != Port || got.sg != "chem-cache-sg-id" {
		t.Errorf("outputs host %q port %d security group %q", got.host, got.port, got.sg)
	}
	if got.hostSecret {
		t.Errorf("the host output is marked secret; it is an address, not the token")
	}
	mocktest.Children(t, m, TypeToken, "chem-cache", []string{rgType + " chem-cache-group", sgType + " chem-cache-sg", subnetType + " chem-cache-subnets"})
}

// Size follows the arguments.
func TestNodeTypeAndCount(t *testing.T) {
	args := goodArgs()
	args.NodeType, args.Nodes = "cache.m7g.large", 3
	m, _, err := run(t, args)
	if err != nil {
		t.Fatal(err)
	}
	in := mockaws.Plain(mocktest.Only(t, m, rgType).Inputs)
	if in["nodeType"] != "cache.m7g.large" || in["numCacheClusters"] != 3.0 {
		t.Errorf("nodeType %v numCacheClusters %v, want cache.m7g.large and 3", in["nodeType"], in["numCacheClusters"])
	}
}

// Bad arguments are refused, each naming its field, before anything is created.
func TestValidation(t *testing.T) {
	for field, edit := range map[string]func(*RateLimitCacheArgs){
		"Department": func(a *RateLimitCacheArgs) { a.Department = "Chem" },
		"VpcID":      func(a *RateLimitCacheArgs) { a.VpcID = nil },
		"KMSKeyArn":  func(a *RateLimitCacheArgs) { a.KMSKeyArn = nil },
		"AuthToken":  func(a *RateLimitCacheArgs) { a.AuthToken = nil },
		"NodeType":   func(a *RateLimitCacheArgs) { a.NodeType = "t4g.micro" },
		"Nodes":      func(a *RateLimitCacheArgs) { a.Nodes = 1 },
	} {
		args := goodArgs()
		edit(args)
		m, _, err := run(t, args)
		mocktest.Refused(t, m, err, "cache", field)
	}
	m, _, err := run(t, nil)
	mocktest.Refused(t, m, err, "cache", "args")
}
