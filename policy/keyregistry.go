package policy

import (
	"fmt"
	"slices"
	"strings"
)

const typeDynamoTable = "aws:dynamodb/table:Table"

// registryReadActions are what a role of the plan (the nodes') may do on a DynamoDB table:
// read one record by its key. Issuing, revoking and listing keys is the operator's, with
// credentials outside the plan.
var registryReadActions = []string{"dynamodb:GetItem"}

func checkDynamoKey(p *Plan) []Finding {
	keys := p.departmentKeys()
	return p.eachOf(typeDynamoTable, func(t Resource) string {
		sse := obj(t.Inputs["serverSideEncryption"])
		if on, _ := sse["enabled"].(bool); !on || !keys[str(sse["kmsKeyArn"])] {
			return fmt.Sprintf("serverSideEncryption enabled %v with key %q; want enabled with the department key (the default AWS owned key is outside the department's control and CloudTrail)", sse["enabled"], str(sse["kmsKeyArn"]))
		}
		return ""
	})
}

func checkDynamoPITR(p *Plan) []Finding {
	return p.eachOf(typeDynamoTable, func(t Resource) string {
		if on, _ := obj(t.Inputs["pointInTimeRecovery"])["enabled"].(bool); !on {
			return "pointInTimeRecovery.enabled is not true"
		}
		return ""
	})
}

func checkDynamoDeletionProtection(p *Plan) []Finding {
	if !p.deletionProtected() {
		return nil
	}
	return p.eachOf(typeDynamoTable, func(t Resource) string {
		if on, _ := t.Inputs["deletionProtectionEnabled"].(bool); !on {
			return "deletionProtectionEnabled is not true"
		}
		return ""
	})
}

func checkDynamoReadOnly(p *Plan) []Finding {
	var out []Finding
	for _, d := range p.policyDocs(identityPolicies) {
		for i, s := range d.stmts {
			if s.Effect != "Allow" {
				continue
			}
			for _, a := range oneOrMany(s.Action) {
				if strings.HasPrefix(strings.ToLower(a), "dynamodb:") && !slices.Contains(registryReadActions, a) {
					out = append(out, finding(d.r, "%s allows %q; a role of the plan may only %s", s.name(i), a, strings.Join(registryReadActions, ", ")))
				}
			}
		}
	}
	return out
}
