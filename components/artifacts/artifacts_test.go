package artifacts

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
)

// Shared assertions over the mock's recordings.
var (
	only  = mocktest.OnlyInputs
	named = mocktest.Named
	strs  = mocktest.Strings
)

const (
	region     = "ca-central-1"
	keyArn     = "arn:aws:kms:ca-central-1:123456789012:key/0b5e6a1c-1111-2222-3333-444455556666"
	endpointID = "vpce-0123456789abcdef0"

	tComponent    = TypeToken
	tBucket       = "aws:s3/bucketV2:BucketV2"
	tPublicAccess = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
	tOwnership    = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
	tVersioning   = "aws:s3/bucketVersioningV2:BucketVersioningV2"
	tEncryption   = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
	tPolicy       = "aws:s3/bucketPolicy:BucketPolicy"
	tObject       = "aws:s3/bucketObjectv2:BucketObjectv2"
	tLogging      = "aws:s3/bucketLoggingV2:BucketLoggingV2"
	tLifecycle    = "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"

	// The name mockaws gives the bucket of department "chem".
	bucketName = "llm-chem-" + mockaws.CannedBucketSuffix
	bucketArn  = "arn:aws:s3:::" + bucketName
	// ... and its access-log bucket.
	logBucketName = "log-chem-" + mockaws.CannedBucketSuffix
	logBucketArn  = "arn:aws:s3:::" + logBucketName
)

// agentFile writes a stand-in agent binary with the given content and returns its path and
// SHA-256.
func agentFile(t *testing.T, content string) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sandbox-node")
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	return path, hex.EncodeToString(sum[:])
}

// validArgs returns args for department chem with a fresh agent file.
func validArgs(t *testing.T) *BucketArgs {
	t.Helper()
	path, sum := agentFile(t, "#!agent build 1\n")
	return &BucketArgs{
		Department:   "chem",
		KMSKeyArn:    pulumi.String(keyArn),
		S3EndpointID: pulumi.String(endpointID),
		AgentPath:    path,
		AgentSHA256:  sum,

		AccessLogRetentionDays: 90,
	}
}

// outputs are a Bucket's struct outputs, resolved.
type outputs struct {
	BucketName, BucketArn, AgentKey, AgentURL string
	AgentSHA256                               string
}

// run builds a Bucket named "chem" under mockaws.
func run(t *testing.T, args *BucketArgs) (*mockaws.Monitor, outputs, *Bucket, error) {
	t.Helper()
	m := mockaws.New(region)
	var got outputs
	var comp *Bucket
	err := m.Run("llm-sandbox", "test", nil, func(ctx *pulumi.Context) error {
		b, err := NewBucket(ctx, "chem", args)
		comp = b
		if err != nil {
			return err
		}
		got.AgentSHA256 = b.AgentSHA256
		pulumi.All(b.BucketName, b.BucketArn, b.AgentKey, b.AgentURL).ApplyT(func(v []any) error {
			got.BucketName, got.BucketArn = v[0].(string), v[1].(string)
			got.AgentKey, got.AgentURL = v[2].(string), v[3].(string)
			return nil
		})
		return nil
	})
	return m, got, comp, err
}

func mustRun(t *testing.T, args *BucketArgs) (*mockaws.Monitor, outputs) {
	t.Helper()
	m, got, _, err := run(t, args)
	if err != nil {
		t.Fatalf("NewBucket: %v", err)
	}
	return m, got
}

func TestBucketIsPrivateAndVersioned(t *testing.T) {
	for _, tc := range []struct {
		name         string
		forceDestroy bool
	}{
		{"default keeps objects on destroy", false},
		{"force destroy when asked", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := validArgs(t)
			args.ForceDestroy = tc.forceDestroy
			m, _ := mustRun(t, args)

			for _, b := range []struct{ base, prefix, name string }{
				{"chem", "llm-chem-", bucketName},
				{"chem-logs", "log-chem-", logBucketName},
			} {
				bucket := named(t, m, tBucket, b.base+"-bucket")
				if bucket["bucketPrefix"] != b.prefix {
					t.Errorf("%s: bucketPrefix = %v, want %s", b.base, bucket["bucketPrefix"], b.prefix)
				}
				if name, set := bucket["bucket"]; set {
					t.Errorf("%s: bucket = %v: the name must be generated from the prefix, never fixed", b.base, name)
				}
				if bucket["forceDestroy"] != tc.forceDestroy {
					t.Errorf("%s: forceDestroy = %v, want %v", b.base, bucket["forceDestroy"], tc.forceDestroy)
				}
				for _, acl := range []string{"acl", "grants", "policy", "websites", "corsRules", "loggings"} {
					if v, set := bucket[acl]; set {
						t.Errorf("%s: bucket sets %s = %v; access must come from the bucket policy and IAM alone", b.base, acl, v)
					}
				}

				pab := named(t, m, tPublicAccess, b.base+"-public-access-block")
				for _, flag := range []string{"blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy", "restrictPublicBuckets"} {
					if pab[flag] != true {
						t.Errorf("%s: public access block %s = %v, want true", b.base, flag, pab[flag])
					}
				}
				if pab["bucket"] != b.name {
					t.Errorf("public access block bucket = %v, want %s", pab["bucket"], b.name)
				}

				own := named(t, m, tOwnership, b.base+"-ownership")
				if rule, _ := own["rule"].(map[string]any); rule["objectOwnership"] != "BucketOwnerEnforced" || own["bucket"] != b.name {
					t.Errorf("ownership controls = %v, want BucketOwnerEnforced on %s", own, b.name)
				}

				ver := named(t, m, tVersioning, b.base+"-versioning")
				if cfg, _ := ver["versioningConfiguration"].(map[string]any); cfg["status"] != "Enabled" || ver["bucket"] != b.name {
					t.Errorf("versioning = %v, want Enabled on %s", ver, b.name)
				}
			}
		})
	}
}

func TestDefaultEncryptionWithDepartmentKey(t *testing.T) {
	m, _ := mustRun(t, validArgs(t))
	enc := named(t, m, tEncryption, "chem-encryption")
	if enc["bucket"] != bucketName {
		t.Errorf("encryption bucket = %v, want %s", enc["bucket"], bucketName)
	}
	rules, _ := enc["rules"].([]any)
	if len(rules) != 1 {
		t.Fatalf("encryption rules = %v, want one", enc["rules"])
	}
	rule := rules[0].(map[string]any)
	def, _ := rule["applyServerSideEncryptionByDefault"].(map[string]any)
	if def["sseAlgorithm"] != "aws:kms" || def["kmsMasterKeyId"] != keyArn {
		t.Errorf("default encryption = %v, want aws:kms with %s", def, keyArn)
	}
	if rule["bucketKeyEnabled"] != true {
		t.Errorf("bucketKeyEnabled = %v, want true", rule["bucketKeyEnabled"])
	}
}

// policyOf returns the statements of the recorded bucket policy, checking it is the bucket's.
func policyOf(t *testing.T, m *mockaws.Monitor) []mocktest.Statement {
	t.Helper()
	in := named(t, m, tPolicy, "chem-policy")
	if in["bucket"] != bucketName {
		t.Errorf("policy bucket = %v, want %s", in["bucket"], bucketName)
	}
	return mocktest.Policy(t, in["policy"])
}

// isEveryone reports whether a Principal names any principal ("*", which reads as {"AWS": "*"}).
func isEveryone(p mocktest.Principal) bool {
	return slices.Contains(strs(p["AWS"]), "*")
}

func TestBucketPolicy(t *testing.T) {
	m, _ := mustRun(t, validArgs(t))
	sts := policyOf(t, m)
	if len(sts) != 2 {
		t.Fatalf("policy has %d statements, want 2 (TLS deny, endpoint read): %+v", len(sts), sts)
	}

	// TLS only, for everything in and about the bucket.
	deny := sts[0]
	if deny.Sid != SidDenyInsecureTransport || deny.Effect != "Deny" || !isEveryone(deny.Principal) {
		t.Errorf("first statement = %+v, want a Deny to everyone", deny)
	}
	if !slices.Equal(strs(deny.Action), []string{"s3:*"}) {
		t.Errorf("TLS deny actions = %v, want s3:*", deny.Action)
	}
	if res := strs(deny.Resource); !slices.Equal(res, []string{bucketArn, bucketArn + "/*"}) {
		t.Errorf("TLS deny resources = %v, want the bucket and its objects", res)
	}
	if !reflect.DeepEqual(deny.Condition, map[string]map[string]any{"Bool": {"aws:SecureTransport": "false"}}) {
		t.Errorf("TLS deny condition = %v, want Bool aws:SecureTransport false", deny.Condition)
	}

	// Every Allow to everyone is GetObject on objects, and only through the endpoint.
	allows := 0
	for _, st := range sts {
		if st.Effect != "Allow" {
			continue
		}
		allows++
		if !isEveryone(st.Principal) {
			t.Errorf("%s: Allow to %v; the deploying principal keeps access through IAM, no named grants", st.Sid, st.Principal)
		}
		if !slices.Equal(strs(st.Action), []string{"s3:GetObject"}) {
			t.Errorf("%s: Allow actions %v, want only s3:GetObject", st.Sid, st.Action)
		}
		if !slices.Equal(strs(st.Resource), []string{bucketArn + "/*"}) {
			t.Errorf("%s: Allow resources %v, want only the objects %s/*", st.Sid, st.Resource, bucketArn)
		}
		want := map[string]map[string]any{"StringEquals": {"aws:SourceVpce": endpointID}}
		if !reflect.DeepEqual(st.Condition, want) {
			t.Errorf("%s: condition %v, want exactly %v (a fixed endpoint id keeps the policy non-public)", st.Sid, st.Condition, want)
		}
	}
	if allows != 1 || sts[1].Sid != SidReadThroughEndpoint {
		t.Errorf("policy has %d Allow statements, want one, %s", allows, SidReadThroughEndpoint)
	}
}

func TestAgentObject(t *testing.T) {
	args := validArgs(t)
	m, got := mustRun(t, args)
	key := "agent/sandbox-node-" + args.AgentSHA256

	objs := m.ByType(tObject)
	if len(objs) != 1 {
		t.Fatalf("objects = %d, want 1", len(objs))
	}
	obj := mockaws.Plain(objs[0].Inputs)
	if obj["key"] != key || obj["bucket"] != bucketName {
		t.Errorf("object %v in %v, want %s in %s", obj["key"], obj["bucket"], key, bucketName)
	}
	if obj["contentType"] != "application/octet-stream" {
		t.Errorf("contentType = %v, want application/octet-stream", obj["contentType"])
	}
	src := objs[0].Inputs["source"]
	if !src.IsAsset() || src.AssetValue().Path != args.AgentPath {
		t.Errorf("source = %v, want the file asset %s", src, args.AgentPath)
	}
	if obj["sourceHash"] != args.AgentSHA256 {
		t.Errorf("sourceHash = %v, want the agent's SHA-256 (no ETag-based diff)", obj["sourceHash"])
	}
	if obj["checksumAlgorithm"] != "SHA256" {
		t.Errorf("checksumAlgorithm = %v, want SHA256", obj["checksumAlgorithm"])
	}
	// Anonymous GETs cannot read SSE-KMS objects: the one object fetched without credentials
	// must be SSE-S3.
	if obj["serverSideEncryption"] != "AES256" {
		t.Errorf("serverSideEncryption = %v, want AES256", obj["serverSideEncryption"])
	}
	if _, set := obj["kmsKeyId"]; set {
		t.Errorf("kmsKeyId = %v, want none on the anonymously fetched agent", obj["kmsKeyId"])
	}
	if !objs[0].RetainOnDelete {
		t.Errorf("agent object is not retained on delete: a rollback to the previous launch template version would fetch a deleted build")
	}
	if _, set := obj["acl"]; set {
		t.Errorf("acl = %v, want none (ACLs are disabled)", obj["acl"])
	}

	want := outputs{
		BucketName:  bucketName,
		BucketArn:   bucketArn,
		AgentKey:    key,
		AgentURL:    "https://" + bucketName + ".s3." + region + ".amazonaws.com/" + key,
		AgentSHA256: args.AgentSHA256,
	}
	if got != want {
		t.Errorf("outputs:\n got  %+v\n want %+v", got, want)
	}
}

// TestAgentKeyIsContentAddressed checks that the same build gives byte-identical object inputs
// (so no diff) and a new build gives a new key.
func TestAgentKeyIsContentAddressed(t *testing.T) {
	args := validArgs(t)
	m1, out1 := mustRun(t, args)
	m2, out2 := mustRun(t, args)
	o1, o2 := m1.ByType(tObject)[0].Inputs, m2.ByType(tObject)[0].Inputs
	if !o1.DeepEquals(o2) || out1 != out2 {
		t.Errorf("the same build gave different object inputs or outputs:\n %v\n %v", o1, o2)
	}

	path, sum := agentFile(t, "#!agent build 2\n")
	args2 := validArgs(t)
	args2.AgentPath, args2.AgentSHA256 = path, sum
	m3, out3 := mustRun(t, args2)
	if out3.AgentKey == out1.AgentKey || out3.AgentKey != "agent/sandbox-node-"+sum {
		t.Errorf("new build key = %s, old %s; want agent/sandbox-node-%s", out3.AgentKey, out1.AgentKey, sum)
	}
	if got := mockaws.Plain(m3.ByType(tObject)[0].Inputs)["sourceHash"]; got != sum {
		t.Errorf("new build sourceHash = %v, want %s", got, sum)
	}
}

func TestChildNamesAndParents(t *testing.T) {
	m, _ := mustRun(t, validArgs(t))
	mocktest.Children(t, m, tComponent, "chem", []string{
		tBucket + " chem-bucket",
		tPublicAccess + " chem-public-access-block",
		tOwnership + " chem-ownership",
		tVersioning + " chem-versioning",
		tEncryption + " chem-encryption",
		tPolicy + " chem-policy",
		tObject + " chem-agent",
		tBucket + " chem-logs-bucket",
		tPublicAccess + " chem-logs-public-access-block",
		tOwnership + " chem-logs-ownership",
		tVersioning + " chem-logs-versioning",
		tEncryption + " chem-logs-encryption",
		tPolicy + " chem-logs-policy",
		tLifecycle + " chem-logs-lifecycle",
		tLogging + " chem-access-logging",
	})
}

// TestInvalidArgs checks that each bad argument is refused with an error naming its field,
// before anything (not even the component) is registered.
func TestInvalidArgs(t *testing.T) {
	dir := t.TempDir()
	_, otherSum := agentFile(t, "another build")
	valid := func(edit func(*BucketArgs)) *BucketArgs {
		a := validArgs(t)
		edit(a)
		return a
	}
	tests := []struct {
		name  string
		args  *BucketArgs
		field string
	}{
		{"nil args", nil, "BucketArgs"},
		{"empty department", valid(func(a *BucketArgs) { a.Department = "" }), "Department"},
		{"one-letter department", valid(func(a *BucketArgs) { a.Department = "c" }), "Department"},
		{"uppercase department", valid(func(a *BucketArgs) { a.Department = "Chem" }), "Department"},
		{"department with a dot", valid(func(a *BucketArgs) { a.Department = "chem.lab" }), "Department"},
		{"department of 33", valid(func(a *BucketArgs) { a.Department = strings.Repeat("a", 33) }), "Department"},
		{"nil key", valid(func(a *BucketArgs) { a.KMSKeyArn = nil }), "KMSKeyArn"},
		{"nil endpoint", valid(func(a *BucketArgs) { a.S3EndpointID = nil }), "S3EndpointID"},
		{"empty path", valid(func(a *BucketArgs) { a.AgentPath = "" }), "AgentPath"},
		{"missing file", valid(func(a *BucketArgs) { a.AgentPath = filepath.Join(dir, "nope") }), "AgentPath"},
		{"directory", valid(func(a *BucketArgs) { a.AgentPath = dir }), "AgentPath"},
		{"empty sha", valid(func(a *BucketArgs) { a.AgentSHA256 = "" }), "AgentSHA256"},
		{"uppercase sha", valid(func(a *BucketArgs) { a.AgentSHA256 = strings.ToUpper(a.AgentSHA256) }), "AgentSHA256"},
		{"short sha", valid(func(a *BucketArgs) { a.AgentSHA256 = a.AgentSHA256[:63] }), "AgentSHA256"},
		{"sha of another build", valid(func(a *BucketArgs) { a.AgentSHA256 = otherSum }), "AgentSHA256"},
		{"no log retention", valid(func(a *BucketArgs) { a.AccessLogRetentionDays = 0 }), "AccessLogRetentionDays"},
		{"negative log retention", valid(func(a *BucketArgs) { a.AccessLogRetentionDays = -1 }), "AccessLogRetentionDays"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _, b, err := run(t, tt.args)
			mocktest.Refused(t, m, err, `artifacts bucket "chem"`, tt.field)
			if b != nil {
				t.Errorf("NewBucket returned a bucket with its error")
			}
		})
	}
}

func TestInvalidArgsAllReported(t *testing.T) {
	_, _, _, err := run(t, &BucketArgs{Department: "X"})
	mocktest.ReportsAll(t, err, "Department", "KMSKeyArn", "S3EndpointID", "AgentPath", "AgentSHA256", "AccessLogRetentionDays")
}
