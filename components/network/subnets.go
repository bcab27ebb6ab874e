package network

import (
	"fmt"
	"net/netip"
)

// The subnet layout. Every AZ gets one private and one public subnet carved from the VPC CIDR:
//
//   - private subnet of AZ i = block i of the VPC CIDR split with privateExtraBits more bits
//     (a /16 gives four /18s; AZs 0..2 use the first three);
//   - public subnet of AZ i = block publicFirstBlock+i of the VPC CIDR split with
//     publicExtraBits more bits (a /16 gives sixteen /20s; blocks 12..15 are the top quarter,
//     the one quarter no private subnet uses).
//
// Private subnets are large because every instance lives there; public subnets only hold the
// ALB and the NAT gateways. The two never overlap: private blocks use quarters 0..2, public
// blocks the fourth quarter, whose last sixteenth (block 15) stays free. A /22 gives /24
// private and /26 public subnets.
const (
	privateExtraBits = 2
	publicExtraBits  = 4
	publicFirstBlock = 12
)

// subnetLayout returns the private and public subnet CIDRs for azCount AZs, in AZ order.
func subnetLayout(vpc netip.Prefix, azCount int) (private, public []netip.Prefix, err error) {
	for i := range azCount {
		priv, err := subnetCIDR(vpc, privateExtraBits, i)
		if err != nil {
			return nil, nil, fmt.Errorf("private subnet of AZ %d: %w", i, err)
		}
		pub, err := subnetCIDR(vpc, publicExtraBits, publicFirstBlock+i)
		if err != nil {
			return nil, nil, fmt.Errorf("public subnet of AZ %d: %w", i, err)
		}
		private = append(private, priv)
		public = append(public, pub)
	}
	return private, public, nil
}

// subnetCIDR splits the IPv4 prefix parent into 2^extraBits equal blocks and returns block
// index (counting from 0 at the lowest address), like Terraform's cidrsubnet.
func subnetCIDR(parent netip.Prefix, extraBits, index int) (netip.Prefix, error) {
	if !parent.IsValid() || !parent.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%s is not an IPv4 prefix", parent)
	}
	if parent.Masked() != parent {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set", parent)
	}
	bits := parent.Bits() + extraBits
	if extraBits < 0 || bits > 32 {
		return netip.Prefix{}, fmt.Errorf("cannot split %s with %d more bits", parent, extraBits)
	}
	if index < 0 || index >= 1<<extraBits {
		return netip.Prefix{}, fmt.Errorf("block %d does not exist in %s split into /%d", index, parent, bits)
	}
	a := parent.Addr().As4()
	base := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	// bits ≤ 32 and index < 2^extraBits, so the shift stays within the parent's host bits.
	base |= uint32(index) << (32 - bits)
	addr := netip.AddrFrom4([4]byte{byte(base >> 24), byte(base >> 16), byte(base >> 8), byte(base)})
	return netip.PrefixFrom(addr, bits), nil
}
