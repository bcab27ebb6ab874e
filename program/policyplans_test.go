package program

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var updatePolicyPlans = flag.Bool("update-policy-plans", false,
	"rewrite policy/testdata/plan-<stack>.json from the current code")

// policyPlanStacks are the stacks whose offline plans the policy tests read as fixtures
// (policy reads plans, never the program, so it cannot render them itself).
var policyPlanStacks = []string{"chemistry", "linguistics"}

// The policy package's fixtures are the plans the program renders today, not stale copies:
// a rule tested against an old plan proves nothing about the new one. After a change to what a
// stack renders, run `go test ./program -run TestPolicyFixturesAreCurrent -update-policy-plans`.
func TestPolicyFixturesAreCurrent(t *testing.T) {
	for _, stack := range policyPlanStacks {
		t.Run(stack, func(t *testing.T) {
			_, plan := planExample(t, stack)
			var buf bytes.Buffer
			if err := plan.WriteJSON(&buf); err != nil {
				t.Fatal(err)
			}
			var fresh map[string]any
			if err := json.Unmarshal(buf.Bytes(), &fresh); err != nil {
				t.Fatal(err)
			}
			// The fixture is the department's plan, whatever stack file it came from.
			delete(fresh, "stack")

			file := filepath.Join("..", "policy", "testdata", "plan-"+stack+".json")
			if *updatePolicyPlans {
				var out bytes.Buffer
				enc := json.NewEncoder(&out)
				enc.SetIndent("", " ")
				enc.SetEscapeHTML(false)
				if err := enc.Encode(fresh); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var stored map[string]any
			if err := json.Unmarshal(data, &stored); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if !reflect.DeepEqual(stored, fresh) {
				t.Errorf("%s differs from the plan the code renders for %s; run "+
					"go test ./program -run TestPolicyFixturesAreCurrent -update-policy-plans", file, stack)
			}
		})
	}
}
