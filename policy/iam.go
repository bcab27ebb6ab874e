package policy

import (
	"encoding/json"
	"fmt"
	"strings"
)

const (
	typeRole             = "aws:iam/role:Role"
	typeRolePolicy       = "aws:iam/rolePolicy:RolePolicy"
	typePolicy           = "aws:iam/policy:Policy"
	typeRolePolicyAttach = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
	typeBucketPolicy     = "aws:s3/bucketPolicy:BucketPolicy"
)

// statement is one statement of an IAM policy document.
type statement struct {
	Sid       string         `json:"Sid"`
	Effect    string         `json:"Effect"`
	Principal any            `json:"Principal"`
	Action    any            `json:"Action"`
	Resource  any            `json:"Resource"`
	Condition map[string]any `json:"Condition"`
}

// statements parses a policy document (one statement or a list); a document that does not
// parse gives none, and the rule that reads it reports that.
func statements(doc string) ([]statement, bool) {
	var d struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if json.Unmarshal([]byte(doc), &d) != nil {
		return nil, false
	}
	var many []statement
	if json.Unmarshal(d.Statement, &many) == nil {
		return many, true
	}
	var one statement
	if json.Unmarshal(d.Statement, &one) == nil {
		return []statement{one}, true
	}
	return nil, false
}

// policyDoc is a policy document with the resource and input that holds it.
type policyDoc struct {
	r     Resource
	key   string
	stmts []statement
}

// policyDocs returns the policy documents of the given types, keyed by type to the input that
// holds the document.
func (p *Plan) policyDocs(types map[string]string) []policyDoc {
	var out []policyDoc
	for _, r := range p.Resources {
		key, ok := types[r.Type]
		if !ok || str(r.Inputs[key]) == "" {
			continue
		}
		stmts, _ := statements(str(r.Inputs[key]))
		out = append(out, policyDoc{r, key, stmts})
	}
	return out
}

// identityPolicies are the IAM policies that grant a role permissions.
var identityPolicies = map[string]string{typeRolePolicy: "policy", typePolicy: "policy"}

// allPolicies are every resource policy and IAM policy the plan holds.
var allPolicies = map[string]string{
	typeRolePolicy: "policy", typePolicy: "policy", typeRole: "assumeRolePolicy",
	typeBucketPolicy: "policy", typeKMSKey: "policy",
}

// name names a statement in messages: its Sid, else its index.
func (s statement) name(i int) string {
	if s.Sid != "" {
		return s.Sid
	}
	return fmt.Sprintf("statement %d", i)
}

func checkIAMActions(p *Plan) []Finding {
	var out []Finding
	for _, d := range p.policyDocs(identityPolicies) {
		for i, s := range d.stmts {
			if s.Effect != "Allow" {
				continue
			}
			for _, a := range oneOrMany(s.Action) {
				if a == "*" || strings.HasSuffix(a, ":*") {
					out = append(out, finding(d.r, "%s allows action %q; want the actions the role uses", s.name(i), a))
				}
			}
		}
	}
	return out
}

// narrowingKeys are condition keys that tie a statement to the department's own endpoint,
// account or organisation.
var narrowingKeys = []string{"aws:SourceVpce", "aws:SourceVpc", "aws:PrincipalAccount", "aws:PrincipalOrgID", "aws:SourceAccount", "aws:PrincipalArn"}

func narrowed(s statement) bool {
	for _, cond := range s.Condition {
		for k := range obj(cond) {
			for _, n := range narrowingKeys {
				if strings.EqualFold(k, n) {
					return true
				}
			}
		}
	}
	return false
}

func publicPrincipal(pr any) bool {
	if str(pr) == "*" {
		return true
	}
	for _, a := range oneOrMany(obj(pr)["AWS"]) {
		if a == "*" {
			return true
		}
	}
	return false
}

func checkPublicPrincipal(p *Plan) []Finding {
	var out []Finding
	for _, d := range p.policyDocs(allPolicies) {
		for i, s := range d.stmts {
			if s.Effect == "Allow" && publicPrincipal(s.Principal) && !narrowed(s) {
				out = append(out, finding(d.r, "%s: %s allows Principal \"*\" without a condition on the VPC endpoint, account or organisation", d.key, s.name(i)))
			}
		}
	}
	return out
}

func checkIAMResources(p *Plan) []Finding {
	var out []Finding
	for _, d := range p.policyDocs(identityPolicies) {
		for i, s := range d.stmts {
			if s.Effect != "Allow" || len(s.Condition) > 0 {
				continue
			}
			for _, r := range oneOrMany(s.Resource) {
				if r == "*" {
					out = append(out, finding(d.r, "%s allows Resource \"*\" with no condition", s.name(i)))
				}
			}
		}
	}
	return out
}

func checkRoleTrust(p *Plan) []Finding {
	var out []Finding
	for _, d := range p.policyDocs(map[string]string{typeRole: "assumeRolePolicy"}) {
		if len(d.stmts) == 0 {
			out = append(out, finding(d.r, "assumeRolePolicy does not parse as a policy document"))
		}
		for i, s := range d.stmts {
			if s.Effect != "Allow" {
				continue
			}
			pr := obj(s.Principal)
			for k := range pr {
				if k != "Service" {
					out = append(out, finding(d.r, "%s trusts %s principals %v; want AWS services only", s.name(i), k, pr[k]))
				}
			}
			if pr == nil {
				out = append(out, finding(d.r, "%s trusts %v; want AWS services only", s.name(i), s.Principal))
			}
		}
	}
	return out
}

// allowedManagedPolicies are the AWS managed policies a role may attach: Systems Manager's,
// for audited sessions instead of SSH.
var allowedManagedPolicies = map[string]bool{"arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore": true}

func checkManagedPolicies(p *Plan) []Finding {
	return p.eachOf(typeRolePolicyAttach, func(a Resource) string {
		if arn := str(a.Inputs["policyArn"]); !allowedManagedPolicies[arn] {
			return fmt.Sprintf("attaches %s; want only AmazonSSMManagedInstanceCore (grant the rest in the role's own policy)", arn)
		}
		return ""
	})
}
