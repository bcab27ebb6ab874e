package policy

import "slices"

const (
	typeBucketLogging   = "aws:s3/bucketLoggingV2:BucketLoggingV2"
	typeBucketLifecycle = "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"
)

// s3LoggingPrincipal is the service that delivers S3 server access logs.
const s3LoggingPrincipal = "logging.s3.amazonaws.com"

// logTargets returns the names of the buckets that receive another bucket's server access logs.
func (p *Plan) logTargets() map[string]bool {
	out := map[string]bool{}
	for _, l := range p.byType(typeBucketLogging) {
		if t, b := str(l.Inputs["targetBucket"]), str(l.Inputs["bucket"]); t != "" && t != b {
			out[t] = true
		}
	}
	return out
}

// flowLogRetention returns the longest retention of the log groups the plan's flow logs write
// to, in days, and whether there is one.
func (p *Plan) flowLogRetention() (int, bool) {
	groups := map[string]Resource{}
	for _, g := range p.byType(typeLogGroup) {
		groups[g.ARN] = g
	}
	longest, found := 0, false
	for _, f := range p.byType(typeFlowLog) {
		if g, ok := groups[str(f.Inputs["logDestination"])]; ok {
			d, _ := num(g.Inputs["retentionInDays"])
			longest, found = max(longest, d), true
		}
	}
	return longest, found
}

// checkAccessLogs: every bucket but a log target sends its server access logs to another
// bucket of the plan, and that bucket is one S3 can deliver to and that keeps them safe and as
// long as the flow logs.
func checkAccessLogs(p *Plan) []Finding {
	var out []Finding
	buckets := map[string]Resource{}
	for _, b := range p.byType(typeBucket) {
		buckets[b.ID] = b
	}
	targets := p.logTargets()
	logging := p.bucketSettings(typeBucketLogging)
	sse := p.bucketSettings(typeBucketSSE)
	lifecycles := p.bucketSettings(typeBucketLifecycle)
	policies := p.bucketPolicies()
	flowDays, flowLogged := p.flowLogRetention()

	for _, src := range p.byType(typeBucket) {
		if targets[src.ID] {
			continue
		}
		l, ok := logging[src.ID]
		if !ok {
			out = append(out, finding(src, "no server access logging: who fetched which object is recorded nowhere"))
			continue
		}
		dst, ok := buckets[str(l.Inputs["targetBucket"])]
		if !ok || dst.ID == src.ID {
			out = append(out, finding(l, "targetBucket %q; want a separate bucket of the plan", str(l.Inputs["targetBucket"])))
			continue
		}
		prefix := str(l.Inputs["targetPrefix"])

		// S3 delivers no server access logs to a bucket with SSE-KMS default encryption.
		if s, ok := sse[dst.ID]; !ok {
			out = append(out, finding(dst, "log bucket has no default encryption configuration; want SSE-S3 (AES256)"))
		} else {
			for _, r := range list(s.Inputs["rules"]) {
				if a := str(obj(obj(r)["applyServerSideEncryptionByDefault"])["sseAlgorithm"]); a != "AES256" {
					out = append(out, finding(s, "log bucket default encryption %q; want AES256 (S3 delivers no access logs to an SSE-KMS bucket)", a))
				}
			}
		}

		if src.Inputs["forceDestroy"] != dst.Inputs["forceDestroy"] {
			out = append(out, finding(dst, "log bucket forceDestroy %v, the bucket it logs %v; want the same deletion protection", dst.Inputs["forceDestroy"], src.Inputs["forceDestroy"]))
		}

		out = append(out, checkLogDelivery(policies[dst.ID], dst, src, prefix)...)

		days, rule := 0, false
		if lc, ok := lifecycles[dst.ID]; ok {
			for _, r := range list(lc.Inputs["rules"]) {
				r := obj(r)
				if str(r["status"]) != "Enabled" || len(obj(r["filter"])) != 0 || str(r["prefix"]) != "" {
					continue
				}
				if d, ok := num(obj(r["expiration"])["days"]); ok && d > 0 {
					days, rule = d, true
				}
			}
		}
		switch {
		case !rule:
			out = append(out, finding(dst, "no enabled lifecycle rule expires the whole log bucket after a number of days"))
		case flowLogged && days < flowDays:
			out = append(out, finding(dst, "access logs expire after %d days, the flow logs after %d; want at least as long", days, flowDays))
		}
	}
	return out
}

// checkLogDelivery: the log bucket's policy denies plain HTTP (s3-tls-only checks that) and
// allows nothing but the S3 logging service's PutObject under the prefix, for the source bucket
// of one account.
func checkLogDelivery(d policyDoc, dst, src Resource, prefix string) []Finding {
	if d.r.Type == "" {
		return []Finding{finding(dst, "log bucket has no policy admitting the S3 logging service")}
	}
	var out []Finding
	delivers := false
	for i, s := range d.stmts {
		if s.Effect != "Allow" {
			continue
		}
		pr := obj(s.Principal)
		if len(pr) != 1 || !slices.Equal(oneOrMany(pr["Service"]), []string{s3LoggingPrincipal}) {
			out = append(out, finding(d.r, "%s allows %v; a log bucket admits only the service %s", s.name(i), s.Principal, s3LoggingPrincipal))
			continue
		}
		if !slices.Equal(oneOrMany(s.Action), []string{"s3:PutObject"}) {
			out = append(out, finding(d.r, "%s allows %v to the logging service; want only s3:PutObject", s.name(i), s.Action))
		}
		want := dst.ARN + "/" + prefix + "*"
		if !slices.Equal(oneOrMany(s.Resource), []string{want}) {
			out = append(out, finding(d.r, "%s allows writes to %v; want only %s", s.name(i), s.Resource, want))
		}
		arn := str(obj(s.Condition["ArnLike"])["aws:SourceArn"]) + str(obj(s.Condition["ArnEquals"])["aws:SourceArn"])
		account := str(obj(s.Condition["StringEquals"])["aws:SourceAccount"])
		if arn != src.ARN || account == "" {
			out = append(out, finding(d.r, "%s conditions aws:SourceArn %q, aws:SourceAccount %q; want the logged bucket %s and the account", s.name(i), arn, account, src.ARN))
			continue
		}
		delivers = true
	}
	if !delivers {
		out = append(out, finding(d.r, "no statement lets %s deliver the logs of %s", s3LoggingPrincipal, src.ID))
	}
	return out
}
