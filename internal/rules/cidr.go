package rules

import (
	"fmt"
	"net/netip"
)

// IPv4CIDR parses an IPv4 CIDR whose host bits are zero. A CIDR with host bits set is refused
// with the range it probably means, rather than silently masked.
func IPv4CIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !p.Addr().Is4():
		return netip.Prefix{}, fmt.Sprintf("must be an IPv4 CIDR such as 10.20.0.0/16 (got %q)", s)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Sprintf("has host bits set (got %s, did you mean %s?)", s, p.Masked())
	}
	return p, ""
}

// VPC sizes: a /16 leaves room for the subnets of three AZs; a /22 is the smallest range the
// subnet layout can split into public and private subnets per AZ.
const (
	MinVPCBits, MaxVPCBits = 16, 22
)

// VPCSize checks that a VPC range is /16 to /22.
func VPCSize(p netip.Prefix) string {
	if p.Bits() < MinVPCBits || p.Bits() > MaxVPCBits {
		return fmt.Sprintf("must be between /%d and /%d (got %s)", MinVPCBits, MaxVPCBits, p)
	}
	return ""
}

// privateRanges are the private IPv4 ranges of RFC 1918.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// PrivateRange checks that p lies within one private range of RFC 1918.
func PrivateRange(p netip.Prefix) string {
	for _, r := range privateRanges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return ""
		}
	}
	return fmt.Sprintf("must be in a private range, 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 (got %s)", p)
}
