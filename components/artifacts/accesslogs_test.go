package artifacts

import (
	"reflect"
	"slices"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/mockaws"
	"github.com/llm-sandbox/llm-sandbox/internal/mockaws/mocktest"
)

// TestAccessLoggingIntoLogBucket checks that the artifacts bucket logs into the separate log
// bucket, under the prefix the log bucket's policy admits.
func TestAccessLoggingIntoLogBucket(t *testing.T) {
	m, _ := mustRun(t, validArgs(t))
	lg := only(t, m, tLogging)
	if lg["bucket"] != bucketName || lg["targetBucket"] != logBucketName || lg["targetPrefix"] != AccessLogPrefix {
		t.Errorf("logging = %v, want %s into %s under %s", lg, bucketName, logBucketName, AccessLogPrefix)
	}
	if _, set := lg["targetGrants"]; set {
		t.Errorf("targetGrants = %v; the log bucket enforces bucket-owner ownership, so delivery is granted by its policy", lg["targetGrants"])
	}
}

// TestLogBucketEncryptionIsSSES3 checks the log bucket's default encryption: S3 delivers
// server access logs only to SSE-S3 target buckets.
func TestLogBucketEncryptionIsSSES3(t *testing.T) {
	m, _ := mustRun(t, validArgs(t))
	enc := named(t, m, tEncryption, "chem-logs-encryption")
	rules := mocktest.List(t, enc["rules"], "log bucket encryption rules")
	if enc["bucket"] != logBucketName || len(rules) != 1 {
		t.Fatalf("log bucket encryption = %v, want one rule on %s", enc, logBucketName)
	}
	def := mocktest.Obj(t, mocktest.Obj(t, rules[0], "rule")["applyServerSideEncryptionByDefault"], "default")
	if def["sseAlgorithm"] != "AES256" {
		t.Errorf("log bucket sseAlgorithm = %v, want AES256 (SSE-KMS targets get no logs)", def["sseAlgorithm"])
	}
	if _, set := def["kmsMasterKeyId"]; set {
		t.Errorf("log bucket kmsMasterKeyId = %v, want none", def["kmsMasterKeyId"])
	}
}

func TestLogBucketPolicy(t *testing.T) {
	m, _ := mustRun(t, validArgs(t))
	in := named(t, m, tPolicy, "chem-logs-policy")
	if in["bucket"] != logBucketName {
		t.Errorf("log bucket policy bucket = %v, want %s", in["bucket"], logBucketName)
	}
	sts := mocktest.Policy(t, in["policy"])
	if len(sts) != 2 {
		t.Fatalf("log bucket policy has %d statements, want 2 (TLS deny, log delivery): %+v", len(sts), sts)
	}
	deny := sts[0]
	if deny.Sid != SidDenyInsecureTransport || deny.Effect != "Deny" || !isEveryone(deny.Principal) ||
		!slices.Equal(strs(deny.Resource), []string{logBucketArn, logBucketArn + "/*"}) ||
		!reflect.DeepEqual(deny.Condition, map[string]map[string]any{"Bool": {"aws:SecureTransport": "false"}}) {
		t.Errorf("first statement = %+v, want a TLS-only Deny to everyone on the log bucket", deny)
	}
	allow := sts[1]
	if allow.Sid != SidAllowAccessLogDelivery || allow.Effect != "Allow" {
		t.Errorf("second statement = %+v, want the %s Allow", allow, SidAllowAccessLogDelivery)
	}
	if len(allow.Principal) != 1 || !slices.Equal(strs(allow.Principal["Service"]), []string{LoggingServicePrincipal}) {
		t.Errorf("log delivery principal = %v, want only the service %s", allow.Principal, LoggingServicePrincipal)
	}
	if !slices.Equal(strs(allow.Action), []string{"s3:PutObject"}) {
		t.Errorf("log delivery actions = %v, want only s3:PutObject", allow.Action)
	}
	if !slices.Equal(strs(allow.Resource), []string{logBucketArn + "/" + AccessLogPrefix + "*"}) {
		t.Errorf("log delivery resources = %v, want only %s/%s*", allow.Resource, logBucketArn, AccessLogPrefix)
	}
	want := map[string]map[string]any{
		"ArnLike":      {"aws:SourceArn": bucketArn},
		"StringEquals": {"aws:SourceAccount": mockaws.DefaultAccountID},
	}
	if !reflect.DeepEqual(allow.Condition, want) {
		t.Errorf("log delivery condition = %v, want %v (only this bucket of this account)", allow.Condition, want)
	}
}

// TestLogRetention checks that logs and their old versions expire after the retention given.
func TestLogRetention(t *testing.T) {
	for _, days := range []int{90, 365} {
		args := validArgs(t)
		args.AccessLogRetentionDays = days
		m, _ := mustRun(t, args)
		lc := only(t, m, tLifecycle)
		rules := mocktest.List(t, lc["rules"], "lifecycle rules")
		if lc["bucket"] != logBucketName || len(rules) != 1 {
			t.Fatalf("lifecycle = %v, want one rule on %s", lc, logBucketName)
		}
		rule := mocktest.Obj(t, rules[0], "lifecycle rule")
		if rule["status"] != "Enabled" {
			t.Errorf("lifecycle status = %v, want Enabled", rule["status"])
		}
		if got := mocktest.Obj(t, rule["expiration"], "expiration")["days"]; got != float64(days) {
			t.Errorf("expiration days = %v, want %d", got, days)
		}
		if got := mocktest.Obj(t, rule["noncurrentVersionExpiration"], "noncurrentVersionExpiration")["noncurrentDays"]; got != float64(days) {
			t.Errorf("noncurrent expiration days = %v, want %d", got, days)
		}
		if f := mocktest.Obj(t, rule["filter"], "filter"); len(f) != 0 {
			t.Errorf("filter = %v, want the whole bucket", f)
		}
	}
}
