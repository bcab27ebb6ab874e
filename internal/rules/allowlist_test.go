package rules

import (
	"net/netip"
	"strings"
	"testing"
)

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestAddressCount(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want uint64
	}{
		{nil, 0},
		{[]string{"10.0.0.0/8"}, 1 << 24},
		{[]string{"10.0.0.0/8", "10.1.0.0/16"}, 1 << 24},                    // contained
		{[]string{"10.1.0.0/16", "10.0.0.0/8"}, 1 << 24},                    // order does not matter
		{[]string{"10.0.0.0/9", "10.64.0.0/10", "10.128.0.0/9"}, 1 << 24},   // overlap and adjacency
		{[]string{"0.0.0.0/1", "128.0.0.0/1"}, AllIPv4},                     // halves
		{[]string{"0.0.0.0/0", "10.0.0.0/8"}, AllIPv4},                      // everything and a part
		{[]string{"203.0.113.7/32", "203.0.113.7/32", "203.0.113.8/32"}, 2}, // duplicates
		{[]string{"255.255.255.255/32", "0.0.0.0/32"}, 2},                   // the ends
		{[]string{"192.168.0.0/16", "2001:db8::/32"}, 1 << 16},              // IPv6 not counted
	} {
		if got := AddressCount(prefixes(t, tc.in...)); got != tc.want {
			t.Errorf("AddressCount(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestWideAllowList(t *testing.T) {
	for _, tc := range []struct {
		in    []string
		index int  // -1: the list as a whole
		wide  bool // want a problem
		text  string
	}{
		{[]string{"142.103.0.0/16", "206.87.0.0/16"}, -1, false, ""},
		{[]string{"11.0.0.0/8"}, -1, false, ""},
		{[]string{"11.0.0.0/9", "11.128.0.0/9", "11.0.0.0/8"}, -1, false, ""},
		{[]string{"142.103.0.0/16", "0.0.0.0/0"}, 1, true, "admits the whole internet (got 0.0.0.0/0)"},
		{[]string{"0.0.0.0/1", "128.0.0.0/1"}, 0, true, "more than a /8 (got 0.0.0.0/1)"},
		{[]string{"10.0.0.0/7"}, 0, true, "more than a /8"},
		{[]string{"11.0.0.0/8", "12.0.0.0/8"}, -1, true, "together admit 33554432 addresses"},
		{[]string{"11.0.0.0/8", "12.0.0.0/32"}, -1, true, "together admit 16777217 addresses"},
		{quarterSlash8s(256), -1, true, "together admit the whole internet"},
	} {
		i, msg := WideAllowList(prefixes(t, tc.in...))
		if (msg != "") != tc.wide || (tc.wide && (i != tc.index || !strings.Contains(msg, tc.text))) {
			t.Errorf("WideAllowList(%v) = %d, %q; want wide %v at %d with %q", tc.in, i, msg, tc.wide, tc.index, tc.text)
		}
	}
}

// quarterSlash8s returns n /8s from 0.0.0.0/8 up: 256 of them cover the whole space without any
// one prefix being wider than a /8.
func quarterSlash8s(n int) []string {
	var out []string
	for i := range n {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i), 0, 0, 0}), 8).String())
	}
	return out
}

func TestClientRanges(t *testing.T) {
	if ClientRangeRules(true) != 2 || ClientRangeRules(false) != 1 {
		t.Fatalf("rules per range: https %d, http %d", ClientRangeRules(true), ClientRangeRules(false))
	}
	for _, tc := range []struct {
		n     int
		https bool
		ok    bool
	}{{30, true, true}, {31, true, false}, {60, false, true}, {61, false, false}, {100, true, false}, {1, true, true}} {
		if got := ClientRanges(tc.n, tc.https) == ""; got != tc.ok {
			t.Errorf("ClientRanges(%d, https %v) accepted %v, want %v", tc.n, tc.https, got, tc.ok)
		}
	}
}

func TestTagRules(t *testing.T) {
	check(t, "TagKey", TagKey,
		[]string{"CostCenter", "cost-center", "team:owner", "a.b_c+d=e@f", strings.Repeat("k", 128)},
		[]string{"", "aws:owner", "AWS:Owner", "Cost Center", "cost/center", "Kostenstelle§", "clé", "a,b", ".", "..", "_index",
			"tab\tkey", strings.Repeat("k", 129)})
	check(t, "TagValue", TagValue,
		[]string{"", "CHEM-1234", "ling it", "Département de chimie", "a/b:c@d", strings.Repeat("v", 256), strings.Repeat("é", 256)},
		[]string{"ling\tit", "line\nbreak", "nul\x00", "bell\a", "semi;colon", "quote\"", "aws:x", strings.Repeat("v", 257), "\xff"})
	if TagCount(45, 5) != "" || TagCount(46, 5) == "" || TagCount(48, 2) != "" || TagCount(49, 2) == "" {
		t.Errorf("TagCount does not hold the 50-tag limit")
	}
}
