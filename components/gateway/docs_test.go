package gateway

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestDocsListEveryField keeps docs/gateway.md true: every field of GatewayArgs, Access and
// PoolRoute has a row in an inputs table, every registered output a row in the outputs table,
// and the timeout chain and rate limit are stated with the values the code uses.
func TestDocsListEveryField(t *testing.T) {
	data, err := os.ReadFile("../../docs/gateway.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, typ := range []reflect.Type{reflect.TypeOf(GatewayArgs{}), reflect.TypeOf(Access{}), reflect.TypeOf(PoolRoute{})} {
		for i := range typ.NumField() {
			if f := typ.Field(i); !strings.Contains(doc, "| `"+f.Name+"` |") {
				t.Errorf("docs/gateway.md has no input row for %s.%s", typ.Name(), f.Name)
			}
		}
	}
	out := reflect.TypeOf(Gateway{})
	for i := range out.NumField() {
		if tag := out.Field(i).Tag.Get("pulumi"); tag != "" && !strings.Contains(doc, "| `"+tag+"` (`"+out.Field(i).Name+"`) |") {
			t.Errorf("docs/gateway.md has no output row for %s (%s)", tag, out.Field(i).Name)
		}
	}
	for _, v := range []struct {
		name  string
		value int
	}{
		{"FrontIdleTimeoutSeconds", FrontIdleTimeoutSeconds},
		{"KeepAliveSeconds", KeepAliveSeconds},
		{"RequestTimeoutSeconds", RequestTimeoutSeconds},
		{"InternalIdleTimeoutSeconds", InternalIdleTimeoutSeconds},
		{"DeregistrationDelaySeconds", DeregistrationDelaySeconds},
		{"RateLimitPerIP", RateLimitPerIP},
		{"HeartbeatSeconds", HeartbeatSeconds},
	} {
		if row := "`" + v.name + "` | " + strconv.Itoa(v.value) + " "; !strings.Contains(doc, row) {
			t.Errorf("docs/gateway.md does not state %s = %d (want a row containing %q)", v.name, v.value, row)
		}
	}
	if !strings.Contains(doc, TLSPolicy) {
		t.Errorf("docs/gateway.md does not name the TLS policy %s", TLSPolicy)
	}
}
