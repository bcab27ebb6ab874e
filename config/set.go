package config

import "fmt"

// CheckSet runs the checks that span stack files: two stacks may not serve the same department,
// and no two VPC ranges may overlap (departments are peered or joined to a transit gateway
// later, which needs distinct ranges). Each problem is reported on the later file of the pair,
// with the earlier one as its Other: checking either file alone must show it.
func CheckSet(specs []*Spec) Problems {
	var ps Problems
	for i, b := range specs {
		for _, a := range specs[:i] {
			if a.Department == b.Department {
				ps = append(ps, Problem{Source: b.Source, Other: a.Source, Path: "department",
					Message: fmt.Sprintf("department %q is already deployed by %s", b.Department, a.Source)})
			}
			if a.Network.CIDR.IsValid() && b.Network.CIDR.IsValid() && a.Network.CIDR.Overlaps(b.Network.CIDR) {
				ps = append(ps, Problem{Source: b.Source, Other: a.Source, Path: "network.cidr",
					Message: fmt.Sprintf("overlaps %s of %s (got %s)", a.Network.CIDR, a.Source, b.Network.CIDR)})
			}
		}
	}
	return ps
}
