package rules

import (
	"fmt"
	"net/netip"
	"slices"
)

// AllIPv4 is the number of IPv4 addresses: what 0.0.0.0/0 admits.
const AllIPv4 = uint64(1) << 32

// MaxAllowListAddresses is the most addresses an allow-list may admit without being declared
// open on purpose: a /8's worth. A list wider than that is no longer a list of known client
// networks (a whole university is a /16 or two), and the widest single blocks an institution
// holds are /8s.
const MaxAllowListAddresses = uint64(1) << 24

// AddressCount returns how many IPv4 addresses a list of prefixes admits together: the size of
// their union, each address counted once however many prefixes cover it. IPv6 prefixes are
// not counted.
func AddressCount(ps []netip.Prefix) uint64 {
	type span struct{ lo, hi uint64 } // [lo, hi)
	var spans []span
	for _, p := range ps {
		if !p.IsValid() || !p.Addr().Is4() {
			continue
		}
		a := p.Masked().Addr().As4()
		lo := uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
		spans = append(spans, span{lo, lo + uint64(1)<<(32-p.Bits())})
	}
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	var total, end uint64
	for _, s := range spans {
		if s.lo > end {
			end = s.lo
		}
		if s.hi > end {
			total += s.hi - end
			end = s.hi
		}
	}
	return total
}

// WideAllowList judges a list of client ranges as an allow-list. It returns "" when the list
// admits at most a /8's worth of addresses (MaxAllowListAddresses) and no single prefix is
// wider than a /8. Otherwise the list is as good as "anywhere" and it returns the problem, with
// the index of the prefix at fault, or -1 when the fault is the list as a whole (prefixes that
// are each narrow enough but together are not, such as 0.0.0.0/1 and 128.0.0.0/1). The caller
// adds which setting declares such a list intended.
func WideAllowList(ps []netip.Prefix) (int, string) {
	for i, p := range ps {
		switch {
		case !p.IsValid() || !p.Addr().Is4():
		case p.Bits() == 0:
			return i, fmt.Sprintf("admits the whole internet (got %s)", p)
		case p.Bits() < 8:
			return i, fmt.Sprintf("admits %d addresses, more than a /8 (got %s)", uint64(1)<<(32-p.Bits()), p)
		}
	}
	switch n := AddressCount(ps); {
	case n == AllIPv4:
		return -1, fmt.Sprintf("together admit the whole internet (got %s)", prefixList(ps))
	case n > MaxAllowListAddresses:
		return -1, fmt.Sprintf("together admit %d addresses, more than a /8's %d (got %s)", n, MaxAllowListAddresses, prefixList(ps))
	}
	return -1, ""
}

func prefixList(ps []netip.Prefix) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p.String()
	}
	return s
}

// SecurityGroupRuleQuota is AWS's default quota of inbound rules per security group, and apart
// of outbound rules ("Inbound or outbound rules per security group", 60;
// https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-security-groups).
// A group with more rules fails to deploy.
const SecurityGroupRuleQuota = 60

// ClientRangeRules is how many inbound rules the gateway's front load balancer group takes
// per client range: one per client-facing listener, 443 and 80 with HTTPS (80 only
// redirects), 80 alone without a certificate.
func ClientRangeRules(https bool) int {
	if https {
		return 2
	}
	return 1
}

// ClientRanges checks that n client ranges fit the front group's inbound rule quota.
func ClientRanges(n int, https bool) string {
	per := ClientRangeRules(https)
	if limit := SecurityGroupRuleQuota / per; n > limit {
		return fmt.Sprintf("admits at most %d client ranges, %d inbound rules each within the security group quota of %d rules (got %d ranges, counting the VPC range when access is internal)", limit, per, SecurityGroupRuleQuota, n)
	}
	return ""
}
