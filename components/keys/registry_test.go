package keys

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
)

const tableType = "aws:dynamodb/table:Table"

// The registry is the department's table of hashed keys: named for the department, keyed by
// key id, encrypted with the department key, recoverable, purged past expiry, on demand.
func TestRegistryTable(t *testing.T) {
	m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region})
	table := only(t, m, tableType)
	in := mockaws.Plain(table.Inputs)
	if table.Name != "chem-registry" {
		t.Errorf("table resource name = %q, want chem-registry", table.Name)
	}
	want := map[string]any{
		"name":        "llm-sandbox-chem-keys",
		"billingMode": "PAY_PER_REQUEST",
		"hashKey":     keyregistry.AttrKeyID,
	}
	for k, v := range want {
		if in[k] != v {
			t.Errorf("%s = %v, want %v", k, in[k], v)
		}
	}
	attrs, _ := in["attributes"].([]any)
	if len(attrs) != 1 || attrs[0].(map[string]any)["name"] != keyregistry.AttrKeyID || attrs[0].(map[string]any)["type"] != "S" {
		t.Errorf("attributes = %v, want only the string key id", attrs)
	}
	sse, _ := in["serverSideEncryption"].(map[string]any)
	if sse["enabled"] != true || sse["kmsKeyArn"] != mockKeyArn {
		t.Errorf("serverSideEncryption = %v, want enabled with the department key %s", sse, mockKeyArn)
	}
	if pitr, _ := in["pointInTimeRecovery"].(map[string]any); pitr["enabled"] != true {
		t.Errorf("pointInTimeRecovery = %v, want enabled", pitr)
	}
	if ttl, _ := in["ttl"].(map[string]any); ttl["enabled"] != true || ttl["attributeName"] != keyregistry.AttrPurge {
		t.Errorf("ttl = %v, want enabled on %s", ttl, keyregistry.AttrPurge)
	}
	for _, k := range []string{"globalSecondaryIndexes", "streamEnabled", "replicas"} {
		if _, ok := in[k]; ok {
			t.Errorf("%s is set (%v): the registry has no index, stream or replica that could copy it elsewhere", k, in[k])
		}
	}
}

// Deletion protection follows the argument (the stack's gateway.deletionProtection).
func TestRegistryDeletionProtection(t *testing.T) {
	for _, on := range []bool{true, false} {
		m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region, RegistryDeletionProtection: on})
		if got := mockaws.Plain(only(t, m, tableType).Inputs)["deletionProtectionEnabled"]; got != on {
			t.Errorf("RegistryDeletionProtection %t: deletionProtectionEnabled = %v", on, got)
		}
	}
}

// The table's name and ARN are outputs, for the gateway's read-only grant and for sandboxctl.
func TestRegistryOutputs(t *testing.T) {
	m := mockaws.New(region)
	var name, arn string
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		ks, err := NewKeyStore(ctx, "chem", &KeyStoreArgs{Department: "chem", Region: region})
		if err != nil {
			return err
		}
		pulumi.All(ks.RegistryTableName, ks.RegistryTableArn).ApplyT(func(v []any) error {
			name, arn = v[0].(string), v[1].(string)
			return nil
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if name != "llm-sandbox-chem-keys" || arn != "arn:aws:dynamodb:"+region+":"+account+":table/llm-sandbox-chem-keys" {
		t.Errorf("outputs = %q, %q", name, arn)
	}
}
