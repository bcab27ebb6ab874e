// Package iampolicy renders the IAM policy documents the components write (node and flow-log
// role policies, trust policies, the key policy, the bucket policy) as the JSON AWS reads.
package iampolicy

import "encoding/json"

// Version is the policy language version every document states.
const Version = "2012-10-17"

// Statement is one statement of a policy document. Principal, Action and Resource take
// whichever form IAM allows there (one string, a list, or for Principal "*" or an object of
// principal types), and are written as given; an unset one is left out.
type Statement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal any                          `json:"Principal,omitempty"`
	Action    any                          `json:"Action"`
	Resource  any                          `json:"Resource,omitempty"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// JSON renders the document of the statements.
func JSON(statements ...Statement) (string, error) {
	out, err := json.Marshal(struct {
		Version   string      `json:"Version"`
		Statement []Statement `json:"Statement"`
	}{Version, statements})
	if err != nil {
		return "", err
	}
	return string(out), nil
}
