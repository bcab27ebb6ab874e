package argcheck

import (
	"strings"
	"testing"
)

func TestCheckerTags(t *testing.T) {
	pool := []Tag{{Key: "Department", Value: "chem", Field: "Department"}, {Key: "Pool", Value: "gpu", Field: "Pool"}}
	gateway := []Tag{{Key: "Department", Value: "chem", Field: "Department"}, {Key: "llm-sandbox:tier", Value: "gateway"}}
	for _, tc := range []struct {
		kind  string
		scope []Tag
		tags  map[string]string
		field string
		ok    bool
	}{
		{"model pool", pool, map[string]string{"Department": "chem", "Pool": "gpu", "CostCentre": "x"}, "", true},
		{"model pool", pool, map[string]string{"Pool": "cpu"}, `Tags["Pool"]`, false},
		{"gateway", gateway, map[string]string{"llm-sandbox:tier": "gateway"}, "", true},
		{"gateway", gateway, map[string]string{"llm-sandbox:tier": "pool"}, `Tags["llm-sandbox:tier"]`, false},
		{"gateway", gateway, map[string]string{"Name": "x"}, `Tags["Name"]`, false},
		{"gateway", gateway, map[string]string{"AWS:x": "y"}, `Tags["AWS:x"]`, false},
	} {
		c := NewChecker(tc.kind, "chem")
		c.Tags(tc.tags, tc.kind, "chem-"+tc.kind, tc.scope)
		err := c.Err()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), tc.field+":")) {
			t.Errorf("%s tags %v: error %v, want ok %v naming %s", tc.kind, tc.tags, err, tc.ok, tc.field)
		}
	}
}
