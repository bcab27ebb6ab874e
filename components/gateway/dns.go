package gateway

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/acm"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/route53"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/llm-sandbox/llm-sandbox/components/internal/nodegroup"
)

// ValidationRecordTTLSeconds is the TTL of the certificate's DNS validation record. ACM reads
// it when it validates and again at each renewal; a short TTL lets a replaced certificate's
// record take effect at once.
const ValidationRecordTTLSeconds = 60

// dnsRecord points Access.Hostname at the front ALB with an alias A record in the hosted zone.
// An alias answers with the load balancer's current addresses, which change as ELB scales, and
// costs no queries. The record is not created over an existing one (the provider's
// allowOverwrite stays false): a name someone else uses is an error at deploy time, which
// preflight reports first.
func (b *builder) dnsRecord() error {
	a := b.args.Access
	if a.HostedZoneID == "" {
		return nil
	}
	rec, err := route53.NewRecord(b.ctx, b.name+"-dns", &route53.RecordArgs{
		ZoneId: pulumi.String(a.HostedZoneID),
		Name:   pulumi.String(a.Hostname),
		Type:   pulumi.String("A"),
		Aliases: route53.RecordAliasArray{&route53.RecordAliasArgs{
			Name:   b.comp.LoadBalancer.DnsName,
			ZoneId: b.comp.LoadBalancer.ZoneId,
			// One record, nothing to fail over to: target health would change no answer.
			EvaluateTargetHealth: pulumi.Bool(false),
		}},
	}, b.child())
	if err != nil {
		return fmt.Errorf("DNS record %s: %w", a.Hostname, err)
	}
	b.comp.DNSRecord = rec
	return nil
}

// certificate requests an ACM certificate for Access.Hostname when the gateway owns the name
// (a hosted zone) and was given no certificate: DNS validation through a CNAME in the zone,
// which ACM also uses to renew it, so the certificate lives as long as the stack with no one
// renewing it by hand. The listener takes the ARN from the validation resource, so it is
// created only once ACM has issued the certificate.
func (b *builder) certificate() error {
	if !b.s.managedCertificate {
		return nil
	}
	a := b.args.Access
	n := b.name + "-cert"
	cert, err := acm.NewCertificate(b.ctx, n, &acm.CertificateArgs{
		DomainName:       pulumi.String(a.Hostname),
		ValidationMethod: pulumi.String("DNS"),
		Tags:             nodegroup.NameTag(n),
	}, b.child())
	if err != nil {
		return fmt.Errorf("certificate for %s: %w", a.Hostname, err)
	}
	b.comp.Certificate = cert

	// A certificate for one name has one validation option; ACM computes its record.
	opt := cert.DomainValidationOptions.Index(pulumi.Int(0))
	rec, err := route53.NewRecord(b.ctx, n+"-validation", &route53.RecordArgs{
		ZoneId:  pulumi.String(a.HostedZoneID),
		Name:    opt.ResourceRecordName().Elem(),
		Type:    opt.ResourceRecordType().Elem(),
		Records: pulumi.StringArray{opt.ResourceRecordValue().Elem()},
		Ttl:     pulumi.Int(ValidationRecordTTLSeconds),
		// ACM gives every certificate for the same name in one account the same validation
		// record: a replacement certificate (or one of an earlier stack of the same name)
		// finds it already there, with the value it wants.
		AllowOverwrite: pulumi.Bool(true),
	}, b.child())
	if err != nil {
		return fmt.Errorf("certificate validation record for %s: %w", a.Hostname, err)
	}
	b.comp.CertificateValidationRecord = rec

	v, err := acm.NewCertificateValidation(b.ctx, n+"-issued", &acm.CertificateValidationArgs{
		CertificateArn:        cert.Arn,
		ValidationRecordFqdns: pulumi.StringArray{rec.Fqdn},
	}, b.child())
	if err != nil {
		return fmt.Errorf("certificate validation for %s: %w", a.Hostname, err)
	}
	b.comp.CertificateValidation = v
	return nil
}

// certificateARN is the HTTPS listener's certificate: the one given, or the one requested once
// it is issued.
func (b *builder) certificateARN() pulumi.StringInput {
	if b.comp.CertificateValidation != nil {
		return b.comp.CertificateValidation.CertificateArn
	}
	return pulumi.String(b.args.Access.CertificateARN)
}
