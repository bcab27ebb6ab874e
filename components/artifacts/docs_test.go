package artifacts

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestDocsListEveryField keeps docs/artifacts.md true: every BucketArgs field has a row in the
// inputs table, every registered output a row in the outputs table.
func TestDocsListEveryField(t *testing.T) {
	data, err := os.ReadFile("../../docs/artifacts.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	args := reflect.TypeOf(BucketArgs{})
	for i := range args.NumField() {
		if f := args.Field(i); !strings.Contains(doc, "| `"+f.Name+"` |") {
			t.Errorf("docs/artifacts.md has no input row for %s", f.Name)
		}
	}
	out := reflect.TypeOf(Bucket{})
	for i := range out.NumField() {
		if tag := out.Field(i).Tag.Get("pulumi"); tag != "" && !strings.Contains(doc, "| `"+tag+"` (`"+out.Field(i).Name+"`) |") {
			t.Errorf("docs/artifacts.md has no output row for %s (%s)", tag, out.Field(i).Name)
		}
	}
}
