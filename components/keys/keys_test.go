package keys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/argcheck"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
)

// Shared assertions over the mock's recordings.
var (
	only = mocktest.Only
	list = mocktest.Strings
)

const (
	region    = "ca-central-1"
	account   = mockaws.DefaultAccountID
	keyType   = "aws:kms/key:Key"
	aliasType = "aws:kms/alias:Alias"
	secType   = "aws:secretsmanager/secret:Secret"
	verType   = "aws:secretsmanager/secretVersion:SecretVersion"

	// The ARNs and ids mockaws gives the children of a KeyStore named "chem".
	mockKeyID     = "chem-key-id"
	mockKeyArn    = "arn:aws:kms:" + region + ":" + account + ":key/" + mockKeyID
	mockSecretID  = "chem-master-key-id"
	mockSecretArn = "arn:aws:secretsmanager:" + region + ":" + account + ":secret:" + mockSecretID + "-AbCdEf"
)

var masterKeyPattern = regexp.MustCompile(`^sk-[A-Za-z0-9]{48}$`)

// outputs are a KeyStore's struct outputs, resolved.
type outputs struct {
	KeyArn, KeyID, AliasName, MasterKeySecretArn string
	Secret                                       bool // any of them marked secret
}

// run builds a KeyStore named "chem" under mockaws and returns the monitor, its resolved struct
// outputs and the program's error.
func run(t *testing.T, args *KeyStoreArgs) (*mockaws.Monitor, outputs, error) {
	t.Helper()
	m := mockaws.New(region)
	var got outputs
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		ks, err := NewKeyStore(ctx, "chem", args)
		if err != nil {
			return err
		}
		resolve(&got, ks)
		return nil
	})
	return m, got, err
}

// resolve copies the KeyStore's outputs into got once they resolve (Run waits for that).
func resolve(got *outputs, ks *KeyStore) {
	all := pulumi.All(ks.KeyArn, ks.KeyID, ks.AliasName, ks.MasterKeySecretArn)
	all.ApplyT(func(v []any) error {
		got.KeyArn, got.KeyID = v[0].(string), v[1].(string)
		got.AliasName, got.MasterKeySecretArn = v[2].(string), v[3].(string)
		return nil
	})
	// All is secret when any of its inputs is; IsSecret waits for it to resolve.
	got.Secret = pulumi.IsSecret(all)
}

func mustRun(t *testing.T, args *KeyStoreArgs) (*mockaws.Monitor, outputs) {
	t.Helper()
	m, got, err := run(t, args)
	if err != nil {
		t.Fatalf("NewKeyStore: %v", err)
	}
	return m, got
}

func TestKeyStoreCreatesRotatingSymmetricKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		days int
		want float64
	}{
		{"default window", 0, 30},
		{"explicit window", 14, 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region, KeyDeletionWindowDays: tc.days})
			key := only(t, m, keyType)
			in := mockaws.Plain(key.Inputs)
			if key.Name != "chem-key" {
				t.Errorf("key name = %q, want chem-key", key.Name)
			}
			if in["enableKeyRotation"] != true {
				t.Errorf("enableKeyRotation = %v, want true", in["enableKeyRotation"])
			}
			if in["deletionWindowInDays"] != tc.want {
				t.Errorf("deletionWindowInDays = %v, want %v", in["deletionWindowInDays"], tc.want)
			}
			if in["keyUsage"] != "ENCRYPT_DECRYPT" || in["customerMasterKeySpec"] != "SYMMETRIC_DEFAULT" {
				t.Errorf("keyUsage, spec = %v, %v; want a symmetric encryption key", in["keyUsage"], in["customerMasterKeySpec"])
			}
			if d, _ := in["description"].(string); !strings.Contains(d, "chem") {
				t.Errorf("description = %q, want it to name the department", d)
			}
		})
	}
}

// policyOf parses the recorded key policy and returns its statements by Sid.
func policyOf(t *testing.T, m *mockaws.Monitor) (map[string]mocktest.Statement, []string) {
	t.Helper()
	bySid := map[string]mocktest.Statement{}
	var order []string
	for _, s := range mocktest.Policy(t, mockaws.Plain(only(t, m, keyType).Inputs)["policy"]) {
		if _, dup := bySid[s.Sid]; dup {
			t.Errorf("duplicate Sid %q", s.Sid)
		}
		if s.Effect != "Allow" || s.Resource != "*" {
			t.Errorf("%s: Effect %q, Resource %v; want Allow on *", s.Sid, s.Effect, s.Resource)
		}
		bySid[s.Sid] = s
		order = append(order, s.Sid)
	}
	return bySid, order
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

// allows reports whether the IAM action pattern (with * and ? wildcards, case-insensitive)
// covers action.
func allows(pattern, action string) bool {
	re := "(?i)^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	return regexp.MustCompile(re).MatchString(action)
}

func TestKeyPolicyStatements(t *testing.T) {
	m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region})
	st, order := policyOf(t, m)

	want := []string{SidRoot, SidLogs, SidAutoScalingUse, SidAutoScalingGrants, SidCloudWatchAlarms}
	if !slices.Equal(order, want) {
		t.Fatalf("statements = %v, want %v (no admin statement without AdminRoleArns)", order, want)
	}

	root := st[SidRoot]
	if got := list(root.Principal["AWS"]); !slices.Equal(got, []string{"arn:aws:iam::123456789012:root"}) {
		t.Errorf("root principal = %v", got)
	}
	if got := list(root.Action); !slices.Equal(got, []string{"kms:*"}) {
		t.Errorf("root actions = %v, want kms:*", got)
	}
	if root.Condition != nil {
		t.Errorf("root statement has a condition: %v", root.Condition)
	}

	logs := st[SidLogs]
	if got := list(logs.Principal["Service"]); !slices.Equal(got, []string{"logs.ca-central-1.amazonaws.com"}) {
		t.Errorf("logs principal = %v", got)
	}
	if _, ok := logs.Principal["AWS"]; ok {
		t.Errorf("logs statement names an AWS principal: %v", logs.Principal)
	}
	if got := list(logs.Action); !sameSet(got, []string{"kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"}) {
		t.Errorf("logs actions = %v", got)
	}
	wantCond := map[string]map[string]any{"ArnLike": {
		"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:ca-central-1:123456789012:log-group:*",
	}}
	if fmt.Sprint(logs.Condition) != fmt.Sprint(wantCond) {
		t.Errorf("logs condition = %v, want %v", logs.Condition, wantCond)
	}

	slr := "arn:aws:iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
	use := st[SidAutoScalingUse]
	if got := list(use.Principal["AWS"]); !slices.Equal(got, []string{slr}) {
		t.Errorf("autoscaling use principal = %v, want %s", got, slr)
	}
	if got := list(use.Action); !sameSet(got, []string{"kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"}) {
		t.Errorf("autoscaling use actions = %v", got)
	}
	if use.Condition != nil {
		t.Errorf("autoscaling use statement has a condition: %v", use.Condition)
	}

	grants := st[SidAutoScalingGrants]
	if got := list(grants.Principal["AWS"]); !slices.Equal(got, []string{slr}) {
		t.Errorf("autoscaling grant principal = %v, want %s", got, slr)
	}
	if got := list(grants.Action); !slices.Equal(got, []string{"kms:CreateGrant"}) {
		t.Errorf("autoscaling grant actions = %v, want only kms:CreateGrant", got)
	}
	if got := fmt.Sprint(grants.Condition["Bool"]["kms:GrantIsForAWSResource"]); got != "true" || len(grants.Condition) != 1 {
		t.Errorf("autoscaling grant condition = %v, want Bool kms:GrantIsForAWSResource=true", grants.Condition)
	}

	// CloudWatch may use the key for the alarm topic only: data keys and decrypt, for alarms
	// of this account and region.
	alarms := st[SidCloudWatchAlarms]
	if got := list(alarms.Principal["Service"]); !slices.Equal(got, []string{"cloudwatch.amazonaws.com"}) || alarms.Principal["AWS"] != nil {
		t.Errorf("alarms principal = %v, want only the CloudWatch service", alarms.Principal)
	}
	if got := list(alarms.Action); !sameSet(got, []string{"kms:Decrypt", "kms:GenerateDataKey*"}) {
		t.Errorf("alarms actions = %v, want kms:Decrypt and kms:GenerateDataKey*", got)
	}
	wantAlarmCond := map[string]map[string]any{
		"ArnLike":      {"aws:SourceArn": "arn:aws:cloudwatch:ca-central-1:123456789012:alarm:*"},
		"StringEquals": {"aws:SourceAccount": "123456789012"},
	}
	if fmt.Sprint(alarms.Condition) != fmt.Sprint(wantAlarmCond) {
		t.Errorf("alarms condition = %v, want %v", alarms.Condition, wantAlarmCond)
	}
}

func TestKeyPolicyAdmins(t *testing.T) {
	admins := []string{
		"arn:aws:iam::123456789012:role/platform-admin",
		"arn:aws:iam::123456789012:role/security-admin",
	}
	m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region, AdminRoleArns: admins})
	st, order := policyOf(t, m)

	want := []string{SidRoot, SidAdmins, SidLogs, SidAutoScalingUse, SidAutoScalingGrants, SidCloudWatchAlarms}
	if !slices.Equal(order, want) {
		t.Fatalf("statements = %v, want %v", order, want)
	}
	adm := st[SidAdmins]
	if got := list(adm.Principal["AWS"]); !slices.Equal(got, admins) {
		t.Errorf("admin principals = %v, want %v", got, admins)
	}
	actions := list(adm.Action)
	for _, need := range []string{"kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion", "kms:EnableKeyRotation", "kms:DescribeKey"} {
		if !slices.ContainsFunc(actions, func(p string) bool { return allows(p, need) }) {
			t.Errorf("admins cannot %s; actions %v", need, actions)
		}
	}
	// Administering a key must not mean reading what it protects, directly or through a grant.
	for _, use := range []string{"kms:Decrypt", "kms:Encrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:CreateGrant"} {
		for _, p := range actions {
			if allows(p, use) {
				t.Errorf("admin action %q allows %s", p, use)
			}
		}
	}
	// The admins appear in no other statement.
	for sid, s := range st {
		if sid == SidAdmins {
			continue
		}
		for _, a := range admins {
			if slices.Contains(list(s.Principal["AWS"]), a) {
				t.Errorf("%s names admin %s", sid, a)
			}
		}
	}
}

func TestKeyAlias(t *testing.T) {
	m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region})
	alias := only(t, m, aliasType)
	in := mockaws.Plain(alias.Inputs)
	if alias.Name != "chem-key-alias" {
		t.Errorf("alias resource name = %q, want chem-key-alias", alias.Name)
	}
	if in["name"] != "alias/llm-sandbox/chem" {
		t.Errorf("alias = %v, want alias/llm-sandbox/chem", in["name"])
	}
	if in["targetKeyId"] != mockKeyID {
		t.Errorf("alias targetKeyId = %v, want the key's id %s", in["targetKeyId"], mockKeyID)
	}
}

func TestMasterKeySecretEncryptedWithKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		days int
		want float64
	}{
		{"default window", 0, 30},
		{"explicit window", 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region, SecretRecoveryWindowDays: tc.days})
			sec := only(t, m, secType)
			in := mockaws.Plain(sec.Inputs)
			if sec.Name != "chem-master-key" {
				t.Errorf("secret resource name = %q, want chem-master-key", sec.Name)
			}
			if in["name"] != "llm-sandbox/chem/litellm-master-key" {
				t.Errorf("secret name = %v", in["name"])
			}
			if in["kmsKeyId"] != mockKeyArn {
				t.Errorf("secret kmsKeyId = %v, want the key's ARN %s", in["kmsKeyId"], mockKeyArn)
			}
			if in["recoveryWindowInDays"] != tc.want {
				t.Errorf("recoveryWindowInDays = %v, want %v", in["recoveryWindowInDays"], tc.want)
			}
			if d, _ := in["description"].(string); !strings.Contains(d, "chem") || !strings.Contains(d, "LiteLLM") {
				t.Errorf("description = %q", d)
			}
		})
	}
}

// secretText returns the plain text of a recorded secret string input, and whether the input is
// marked secret.
func secretText(v resource.PropertyValue) (string, bool) {
	switch {
	case v.IsSecret():
		return v.SecretValue().Element.StringValue(), true
	case v.IsOutput() && v.OutputValue().Secret && v.OutputValue().Element.IsString():
		return v.OutputValue().Element.StringValue(), true
	case v.IsString():
		return v.StringValue(), false
	}
	return "", false
}

func TestMasterKeyValueIsSecretAndNeverLeaks(t *testing.T) {
	m, got := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region})
	ver := only(t, m, verType)
	if ver.Name != "chem-master-key-value" {
		t.Errorf("secret version resource name = %q, want chem-master-key-value", ver.Name)
	}
	raw := ver.Inputs["secretString"]
	value, secret := secretText(raw)
	if !raw.IsSecret() || !secret {
		t.Fatalf("secretString is not marked secret in the recorded inputs")
	}
	if p := mockaws.Plain(ver.Inputs); p["secretString"] != mockaws.SecretMask || p["secretId"] != mockSecretID {
		t.Errorf("plain secret version inputs = %v, want secretString %q and secretId %s", p, mockaws.SecretMask, mockSecretID)
	}
	if !masterKeyPattern.MatchString(value) {
		t.Fatalf("stored master key %q does not match %s", value, masterKeyPattern)
	}

	// The value reaches no other input, not even as a secret. (The scan reveals secrets: it
	// must find the value where it belongs.)
	if !strings.Contains(fmt.Sprint(reveal(raw)), value) {
		t.Fatalf("the leak scan cannot see into secrets")
	}
	for _, r := range m.Resources() {
		for k, v := range r.Inputs {
			if r.Type == verType && k == "secretString" {
				continue
			}
			if strings.Contains(fmt.Sprint(reveal(v)), value) {
				t.Errorf("%s %s input %s contains the master key", r.Type, r.Name, k)
			}
		}
	}
	// The struct outputs are ARNs and ids, none of them secret, none the key.
	want := outputs{
		KeyArn: mockKeyArn, KeyID: mockKeyID, AliasName: "alias/llm-sandbox/chem",
		MasterKeySecretArn: mockSecretArn,
	}
	if got != want {
		t.Errorf("outputs = %+v, want %+v", got, want)
	}
	if strings.Contains(fmt.Sprint(got), value) {
		t.Errorf("outputs contain the master key")
	}

	// Each new KeyStore gets its own key.
	again, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region})
	if other, _ := secretText(only(t, again, verType).Inputs["secretString"]); other == value {
		t.Errorf("two KeyStores got the same master key %q", value)
	}
}

// reveal turns a recorded input into plain Go values with secrets and outputs unwrapped, so that
// a search of its text finds a secret value.
func reveal(v resource.PropertyValue) any {
	return v.MapRepl(nil, func(p resource.PropertyValue) (any, bool) {
		switch {
		case p.IsSecret():
			return reveal(p.SecretValue().Element), true
		case p.IsOutput():
			return reveal(p.OutputValue().Element), true
		}
		return nil, false
	})
}

func TestMasterKeyValueKeptAcrossRunsAndRotations(t *testing.T) {
	m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region})
	version := only(t, m, verType)
	if got := version.IgnoreChanges; !sameSet(got, []string{"secretString", "versionStages"}) {
		t.Errorf("secret version ignoreChanges = %v, want [secretString versionStages]", got)
	}
	// The created version keeps a label of its own, so it is never left unlabelled (and then
	// removed by AWS, and recreated with a new value) after operators rotate the key twice.
	stages := list(mockaws.Plain(version.Inputs)["versionStages"])
	if !sameSet(stages, []string{"AWSCURRENT", InitialVersionStage}) {
		t.Errorf("versionStages = %v, want AWSCURRENT and %s", stages, InitialVersionStage)
	}
	for _, r := range m.Resources() {
		if r.Name != "chem-master-key-value" && len(r.IgnoreChanges) > 0 {
			t.Errorf("%s ignores changes to %v; only the secret value should", r.Name, r.IgnoreChanges)
		}
	}
}

func TestChildrenParentedToComponent(t *testing.T) {
	m, _ := mustRun(t, &KeyStoreArgs{Department: "chem", Region: region, AdminRoleArns: []string{"arn:aws:iam::123456789012:role/a"}})
	mocktest.Children(t, m, TypeToken, "chem", []string{
		keyType + " chem-key",
		aliasType + " chem-key-alias",
		secType + " chem-master-key",
		verType + " chem-master-key-value",
	})
}

func TestNewKeyStoreRejectsInvalidArgs(t *testing.T) {
	valid := func(edit func(*KeyStoreArgs)) *KeyStoreArgs {
		a := &KeyStoreArgs{Department: "chem", Region: region}
		edit(a)
		return a
	}
	for _, tc := range []struct {
		name  string
		args  *KeyStoreArgs
		field string
	}{
		{"nil args", nil, "args"},
		{"empty department", valid(func(a *KeyStoreArgs) { a.Department = "" }), "Department"},
		{"uppercase department", valid(func(a *KeyStoreArgs) { a.Department = "Chem" }), "Department"},
		{"department starts with a digit", valid(func(a *KeyStoreArgs) { a.Department = "1chem" }), "Department"},
		{"department ends with a hyphen", valid(func(a *KeyStoreArgs) { a.Department = "chem-" }), "Department"},
		{"department with underscore", valid(func(a *KeyStoreArgs) { a.Department = "ch_em" }), "Department"},
		{"department of one letter", valid(func(a *KeyStoreArgs) { a.Department = "c" }), "Department"},
		{"department of 33 letters", valid(func(a *KeyStoreArgs) { a.Department = strings.Repeat("a", 33) }), "Department"},
		{"empty region", valid(func(a *KeyStoreArgs) { a.Region = "" }), "Region"},
		{"admin not an ARN", valid(func(a *KeyStoreArgs) { a.AdminRoleArns = []string{"arn:aws:iam::1:role/a", "admin"} }), "AdminRoleArns[1]"},
		{"key window 6", valid(func(a *KeyStoreArgs) { a.KeyDeletionWindowDays = 6 }), "KeyDeletionWindowDays"},
		{"key window 31", valid(func(a *KeyStoreArgs) { a.KeyDeletionWindowDays = 31 }), "KeyDeletionWindowDays"},
		{"key window negative", valid(func(a *KeyStoreArgs) { a.KeyDeletionWindowDays = -1 }), "KeyDeletionWindowDays"},
		{"secret window 6", valid(func(a *KeyStoreArgs) { a.SecretRecoveryWindowDays = 6 }), "SecretRecoveryWindowDays"},
		{"secret window 31", valid(func(a *KeyStoreArgs) { a.SecretRecoveryWindowDays = 31 }), "SecretRecoveryWindowDays"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := run(t, tc.args)
			mocktest.Refused(t, m, err, `keystore "chem"`, tc.field)
			var fe *argcheck.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("error %q does not name field %s", err, tc.field)
			}
		})
	}
}

func TestNewKeyStoreReportsEveryProblem(t *testing.T) {
	_, _, err := run(t, &KeyStoreArgs{Department: "X", KeyDeletionWindowDays: 31, SecretRecoveryWindowDays: 6})
	mocktest.ReportsAll(t, err, "Department", "Region", "KeyDeletionWindowDays", "SecretRecoveryWindowDays")
}

func TestNewKeyStoreAcceptsEdgeDepartments(t *testing.T) {
	for _, dept := range []string{"ab", "a-1", strings.Repeat("a", 32)} {
		t.Run(dept, func(t *testing.T) {
			m, _ := mustRun(t, &KeyStoreArgs{Department: dept, Region: region, KeyDeletionWindowDays: 7, SecretRecoveryWindowDays: 30})
			if got := mockaws.Plain(only(t, m, aliasType).Inputs)["name"]; got != "alias/llm-sandbox/"+dept {
				t.Errorf("alias = %v", got)
			}
		})
	}
}

func TestGenerateMasterKeyFormatAndUniqueness(t *testing.T) {
	seen := make(map[string]bool, 1000)
	for range 1000 {
		k, err := generateMasterKey(rand.Reader)
		if err != nil {
			t.Fatalf("generateMasterKey: %v", err)
		}
		if !masterKeyPattern.MatchString(k) {
			t.Fatalf("key %q does not match %s", k, masterKeyPattern)
		}
		if seen[k] {
			t.Fatalf("key %q generated twice", k)
		}
		seen[k] = true
	}
}

// biasedBytesReader yields 248..255 (the bytes a uniform draw over 62 letters must reject)
// before 0, 1, 2, ...: a byte stream crypto/rand would only rarely produce.
type biasedBytesReader struct{ n int }

func (r *biasedBytesReader) Read(p []byte) (int, error) {
	for i := range p {
		if r.n < 8 {
			p[i] = byte(248 + r.n)
		} else {
			p[i] = byte(r.n - 8)
		}
		r.n++
	}
	return len(p), nil
}

func TestGenerateMasterKeyRejectsBiasedBytes(t *testing.T) {
	k, err := generateMasterKey(&biasedBytesReader{})
	if err != nil {
		t.Fatalf("generateMasterKey: %v", err)
	}
	if want := "sk-" + masterKeyAlphabet[:48]; k != want {
		t.Errorf("key = %q, want %q (bytes 248..255 skipped)", k, want)
	}
}

// failingReader is a fake entropy source that fails, which crypto/rand cannot be made to do.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestGenerateMasterKeyReturnsReadError(t *testing.T) {
	k, err := generateMasterKey(failingReader{})
	if err == nil || !strings.Contains(err.Error(), "entropy exhausted") {
		t.Errorf("err = %v, want the reader's error", err)
	}
	if k != "" {
		t.Errorf("key = %q on error, want empty", k)
	}
}
