package config

import "fmt"

// CheckSet runs the checks that span stack files: two stacks may not serve the same department,
// and no two VPC ranges may overlap (departments are peered or joined to a transit gateway
// later, which needs distinct ranges). A clash concerns both files of the pair, so it is
// reported once on each, naming the other: whichever file is checked, it is the one reported
// invalid, whatever order the files sort in.
func CheckSet(specs []*Spec) Problems {
	var ps Problems
	for i, b := range specs {
		for _, a := range specs[:i] {
			if a.Department == b.Department {
				ps = append(ps, clash(a, b, "department", func(self, other *Spec) string {
					return fmt.Sprintf("department %q is also deployed by %s", self.Department, other.Source)
				})...)
			}
			if a.Network.CIDR.IsValid() && b.Network.CIDR.IsValid() && a.Network.CIDR.Overlaps(b.Network.CIDR) {
				ps = append(ps, clash(a, b, "network.cidr", func(self, other *Spec) string {
					return fmt.Sprintf("overlaps %s of %s (got %s)", other.Network.CIDR, other.Source, self.Network.CIDR)
				})...)
			}
		}
	}
	return ps
}

// clash is one problem on each file of a pair, each message naming the other file.
func clash(a, b *Spec, path string, message func(self, other *Spec) string) Problems {
	return Problems{
		{Source: a.Source, Path: path, Message: message(a, b)},
		{Source: b.Source, Path: path, Message: message(b, a)},
	}
}

// CheckSiblings checks spec against every other stack file under projectDir (the checks of
// CheckSet) and returns the problems on spec's own file. A sibling file that does not load is
// skipped: it is invalid on its own, which validating it says.
func CheckSiblings(spec *Spec, projectDir string) Problems {
	stacks, err := Stacks(projectDir)
	if err != nil {
		return Problems{{Source: spec.Source, Path: "(file)", Message: fmt.Sprintf("list the other stack files: %v", err)}}
	}
	set := []*Spec{spec}
	for _, s := range stacks {
		if s == spec.Stack {
			continue
		}
		if other, err := Load(projectDir, s); err == nil {
			set = append(set, other)
		}
	}
	var own Problems
	for _, p := range CheckSet(set) {
		if p.Source == spec.Source {
			own = append(own, p)
		}
	}
	return own
}

// LoadChecked is Load followed by CheckSiblings: a stack as every command that acts on one stack
// must see it, with the checks across departments included.
func LoadChecked(projectDir, stack string) (*Spec, error) {
	spec, err := Load(projectDir, stack)
	if err != nil {
		return nil, err
	}
	if ps := CheckSiblings(spec, projectDir); len(ps) > 0 {
		return nil, ps
	}
	return spec, nil
}
