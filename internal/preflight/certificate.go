package preflight

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/acm/types"
)

// RenewWithin is how close to its expiry a certificate draws a warning.
const RenewWithin = 30 * 24 * time.Hour

// checkCertificate checks the HTTPS listener's certificate: it exists in the region, is
// issued and current, and covers access.hostname when one is set.
func (r *run) checkCertificate() []Result {
	const name = "certificate"
	certARN := r.spec.Access.CertificateARN
	if a, err := arn.Parse(certARN); err == nil && a.Region != r.region {
		return []Result{{Name: name, Status: Fail,
			Detail: fmt.Sprintf("%s is in %s; a load balancer in %s needs a certificate from ACM in its own region", certARN, a.Region, r.region),
			Advice: fmt.Sprintf("request or import the certificate in %s and set access.certificateArn to it", r.region)}}
	}
	ctx, cancel := r.call()
	defer cancel()
	out, err := r.c.ACM.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(certARN)})
	switch {
	case apiCode(err) == "ResourceNotFoundException":
		return []Result{{Name: name, Status: Fail,
			Detail: fmt.Sprintf("%s does not exist in this account in %s", certARN, r.region),
			Advice: "check access.certificateArn against `aws acm list-certificates --region " + r.region + "`, or request the certificate"}}
	case err != nil:
		return []Result{callFailed(name, "acm:DescribeCertificate", err)}
	case out.Certificate == nil:
		return []Result{{Name: name, Status: Fail, Detail: "ACM returned no certificate for " + certARN,
			Advice: "run preflight again; if it persists, check the ARN in the ACM console"}}
	}
	cert := out.Certificate
	results := []Result{r.certificateState(cert)}
	if host := r.spec.Access.Hostname; host != "" {
		results = append(results, hostnameCoverage(cert, host, r.region))
	}
	return results
}

// certificateState judges the status and the validity period.
func (r *run) certificateState(cert *types.CertificateDetail) Result {
	const name = "certificate"
	arnStr := aws.ToString(cert.CertificateArn)
	now := r.opts.Now()
	names := strings.Join(certNames(cert), ", ")
	expired := cert.Status == types.CertificateStatusExpired || (cert.NotAfter != nil && !now.Before(*cert.NotAfter))
	switch {
	case expired:
		when := "its validity period is over"
		if cert.NotAfter != nil {
			when = "it expired on " + cert.NotAfter.UTC().Format(time.DateTime) + " UTC"
		}
		return Result{Name: name, Status: Fail,
			Detail: fmt.Sprintf("%s (%s) is expired: %s", arnStr, names, when),
			Advice: renewAdvice(cert, r.region)}
	case cert.Status == types.CertificateStatusPendingValidation:
		return Result{Name: name, Status: Fail,
			Detail: fmt.Sprintf("%s (%s) is PENDING_VALIDATION: ACM has not issued it yet", arnStr, names),
			Advice: validationAdvice(cert)}
	case cert.Status != types.CertificateStatusIssued:
		return Result{Name: name, Status: Fail,
			Detail: fmt.Sprintf("%s (%s) is %s, not ISSUED: a listener cannot use it", arnStr, names, cert.Status),
			Advice: fmt.Sprintf("request a new certificate in %s (`aws acm request-certificate --validation-method DNS ...`), validate it, and set access.certificateArn to it", r.region)}
	case cert.NotAfter != nil && cert.NotAfter.Sub(now) < RenewWithin:
		return Result{Name: name, Status: Warn,
			Detail: fmt.Sprintf("%s (%s) is ISSUED but expires on %s UTC, in %d day(s)", arnStr, names,
				cert.NotAfter.UTC().Format(time.DateTime), int(math.Round(cert.NotAfter.Sub(now).Hours()/24))),
			Advice: renewAdvice(cert, r.region)}
	}
	until := ""
	if cert.NotAfter != nil {
		until = ", valid until " + cert.NotAfter.UTC().Format(time.DateOnly)
	}
	return Result{Name: name, Status: OK, Detail: fmt.Sprintf("%s (%s) is ISSUED%s", arnStr, names, until)}
}

func renewAdvice(cert *types.CertificateDetail, region string) string {
	if cert.Type == types.CertificateTypeImported {
		return fmt.Sprintf("import the renewed certificate over it (`aws acm import-certificate --certificate-arn %s --certificate fileb://cert.pem --private-key fileb://key.pem --region %s`), so the ARN stays the same",
			aws.ToString(cert.CertificateArn), region)
	}
	return "ACM renews a DNS-validated certificate by itself while its validation CNAME records stay in DNS; " +
		"if they are gone, request a new certificate and set access.certificateArn to it"
}

// validationAdvice names the DNS records ACM waits for, when it published them.
func validationAdvice(cert *types.CertificateDetail) string {
	var records []string
	email := false
	for _, o := range cert.DomainValidationOptions {
		if rr := o.ResourceRecord; rr != nil && o.ValidationStatus != types.DomainStatusSuccess {
			records = append(records, fmt.Sprintf("%s %s %s", aws.ToString(rr.Name), rr.Type, aws.ToString(rr.Value)))
		}
		email = email || o.ValidationMethod == types.ValidationMethodEmail
	}
	if len(records) > 0 {
		return "create the DNS validation record(s) in the zone of the name: " + strings.Join(records, "; ") +
			"; ACM issues the certificate once it sees them, usually within minutes"
	}
	if email {
		return "approve the validation email ACM sent to the domain's contacts; the certificate is issued once every name is approved"
	}
	return "complete the certificate's validation (`aws acm describe-certificate --certificate-arn " +
		aws.ToString(cert.CertificateArn) + " --query Certificate.DomainValidationOptions`)"
}

// hostnameCoverage checks that the certificate names access.hostname, exactly or by a wildcard
// for one label.
func hostnameCoverage(cert *types.CertificateDetail, host, region string) Result {
	const name = "certificate hostname"
	names := certNames(cert)
	for _, n := range names {
		if Covers(n, host) {
			return Result{Name: name, Status: OK, Detail: fmt.Sprintf("access.hostname %s is covered by %s", host, n)}
		}
	}
	wildcard := ""
	if parent := parentDomain(host); parent != host {
		wildcard = " (or *." + parent + ")"
	}
	return Result{Name: name, Status: Fail,
		Detail: fmt.Sprintf("the certificate covers %s, not access.hostname %s: clients would get a name mismatch", listOrNone(names), host),
		Advice: fmt.Sprintf("request a certificate for %s%s in %s and set access.certificateArn to it, or set access.hostname to a name the certificate covers",
			host, wildcard, region)}
}

// certNames are the names a certificate covers: its domain name and subject alternative names.
func certNames(cert *types.CertificateDetail) []string {
	var names []string
	add := func(n string) {
		for _, m := range names {
			if strings.EqualFold(m, n) {
				return
			}
		}
		names = append(names, n)
	}
	if cert.DomainName != nil {
		add(*cert.DomainName)
	}
	for _, n := range cert.SubjectAlternativeNames {
		add(n)
	}
	return names
}

// Covers reports whether certificate name pattern covers host: equal (case-insensitive, a
// trailing dot ignored), or a wildcard "*.rest" where host is one more label in front of
// rest. A wildcard covers neither rest itself nor deeper names (RFC 6125, 6.4.3).
func Covers(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, found := strings.Cut(host, ".")
		return found && label != "" && parent == rest
	}
	return pattern == host
}
