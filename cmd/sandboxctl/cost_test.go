package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/internal/cost"
	"github.com/llm-sandbox/llm-sandbox/internal/cost/pricingtest"
)

func TestCostChemistry(t *testing.T) {
	root := projectRoot(t)
	code, out, errOut := sandboxctl(t, root, "cost", "chemistry", "--price-region", "us-east-1", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	var est struct {
		Region, PriceRegion string
		Min, Max, AlwaysOn  float64
		Ratio               float64
		Schedules           []struct{ Group, Timezone string }
		Prices              []struct{ Key, Date, Source string }
	}
	if err := json.Unmarshal([]byte(out), &est); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	// The example stacks run in ca-central-1, whose table holds the GPU types' prices only: cost
	// stops and names exactly the prices the stack needs that the table lacks, and those it has.
	code, out, errOut = sandboxctl(t, root, "cost", "chemistry")
	if code != exitInvalid || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	caTable, err := cost.Builtin("ca-central-1")
	if err != nil {
		t.Fatal(err)
	}
	var missing, have []string
	for _, p := range est.Prices {
		if _, ok := caTable.Prices[p.Key]; ok {
			have = append(have, p.Key)
		} else {
			missing = append(missing, p.Key)
		}
	}
	if len(missing) == 0 || len(have) == 0 {
		t.Fatalf("missing %v have %v: the test wants a stack that needs both", missing, have)
	}
	for _, want := range []string{
		"no ca-central-1 price for " + strings.Join(missing, ", ") + " (",
		"the table has " + strings.Join(have, ", ") + ")",
		"--prices live", "--price-region us-east-1",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if est.Region != "ca-central-1" || est.PriceRegion != "us-east-1" {
		t.Errorf("region %q price region %q", est.Region, est.PriceRegion)
	}
	// The GPU pool runs 60 of 168 hours a week, so the month at minimum size is well under
	// always on, and maximum size is above minimum.
	if !(est.Min < est.AlwaysOn && est.Max > est.Min && est.Ratio > 0 && est.Ratio < 0.6) {
		t.Errorf("min %.2f max %.2f always on %.2f ratio %.2f", est.Min, est.Max, est.AlwaysOn, est.Ratio)
	}
	if len(est.Schedules) != 1 || est.Schedules[0].Timezone != "America/Vancouver" {
		t.Errorf("schedules %+v", est.Schedules)
	}
	for _, p := range est.Prices {
		if p.Date == "" || p.Source == "" {
			t.Errorf("price %s without date or source", p.Key)
		}
	}
}

func TestCostSpotDiscountAndText(t *testing.T) {
	root := projectRoot(t)
	code, out, errOut := sandboxctl(t, root, "cost", "linguistics", "--price-region", "us-east-1", "--spot-discount", "0.5")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	for _, want := range []string{"**Prices of us-east-1 applied to a stack in ca-central-1**", "g6.xlarge 100% spot at 50% off", "warm pool", "| **Total** |"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCostUsageErrors(t *testing.T) {
	root := projectRoot(t)
	for _, args := range [][]string{
		{"cost"},
		{"cost", "chemistry", "--prices", "guess"},
		{"cost", "chemistry", "--spot-discount", "1.5"},
		{"cost", "chemistry", "--prices", "live", "--price-region", "us-east-1"},
		{"cost", "chemistry", "--format", "yaml"},
	} {
		if code, _, _ := sandboxctl(t, root, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestCostHelpIsDocumented(t *testing.T) {
	helpIsDocumented(t, "docs/cost.md", "cost")
}

// docs/cost.md shows each example stack's figures as cost prints them, and the chemistry
// what-if with its pool on spot, worked from the same estimate: the pool's instance line at the
// default discount.
func TestCostDocsShowTheExampleFigures(t *testing.T) {
	root := projectRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "cost.md"))
	if err != nil {
		t.Fatal(err)
	}
	type line struct {
		Resource string
		Min, Max float64
	}
	type estimate struct {
		Min, Max, AlwaysOn, Ratio, FloorRatio float64
		Lines                                 []line
		Assumptions                           struct{ SpotDiscount float64 }
	}
	row := func(name string, min, max, always, ratio, floor float64) string {
		return fmt.Sprintf("| %s | $%.2f | $%.2f | $%.2f | %.0f%% | %.0f%% |", name, min, max, always, ratio*100, floor*100)
	}
	for _, s := range []string{"chemistry", "dev", "linguistics", "physics"} {
		code, out, errOut := sandboxctl(t, root, "cost", s, "--price-region", "us-east-1", "--format", "json")
		if code != exitOK {
			t.Fatalf("%s: exit %d:\n%s", s, code, errOut)
		}
		var e estimate
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatal(err)
		}
		if want := row(s, e.Min, e.Max, e.AlwaysOn, e.Ratio, e.FloorRatio); !strings.Contains(string(doc), want) {
			t.Errorf("docs/cost.md lacks the row %q", want)
		}
		if s != "chemistry" {
			continue
		}
		for _, l := range e.Lines {
			if l.Resource == "chemistry-gpu-asg" {
				min := e.Min - l.Min*e.Assumptions.SpotDiscount
				max := e.Max - l.Max*e.Assumptions.SpotDiscount
				want := row("chemistry with `spot: true` on its pool", min, max, e.AlwaysOn, min/e.AlwaysOn, e.FloorRatio)
				if !strings.Contains(string(doc), want) {
					t.Errorf("docs/cost.md lacks the row %q", want)
				}
				if min/e.AlwaysOn > 0.35 {
					t.Errorf("chemistry with schedule and spot is %.1f%% of always on; docs/cost.md says at most 35%%", min/e.AlwaysOn*100)
				}
			}
		}
	}
}

// --prices live reads the stack region's prices through the Price List API: here a loopback
// stand-in, reached through the SDK's own endpoint setting, with static test credentials.
func TestCostLivePrices(t *testing.T) {
	root := projectRoot(t)
	srv := pricingtest.NewServer(t, filepath.Join(root, "internal", "cost", "testdata", "products.json"))
	dir := t.TempDir()
	t.Setenv("AWS_ENDPOINT_URL_PRICING", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	code, out, errOut := sandboxctl(t, root, "cost", "chemistry", "--prices", "live")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if srv.Requests() == 0 {
		t.Fatal("the Price List API was not asked")
	}
	for _, want := range []string{"Prices (ca-central-1, USD)", "| ec2/g5.xlarge | 1.118 | hour | 2026-11-01 | AWS Price List API, AmazonEC2 SKU "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "applied to a stack in") {
		t.Error("live prices are the stack region's own, yet the output says another region's were applied")
	}
}

// docs/cost.md lists every ca-central-1 row of the table beside its us-east-1 price, names every
// price the region lacks, and shows the message an example stack stops with as cost prints it.
func TestCostDocsShowThePartialRegion(t *testing.T) {
	root := projectRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "cost.md"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := cost.Builtin("ca-central-1")
	if err != nil {
		t.Fatal(err)
	}
	us, err := cost.Builtin("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ca.Sorted() {
		want := fmt.Sprintf("| %s | %g | %g |", p.Key, p.USD, us.Prices[p.Key].USD)
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/cost.md lacks the row %q", want)
		}
	}
	prices := string(doc)[strings.Index(string(doc), "## Prices"):strings.Index(string(doc), "## The example stacks")]
	for _, k := range ca.Missing() {
		if !strings.Contains(prices, k) {
			t.Errorf("docs/cost.md, Prices, does not name %s among what ca-central-1 lacks", k)
		}
	}
	code, _, errOut := sandboxctl(t, root, "cost", "chemistry")
	if code != exitInvalid {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if !strings.Contains(prices, "```text\n"+errOut+"```\n") {
		t.Errorf("docs/cost.md, Prices, does not show the message as printed:\n%s", errOut)
	}
}

// A region the table holds no row for stops with exit 1, naming the complete regions.
func TestCostUncoveredRegion(t *testing.T) {
	code, out, errOut := sandboxctl(t, projectRoot(t), "cost", "chemistry", "--price-region", "eu-west-1")
	if code != exitInvalid || out != "" || !strings.Contains(errOut, "no prices for eu-west-1 (it has every price for us-east-1)") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}
