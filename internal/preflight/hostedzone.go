package preflight

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// recordsAtHostname is how many record sets the record check reads, starting at
// access.hostname: Route 53 lists a zone's records by name, then type, so the ones at the
// hostname come first and A and CNAME, the types that block the alias, sort before the rest.
const recordsAtHostname = 20

// checkHostedZone checks the Route 53 hosted zone of access.hostedZoneId: it exists, holds
// access.hostname, is public when the deploy requests the certificate itself, and has no
// record at the hostname that the alias record could not be created over.
func (r *run) checkHostedZone() []Result {
	const name = "hosted zone"
	acc := r.spec.Access
	zoneID, host := acc.HostedZoneID, acc.Hostname
	ctx, cancel := r.call()
	defer cancel()
	out, err := r.c.Route53.GetHostedZone(ctx, &route53.GetHostedZoneInput{Id: aws.String(zoneID)})
	switch {
	case apiCode(err) == "NoSuchHostedZone":
		return []Result{{Name: name, Status: Fail,
			Detail: fmt.Sprintf("access.hostedZoneId %s: Route 53 has no hosted zone with this id in this account", zoneID),
			Advice: fmt.Sprintf("check access.hostedZoneId against `aws route53 list-hosted-zones-by-name --dns-name %s` (the id after /hostedzone/), or create a public hosted zone for the domain of access.hostname %s and delegate the domain to it",
				parentDomain(host), host)}}
	case err != nil:
		return []Result{callFailed(name, "route53:GetHostedZone", err)}
	case out.HostedZone == nil:
		return []Result{{Name: name, Status: Fail, Detail: "Route 53 returned no hosted zone for " + zoneID,
			Advice: "run preflight again; if it persists, check access.hostedZoneId in the Route 53 console"}}
	}
	zone := out.HostedZone
	zoneName := strings.TrimSuffix(aws.ToString(zone.Name), ".")
	private := zone.Config != nil && zone.Config.PrivateZone
	kind := "public"
	if private {
		kind = "private"
	}
	about := fmt.Sprintf("%s is the %s hosted zone %s", zoneID, kind, zoneName)

	if !InZone(zoneName, host) {
		return []Result{{Name: name, Status: Fail,
			Detail: fmt.Sprintf("access.hostname %s is not in the %s hosted zone %s (%s): the zone holds only %s and names that end in .%s",
				host, kind, zoneName, zoneID, zoneName, zoneName),
			Advice: fmt.Sprintf("set access.hostedZoneId to the zone of %s (`aws route53 list-hosted-zones-by-name --dns-name %s`), or set access.hostname to a name in %s",
				host, parentDomain(host), zoneName)}}
	}
	if private && acc.ManagedCertificate() {
		return []Result{{Name: name, Status: Fail,
			Detail: fmt.Sprintf("%s, and access.certificateArn is empty, so the deploy requests a certificate for %s validated by a DNS record in this zone: "+
				"ACM looks that record up on the public internet, which cannot see a private zone, so the certificate is never issued and the deploy waits until it times out",
				about, host),
			Advice: fmt.Sprintf("set access.hostedZoneId to a public hosted zone that holds %s, or set access.certificateArn to an issued ACM certificate for %s in %s (the deploy then only creates the alias record in this zone)",
				host, host, r.region)}}
	}
	detail := fmt.Sprintf("%s; access.hostname %s is in it", about, host)
	if private {
		detail += " (a private zone answers only inside the VPCs associated with it)"
	}
	return []Result{{Name: name, Status: OK, Detail: detail}, r.hostnameRecord(zoneID, zoneName, host)}
}

// hostnameRecord looks for a record the deploy's alias A record for host cannot be created
// over: an A record of any other kind, or a CNAME (which no other type may share a name with).
// Either fails the deploy, so it fails the check. An alias A record already there is most
// likely the stack's own, from an earlier deploy.
func (r *run) hostnameRecord(zoneID, zoneName, host string) Result {
	const name = "hosted zone record"
	ctx, cancel := r.call()
	defer cancel()
	out, err := r.c.Route53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
		HostedZoneId:    aws.String(zoneID),
		StartRecordName: aws.String(host),
		MaxItems:        aws.Int32(recordsAtHostname),
	})
	if err != nil {
		return callFailed(name, "route53:ListResourceRecordSets", err)
	}
	var blocking, aliases []string
	for _, rs := range out.ResourceRecordSets {
		if !sameName(aws.ToString(rs.Name), host) || (rs.Type != types.RRTypeA && rs.Type != types.RRTypeCname) {
			continue
		}
		switch {
		case rs.AliasTarget != nil && rs.Type == types.RRTypeA:
			aliases = append(aliases, strings.TrimSuffix(aws.ToString(rs.AliasTarget.DNSName), "."))
		case rs.AliasTarget != nil:
			blocking = append(blocking, fmt.Sprintf("%s alias to %s", rs.Type, strings.TrimSuffix(aws.ToString(rs.AliasTarget.DNSName), ".")))
		default:
			var values []string
			for _, v := range rs.ResourceRecords {
				values = append(values, aws.ToString(v.Value))
			}
			blocking = append(blocking, fmt.Sprintf("%s %s", rs.Type, listOrNone(values)))
		}
	}
	switch {
	case len(blocking) > 0:
		// Never the stack's own: it makes only an alias A record here.
		return Result{Name: name, Status: Fail,
			Detail: fmt.Sprintf("%s already holds a record for access.hostname %s (%s): the deploy creates an alias A record there and does not overwrite another record, so it would fail",
				zoneName, host, strings.Join(blocking, "; ")),
			Advice: fmt.Sprintf("delete that record from %s (%s) if nothing needs it any more, or set access.hostname to another name in %s", zoneName, zoneID, zoneName)}
	case len(aliases) > 0:
		return Result{Name: name, Status: OK,
			Detail: fmt.Sprintf("%s already holds an alias A record for %s to %s: this stack's own after a deploy (the deploy would fail on another's)",
				zoneName, host, strings.Join(aliases, ", "))}
	}
	return Result{Name: name, Status: OK,
		Detail: fmt.Sprintf("%s holds no A or CNAME record for %s; the deploy creates its alias A record to the load balancer", zoneName, host)}
}

// InZone reports whether a hosted zone for the domain zone can hold host: host is zone itself or
// ends in "." + zone (case-insensitive, trailing dots ignored). "chem.example.edu" holds
// "llm.chem.example.edu" and "chem.example.edu", not "xchem.example.edu".
func InZone(zone, host string) bool {
	zone = strings.ToLower(strings.TrimSuffix(zone, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if zone == "" || host == "" {
		return false
	}
	return host == zone || strings.HasSuffix(host, "."+zone)
}

// sameName compares DNS names as Route 53 returns them (lower case, a trailing dot).
func sameName(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// parentDomain is host without its first label, the likeliest name of its zone.
func parentDomain(host string) string {
	if _, parent, ok := strings.Cut(host, "."); ok && strings.Contains(parent, ".") {
		return parent
	}
	return host
}
