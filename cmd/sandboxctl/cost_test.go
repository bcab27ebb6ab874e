package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/cost"
	"github.com/llm-sandbox/llm-sandbox/internal/cost/pricingtest"
	"github.com/llm-sandbox/llm-sandbox/program"
)

// The example stacks run in ca-central-1, whose table holds every price they need: cost prices
// chemistry with that region's own dated rows, with no --price-region.
func TestCostChemistry(t *testing.T) {
	root := projectRoot(t)
	code, out, errOut := sandboxctl(t, root, "cost", "chemistry", "--format", "json")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	var est struct {
		Region, PriceRegion string
		Min, Max, AlwaysOn  float64
		Ratio               float64
		Schedules           []struct{ Group, Timezone string }
		Prices              []cost.Price
	}
	if err := json.Unmarshal([]byte(out), &est); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if est.Region != "ca-central-1" || est.PriceRegion != "ca-central-1" {
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
	caTable, err := cost.Builtin("ca-central-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(est.Prices) == 0 {
		t.Error("no prices used")
	}
	for _, p := range est.Prices {
		if want := caTable.Prices[p.Key]; p != want {
			t.Errorf("price %+v, want the ca-central-1 row %+v", p, want)
		}
	}
	code, text, errOut := sandboxctl(t, root, "cost", "chemistry")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	if strings.Contains(text, "applied to a stack in") || !strings.Contains(text, "Prices (ca-central-1, USD)") {
		t.Errorf("the text does not price the stack with its own region's table:\n%s", text)
	}
}

// Every example stack is priced from the table with no flag but --prices table: each price it
// uses is a dated, sourced row of the stack region's table.
func TestCostEveryExampleStack(t *testing.T) {
	root := projectRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "stacks", "Pulumi.*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example stacks: %v", err)
	}
	for _, f := range files {
		stack := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "Pulumi."), ".yaml")
		code, out, errOut := sandboxctl(t, root, "cost", stack, "--prices", "table", "--format", "json")
		if code != exitOK {
			t.Errorf("%s: exit %d:\n%s", stack, code, errOut)
			continue
		}
		var est struct {
			Region, PriceRegion string
			Min, AlwaysOn       float64
			Lines               []struct{ Resource string }
			Prices              []cost.Price
		}
		if err := json.Unmarshal([]byte(out), &est); err != nil {
			t.Fatalf("%s: not JSON: %v", stack, err)
		}
		if est.PriceRegion != est.Region || est.Min <= 0 || est.Min > est.AlwaysOn || len(est.Lines) == 0 || len(est.Prices) == 0 {
			t.Errorf("%s: %+v", stack, est)
		}
		table, err := cost.Builtin(est.Region)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range est.Prices {
			if p.Date == "" || p.Source == "" || p != table.Prices[p.Key] {
				t.Errorf("%s: price %+v is not the dated, sourced %s row %+v", stack, p, est.Region, table.Prices[p.Key])
			}
		}
	}
}

// costMissingPrice runs cost on chemistry with its pool on g6e.xlarge, the one type the
// ca-central-1 table has no price for, from the stack file to the message on stderr. The
// changed stack file is read from a project of its own; the plan builds the node agent from
// this one.
func costMissingPrice(t *testing.T, priceRegion string) (int, string) {
	t.Helper()
	root := projectRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "stacks", "Pulumi.chemistry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stack := strings.Replace(string(data), "instanceType: g5.xlarge", "instanceType: g6e.xlarge", 1)
	if stack == string(data) {
		t.Fatal("Pulumi.chemistry.yaml has no g5.xlarge pool to change")
	}
	spec, err := config.LoadChecked(tempProject(t, map[string]string{"chemistry": stack}), "chemistry")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := program.PlanStack(spec, root)
	if err != nil {
		t.Fatal(err)
	}
	_, err = priceStack(plan, "table", priceRegion, cost.DefaultAssumptions().SpotDiscount)
	var stderr bytes.Buffer
	return exit(env{stdout: io.Discard, stderr: &stderr}, "cost", err), stderr.String()
}

// A stack that needs a price its region's table lacks stops with exit 1, naming exactly the
// missing prices and those it has, and says how to go on; --price-region goes on.
func TestCostMissingPriceStops(t *testing.T) {
	code, errOut := costMissingPrice(t, "")
	if code != exitInvalid {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		"sandboxctl cost: estimate chemistry: no ca-central-1 price for ec2/g6e.xlarge (of the prices it needs, the table has ebs/gp3-gb-month, ec2/t3.large, elb/alb-hour,",
		"--prices live", "--price-region us-east-1",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if code, errOut := costMissingPrice(t, "us-east-1"); code != exitOK {
		t.Errorf("--price-region us-east-1: exit %d:\n%s", code, errOut)
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
		code, out, errOut := sandboxctl(t, root, "cost", s, "--format", "json")
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

// docs/cost.md lists every ca-central-1 row of the table with its date beside its us-east-1
// price, names every price the region lacks, and shows the message a stack that needs one stops
// with, as cost prints it.
func TestCostDocsShowTheCACentral1Table(t *testing.T) {
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
		want := fmt.Sprintf("| %s | %g | %g | %s |", p.Key, p.USD, us.Prices[p.Key].USD, p.Date)
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
	code, errOut := costMissingPrice(t, "")
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
