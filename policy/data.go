package policy

import (
	"fmt"
	"strings"
)

const (
	typeSecret          = "aws:secretsmanager/secret:Secret"
	typeBucketPAB       = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
	typeBucketSSE       = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
	typeBucketVersion   = "aws:s3/bucketVersioningV2:BucketVersioningV2"
	typeBucketOwnership = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
	typeVPCEndpoint     = "aws:ec2/vpcEndpoint:VpcEndpoint"
)

func checkKMSRotation(p *Plan) []Finding {
	return p.eachOf(typeKMSKey, func(k Resource) string {
		if on, _ := k.Inputs["enableKeyRotation"].(bool); !on {
			return "enableKeyRotation is not true"
		}
		return ""
	})
}

func checkKMSDeletionWindow(p *Plan) []Finding {
	return p.eachOf(typeKMSKey, func(k Resource) string {
		if d, _ := num(k.Inputs["deletionWindowInDays"]); d < 30 {
			return fmt.Sprintf("deletionWindowInDays %d; want 30", d)
		}
		return ""
	})
}

func checkKMSAdmin(p *Plan) []Finding {
	var out []Finding
	for _, d := range p.policyDocs(map[string]string{typeKMSKey: "policy"}) {
		for i, s := range d.stmts {
			if s.Effect != "Allow" {
				continue
			}
			wide := false
			for _, a := range oneOrMany(s.Action) {
				wide = wide || a == "*" || a == "kms:*"
			}
			if !wide {
				continue
			}
			for _, pr := range oneOrMany(obj(s.Principal)["AWS"]) {
				if !strings.HasPrefix(pr, "arn:aws") || !strings.HasSuffix(pr, ":root") {
					out = append(out, finding(d.r, "%s grants kms:* to %s; only the account root may hold it", s.name(i), pr))
				}
			}
			if obj(s.Principal) == nil || obj(s.Principal)["Service"] != nil {
				out = append(out, finding(d.r, "%s grants kms:* to %v; only the account root may hold it", s.name(i), s.Principal))
			}
		}
	}
	return out
}

func checkSecretKey(p *Plan) []Finding {
	keys := p.departmentKeys()
	return p.eachOf(typeSecret, func(s Resource) string {
		if k := str(s.Inputs["kmsKeyId"]); !keys[k] {
			return fmt.Sprintf("kmsKeyId %q; want the department key (the default aws/secretsmanager key is shared by the whole account)", k)
		}
		return ""
	})
}

func checkSecretRecovery(p *Plan) []Finding {
	return p.eachOf(typeSecret, func(s Resource) string {
		if d, ok := num(s.Inputs["recoveryWindowInDays"]); ok && d < 7 {
			return fmt.Sprintf("recoveryWindowInDays %d; want 7 to 30 (0 deletes at once)", d)
		}
		return ""
	})
}

// bucketSettings returns, per bucket name, the resource of the given type that configures it.
func (p *Plan) bucketSettings(typ string) map[string]Resource {
	out := map[string]Resource{}
	for _, r := range p.byType(typ) {
		out[str(r.Inputs["bucket"])] = r
	}
	return out
}

// forEachBucket calls check with each bucket and its resource of type typ; a bucket without one
// is a finding.
func (p *Plan) forEachBucket(typ, missing string, check func(b, setting Resource) []Finding) []Finding {
	var out []Finding
	settings := p.bucketSettings(typ)
	for _, b := range p.byType(typeBucket) {
		s, ok := settings[b.ID]
		if !ok {
			out = append(out, finding(b, "%s", missing))
			continue
		}
		out = append(out, check(b, s)...)
	}
	return out
}

func checkS3PublicAccess(p *Plan) []Finding {
	return p.forEachBucket(typeBucketPAB, "no public access block", func(_, pab Resource) []Finding {
		var out []Finding
		for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
			if on, _ := pab.Inputs[k].(bool); !on {
				out = append(out, finding(pab, "%s is not true", k))
			}
		}
		return out
	})
}

func checkS3Encryption(p *Plan) []Finding {
	keys := p.departmentKeys()
	// A server access log target cannot use SSE-KMS (S3 would deliver nothing);
	// artifacts-access-logs holds it to SSE-S3 instead.
	targets := p.logTargets()
	return p.forEachBucket(typeBucketSSE, "no default encryption configuration", func(b, sse Resource) []Finding {
		if targets[b.ID] {
			return nil
		}
		var out []Finding
		for _, r := range list(sse.Inputs["rules"]) {
			d := obj(obj(r)["applyServerSideEncryptionByDefault"])
			if str(d["sseAlgorithm"]) != "aws:kms" || !keys[str(d["kmsMasterKeyId"])] {
				out = append(out, finding(sse, "default encryption %s with key %q; want aws:kms with the department key", str(d["sseAlgorithm"]), str(d["kmsMasterKeyId"])))
			}
		}
		if len(list(sse.Inputs["rules"])) == 0 {
			out = append(out, finding(sse, "no encryption rule"))
		}
		return out
	})
}

func checkS3Versioning(p *Plan) []Finding {
	return p.forEachBucket(typeBucketVersion, "no versioning configuration", func(_, v Resource) []Finding {
		if s := str(obj(v.Inputs["versioningConfiguration"])["status"]); s != "Enabled" {
			return []Finding{finding(v, "versioning status %q; want Enabled", s)}
		}
		return nil
	})
}

func checkS3Ownership(p *Plan) []Finding {
	return p.forEachBucket(typeBucketOwnership, "no ownership controls (ACLs stay on)", func(_, o Resource) []Finding {
		if s := str(obj(o.Inputs["rule"])["objectOwnership"]); s != "BucketOwnerEnforced" {
			return []Finding{finding(o, "objectOwnership %q; want BucketOwnerEnforced", s)}
		}
		return nil
	})
}

// bucketPolicies returns each bucket's policy statements by bucket name.
func (p *Plan) bucketPolicies() map[string]policyDoc {
	out := map[string]policyDoc{}
	for _, d := range p.policyDocs(map[string]string{typeBucketPolicy: "policy"}) {
		out[str(d.r.Inputs["bucket"])] = d
	}
	return out
}

func checkS3TLS(p *Plan) []Finding {
	var out []Finding
	policies := p.bucketPolicies()
	for _, b := range p.byType(typeBucket) {
		denies := false
		for _, s := range policies[b.ID].stmts {
			if s.Effect == "Deny" && str(obj(s.Condition["Bool"])["aws:SecureTransport"]) == "false" {
				denies = true
			}
		}
		if !denies {
			out = append(out, finding(b, "no bucket policy statement denies requests with aws:SecureTransport false"))
		}
	}
	return out
}

func checkS3VPCE(p *Plan) []Finding {
	var out []Finding
	endpoints := map[string]bool{}
	for _, e := range p.byType(typeVPCEndpoint) {
		endpoints[e.ID] = true
	}
	for _, d := range p.policyDocs(map[string]string{typeBucketPolicy: "policy"}) {
		for i, s := range d.stmts {
			if s.Effect != "Allow" || !publicPrincipal(s.Principal) {
				continue
			}
			vpce := str(obj(s.Condition["StringEquals"])["aws:SourceVpce"])
			if !endpoints[vpce] {
				out = append(out, finding(d.r, "%s allows anyone, with aws:SourceVpce %q; want one of the plan's VPC endpoints", s.name(i), vpce))
			}
		}
	}
	return out
}
