package cost

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/program"
)

// roundPrices is a table of round figures, so the expected sums can be worked by hand.
func roundPrices() *Table {
	t := &Table{Region: "test-1", Prices: map[string]Price{}}
	set := func(key string, usd float64) {
		t.Prices[key] = Price{Key: key, USD: usd, Date: "2026-01-01", Source: "test"}
	}
	set(InstanceKey("g5.xlarge"), 1.0)
	set(InstanceKey("t3.large"), 0.1)
	set(KeyEBSGP3, 0.1)
	set(KeyNATHour, 0.05)
	set(KeyNATGB, 0.05)
	set(KeyIPv4Hour, 0.005)
	set(KeyEndpointHour, 0.01)
	set(KeyALBHour, 0.02)
	set(KeyALBLCUHour, 0.01)
	set(KeyKMSKey, 1)
	set(KeySecret, 0.4)
	set(KeyWAFACL, 5)
	set(KeyWAFRule, 1)
	set(KeyWAFRequests, 0.6)
	set(KeyLogsIngestGB, 0.5)
	set(KeyLogsStorageGB, 0.03)
	return t
}

// pool is a model pool as the plan records it: a group, its launch template and, optionally,
// office-hours actions (08:00-20:00 MON-FRI, 60 h a week).
func pool(name string, minSize, maxSize float64, scheduled bool, extra map[string]any) []program.PlannedResource {
	asg := map[string]any{"minSize": minSize, "maxSize": maxSize, "launchTemplate": map[string]any{"id": name + "-lt-id"}}
	for k, v := range extra {
		asg[k] = v
	}
	rs := []program.PlannedResource{
		{Type: typeASG, Name: name + "-asg", Parent: name, Inputs: asg},
		{Type: typeLaunchTmpl, Name: name + "-lt", Parent: name, ID: name + "-lt-id", Inputs: map[string]any{
			"instanceType":        "g5.xlarge",
			"blockDeviceMappings": []any{map[string]any{"ebs": map[string]any{"volumeSize": 100.0, "volumeType": "gp3"}}},
		}},
	}
	if scheduled {
		rs = append(rs,
			program.PlannedResource{Type: typeSchedule, Name: name + "-start", Parent: name, Inputs: map[string]any{
				"recurrence": "0 8 * * MON-FRI", "timeZone": "America/Vancouver", "minSize": minSize, "maxSize": maxSize}},
			program.PlannedResource{Type: typeSchedule, Name: name + "-stop", Parent: name, Inputs: map[string]any{
				"recurrence": "0 20 * * MON-FRI", "timeZone": "America/Vancouver", "minSize": 0.0, "maxSize": 0.0}})
	}
	return rs
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-6 {
		t.Errorf("%s = %.6f, want %.6f", what, got, want)
	}
}

func estimate(t *testing.T, rs []program.PlannedResource, a Assumptions) *Estimate {
	t.Helper()
	e, err := New(&program.Plan{Stack: "s", Region: "test-1", Resources: rs}, roundPrices(), a)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A week of 168 h makes a month of 4 weeks exactly: 60 h a week is 240 h a month.
func fourWeeks() Assumptions {
	a := DefaultAssumptions()
	a.HoursPerMonth = 4 * 168
	return a
}

func TestCostScheduledPoolArithmetic(t *testing.T) {
	e := estimate(t, pool("p", 1, 2, true, nil), fourWeeks())
	if len(e.Schedules) != 1 || e.Schedules[0].MinHoursPerWeek != 60 || e.Schedules[0].MaxHoursPerWeek != 120 {
		t.Fatalf("schedules = %+v, want 60 and 120 instance-hours a week", e.Schedules)
	}
	if e.Schedules[0].Timezone != "America/Vancouver" {
		t.Errorf("timezone = %q", e.Schedules[0].Timezone)
	}
	// Instances: 240 h at $1 (min), 480 h (max); always on: 672 h.
	near(t, "instances min", e.Lines[0].Min, 240)
	near(t, "instances max", e.Lines[0].Max, 480)
	near(t, "instances always on", e.Lines[0].AlwaysOn, 672)
	// Volumes: 100 GB at $0.1 a GB-month for 240/672 of a month per instance.
	near(t, "volume min", e.Lines[1].Min, 10*240.0/672)
	near(t, "volume max", e.Lines[1].Max, 10*480.0/672)
	near(t, "volume always on", e.Lines[1].AlwaysOn, 10)
	near(t, "total min", e.Min, 240+10*240.0/672)
	near(t, "ratio", e.Ratio, (240+10*240.0/672)/682)
	near(t, "fixed", e.Fixed, 0)
}

func TestCostUnscheduledPoolRunsAllMonth(t *testing.T) {
	e := estimate(t, pool("p", 2, 3, false, nil), fourWeeks())
	near(t, "instances min", e.Lines[0].Min, 2*672)
	near(t, "instances max", e.Lines[0].Max, 3*672)
	near(t, "ratio", e.Ratio, 1)
}

func TestCostSpotDiscountApplies(t *testing.T) {
	spot := map[string]any{"mixedInstancesPolicy": map[string]any{
		"launchTemplate":        map[string]any{"launchTemplateSpecification": map[string]any{"launchTemplateId": "p-lt-id"}},
		"instancesDistribution": map[string]any{"onDemandPercentageAboveBaseCapacity": 0.0},
	}}
	rs := pool("p", 1, 2, false, spot)
	delete(rs[0].Inputs, "launchTemplate")
	// The project's spot template names no type: the overrides do, the pool's own first.
	delete(rs[1].Inputs, "instanceType")
	obj(spot["mixedInstancesPolicy"])["launchTemplate"].(map[string]any)["overrides"] = []any{
		map[string]any{"instanceType": "g5.xlarge"}, map[string]any{"instanceType": "t3.large"}}
	a := fourWeeks()
	a.SpotDiscount = 0.75
	e := estimate(t, rs, a)
	near(t, "spot min", e.Lines[0].Min, 672*0.25)
	near(t, "spot max", e.Lines[0].Max, 2*672*0.25)
	near(t, "always on is on-demand", e.Lines[0].AlwaysOn, 672)
	if got := InstanceTypes(&program.Plan{Resources: rs}); strings.Join(got, " ") != "g5.xlarge t3.large" {
		t.Errorf("InstanceTypes = %v", got)
	}
	if !strings.Contains(e.Lines[0].Item, "g5.xlarge 100% spot at 75% off") {
		t.Errorf("item %q does not state the discount", e.Lines[0].Item)
	}
}

func TestCostWarmPoolPaysVolumesOnly(t *testing.T) {
	e := estimate(t, pool("p", 1, 2, true, map[string]any{"warmPool": map[string]any{"minSize": 2.0, "poolState": "Stopped"}}), fourWeeks())
	var warm *Line
	for i := range e.Lines {
		if e.Lines[i].Resource == "p-asg warm pool" {
			warm = &e.Lines[i]
		}
	}
	if warm == nil {
		t.Fatalf("no warm pool line in %+v", e.Lines)
	}
	// Two stopped instances × 100 GB × $0.1, every profile.
	near(t, "warm min", warm.Min, 20)
	near(t, "warm always on", warm.AlwaysOn, 20)
}

func TestCostFixedResources(t *testing.T) {
	rs := []program.PlannedResource{
		{Type: typeNAT, Name: "nat-a"},
		{Type: typeEIP, Name: "eip-a"},
		{Type: typeLB, Name: "public", Inputs: map[string]any{"internal": false, "subnets": []any{"a", "b"}}},
		{Type: typeLB, Name: "internal", Inputs: map[string]any{"internal": true, "subnets": []any{"a", "b"}}},
		{Type: typeKMSKey, Name: "key"},
		{Type: typeSecret, Name: "secret"},
		{Type: typeWebACL, Name: "waf", Inputs: map[string]any{"rules": []any{map[string]any{}}}},
		{Type: typeEndpoint, Name: "ssm", Inputs: map[string]any{"vpcEndpointType": "Interface", "subnetIds": []any{"a", "b"}}},
		{Type: typeEndpoint, Name: "s3", Inputs: map[string]any{"vpcEndpointType": "Gateway"}},
		{Type: typeLogGroup, Name: "fl", ARN: "arn:fl", Inputs: map[string]any{"retentionInDays": 90.0}},
		{Type: typeFlowLog, Name: "fl", Inputs: map[string]any{"logDestinationType": "cloud-watch-logs", "logDestination": "arn:fl"}},
	}
	a := DefaultAssumptions()
	a.HoursPerMonth = 100 // round hours
	e := estimate(t, rs, a)
	want := map[string]float64{
		"nat-a":    100*0.05 + 100*0.05, // hours + 100 GB processed
		"eip-a":    100 * 0.005,
		"public":   100*(0.02+0.01) + 2*100*0.005,
		"internal": 100 * (0.02 + 0.01),
		"key":      1,
		"secret":   0.4,
		"waf":      5 + 1 + 0.6,
		"ssm":      2 * 100 * 0.01,
		"fl":       5*0.5 + 5*3*0.03, // 5 GB ingested; 90 days keeps 15 GB
	}
	got := map[string]float64{}
	for _, l := range e.Lines {
		got[l.Resource] = l.Min
		if l.Min != l.AlwaysOn || l.Max != l.AlwaysOn {
			t.Errorf("%s: fixed cost differs between profiles: %+v", l.Resource, l)
		}
	}
	if _, ok := got["s3"]; ok {
		t.Error("the S3 gateway endpoint was charged; gateway endpoints are free")
	}
	total := 0.0
	for name, w := range want {
		near(t, name, got[name], w)
		total += w
	}
	near(t, "fixed", e.Fixed, total)
	near(t, "floor ratio", e.FloorRatio, 1)
}

func TestCostLongerFlowLogRetentionCostsMore(t *testing.T) {
	rs := func(days float64) []program.PlannedResource {
		return []program.PlannedResource{
			{Type: typeLogGroup, Name: "fl", ARN: "arn:fl", Inputs: map[string]any{"retentionInDays": days}},
			{Type: typeFlowLog, Name: "fl", Inputs: map[string]any{"logDestinationType": "cloud-watch-logs", "logDestination": "arn:fl"}},
		}
	}
	short, long := estimate(t, rs(30), DefaultAssumptions()), estimate(t, rs(365), DefaultAssumptions())
	near(t, "365 days minus 30 days", long.Min-short.Min, 5*(365.0-30)/30*0.03)
}

func TestCostMissingPriceNamesIt(t *testing.T) {
	rs := pool("p", 1, 1, false, nil)
	rs[1].Inputs["instanceType"] = "p5.48xlarge"
	prices := roundPrices()
	delete(prices.Prices, KeyEBSGP3)
	_, err := New(&program.Plan{Stack: "s", Resources: rs}, prices, DefaultAssumptions())
	var m *MissingPricesError
	if !errors.As(err, &m) {
		t.Fatalf("err = %v, want a *MissingPricesError", err)
	}
	if strings.Join(m.Keys, " ") != "ebs/gp3-gb-month ec2/p5.48xlarge" || len(m.Have) != 0 || m.Region != "test-1" {
		t.Errorf("missing %v, have %v, region %q", m.Keys, m.Have, m.Region)
	}
	if want := "estimate s: no test-1 price for ebs/gp3-gb-month, ec2/p5.48xlarge"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	// A price the plan needs that the table has is named as such.
	rs[1].Inputs["instanceType"] = "g5.xlarge"
	_, err = New(&program.Plan{Stack: "s", Resources: rs}, prices, DefaultAssumptions())
	if !errors.As(err, &m) || strings.Join(m.Keys, " ") != "ebs/gp3-gb-month" || strings.Join(m.Have, " ") != "ec2/g5.xlarge" {
		t.Fatalf("err = %v", err)
	}
}

func TestCostWeeklyMinutes(t *testing.T) {
	for _, tc := range []struct {
		rec  string
		want []int
	}{
		{"0 8 * * MON-FRI", []int{1*1440 + 480, 2*1440 + 480, 3*1440 + 480, 4*1440 + 480, 5*1440 + 480}},
		{"30 23 * * SUN,SAT", []int{1410, 6*1440 + 1410}},
		{"0 0 * * 5-7", []int{0, 5 * 1440, 6 * 1440}},
		{"15 6 * * *", []int{375, 1440 + 375, 2*1440 + 375, 3*1440 + 375, 4*1440 + 375, 5*1440 + 375, 6*1440 + 375}},
	} {
		got, err := weeklyMinutes(tc.rec)
		if err != nil {
			t.Fatalf("%s: %v", tc.rec, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %v, want %v", tc.rec, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: %v, want %v", tc.rec, got, tc.want)
				break
			}
		}
	}
	for _, bad := range []string{"0 8 1 * MON", "0 25 * * MON", "0 8 * * FUN", "0 8 * *", "0 8 * * FRI-MON"} {
		if _, err := weeklyMinutes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Office hours MON-SAT 07:00-23:00 are 96 h a week; a schedule that also scales down for
// lunch on weekdays takes 5 h off.
func TestCostWeeklyHoursAcrossTheWeekEnd(t *testing.T) {
	var acts []action
	add := func(rec string, min, max float64) {
		ms, err := weeklyMinutes(rec)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			acts = append(acts, action{minute: m, min: min, max: max})
		}
	}
	add("0 7 * * MON-SAT", 1, 4)
	add("0 23 * * MON-SAT", 0, 0)
	minH, maxH := weeklyHours(acts)
	near(t, "min", minH, 96)
	near(t, "max", maxH, 384)
	add("0 12 * * MON-FRI", 0, 0)
	add("0 13 * * MON-FRI", 1, 4)
	minH, _ = weeklyHours(acts)
	near(t, "min with lunch", minH, 91)
}

func TestCostBuiltinTableRowsAreDatedAndSourced(t *testing.T) {
	today := time.Now().UTC().Format("2006-01-02")
	if len(Regions()) < 2 {
		t.Fatalf("regions %v", Regions())
	}
	for _, region := range Regions() {
		tab, err := Builtin(region)
		if err != nil {
			t.Fatal(err)
		}
		if len(tab.Prices) == 0 {
			t.Errorf("%s: no prices", region)
		}
		for key, p := range tab.Prices {
			if key != p.Key {
				t.Errorf("%s: price %s filed under %s", region, p.Key, key)
			}
			d, err := time.Parse("2006-01-02", p.Date)
			if err != nil {
				t.Errorf("%s %s: date %q is not YYYY-MM-DD", region, p.Key, p.Date)
				continue
			}
			if d.Format("2006-01-02") > today {
				t.Errorf("%s %s: date %s is in the future", region, p.Key, p.Date)
			}
			if strings.TrimSpace(p.Source) == "" || p.USD <= 0 || p.Unit == "" {
				t.Errorf("%s %s: needs a source, a unit and a positive price: %+v", region, p.Key, p)
			}
		}
	}
}

// us-east-1 holds every price an estimate can ask for: every catalog instance type and every
// service price.
func TestCostBuiltinUSEast1IsComplete(t *testing.T) {
	tab, err := Builtin("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if m := tab.Missing(); len(m) != 0 {
		t.Errorf("us-east-1 lacks %v", m)
	}
	for _, typ := range catalog.InstanceTypes() {
		if _, err := tab.Lookup(InstanceKey(typ)); err != nil {
			t.Error(err)
		}
	}
	for _, q := range liveQueries(nil) {
		if _, err := tab.Lookup(q.key); err != nil {
			t.Error(err)
		}
	}
	if got := strings.Join(CompleteRegions(), " "); got != "us-east-1" {
		t.Errorf("complete regions %q", got)
	}
}

// ca-central-1 holds every price an estimate can ask for but g6e.xlarge (not offered there in
// the GPU source), each with its date and a source that names the repository file and commit
// or the AWS page it was read from. No Canada (Central) price is below US East's; the ones AWS
// states are the same in every region equal the us-east-1 rows.
func TestCostBuiltinCACentral1Rows(t *testing.T) {
	ca, err := Builtin("ca-central-1")
	if err != nil {
		t.Fatal(err)
	}
	us, err := Builtin("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ca.Missing(), " "); got != InstanceKey("g6e.xlarge") {
		t.Errorf("ca-central-1 lacks %q, want only %s", got, InstanceKey("g6e.xlarge"))
	}
	want := map[string]struct {
		usd          float64
		date, source string
	}{
		InstanceKey("g5.xlarge"):   {1.117, "2026-01-21", "github.com/tsaol/aws-gpu data/g5_instances.js at 7412fd256c5e"},
		InstanceKey("g6.xlarge"):   {0.8936, "2026-01-21", "github.com/tsaol/aws-gpu data/g6_instances.js at 7412fd256c5e"},
		InstanceKey("t3.large"):    {0.0928, "2019-04-05", "github.com/LeanerCloud/ec2-instances-info"},
		InstanceKey("c7i.large"):   {0.09765, "2026-03-15", "github.com/sprinters-sh/sprinters.sh docs/aws-regions.md at 1846007626"},
		InstanceKey("c7i.2xlarge"): {0.3906, "2026-03-15", "times 8 vCPUs"},
		InstanceKey("m7i.xlarge"):  {0.2247, "2026-03-15", "family m7i, ca-central-1: $0.056175 per vCPU-hour) times 4 vCPUs"},
		InstanceKey("r7i.xlarge"):  {0.2898, "2026-03-15", "family r7i"},
		KeyEBSGP3:                  {0.088, "2021-08-21", "github.com/syllogismos/aws_console"},
		KeyALBHour:                 {0.02475, "2026-07-03", "github.com/x7even/cloudcostsmcp"},
		KeyALBLCUHour:              {0.0088, "2026-07-03", "CAN1-LCUUsage"},
		KeyNATHour:                 {0.05, "2026-08-29", "github.com/ikolomiets/aws-lambda-zig-demo"},
		KeyNATGB:                   {0.05, "2026-08-29", "github.com/ikolomiets/aws-lambda-zig-demo"},
		KeyEndpointHour:            {0.011, "2026-07-24", "SKU YZK8AEXHY7HJD36A"},
		KeyIPv4Hour:                {0.005, caReadDate, "github.com/YeChen-coder/EBOBotToDigitalPet"},
		KeyKMSKey:                  {1, caReadDate, "the same in every region, per https://aws.amazon.com/kms/pricing/"},
		KeySecret:                  {0.4, caReadDate, "github.com/YeChen-coder/EBOBotToDigitalPet"},
		KeyWAFACL:                  {5, caReadDate, "the same in every region"},
		KeyWAFRule:                 {1, caReadDate, "the same in every region"},
		KeyWAFRequests:             {0.6, caReadDate, "the same in every region"},
		KeyLogsIngestGB:            {0.55, "2025-04-30", "github.com/DuckbillGroup/CloudWatchCashBack"},
		KeyLogsStorageGB:           {0.033, "2025-04-30", "github.com/cevoaustralia/cloudwatch-log-retention-manager"},
	}
	for key, w := range want {
		p, err := ca.Lookup(key)
		if err != nil {
			t.Error(err)
			continue
		}
		if p.USD != w.usd || p.Date != w.date || !strings.Contains(p.Source, w.source) {
			t.Errorf("%s = %+v, want $%g of %s from %q", key, p, w.usd, w.date, w.source)
		}
	}
	for _, p := range ca.Sorted() {
		u, err := us.Lookup(p.Key)
		if err != nil {
			t.Error(err)
			continue
		}
		if p.Unit != u.Unit {
			t.Errorf("%s: unit %q, us-east-1 %q", p.Key, p.Unit, u.Unit)
		}
		if p.USD < u.USD {
			t.Errorf("%s: ca-central-1 $%g is below us-east-1 $%g", p.Key, p.USD, u.USD)
		}
		if strings.Contains(p.Source, "the same in every region") && p.USD != u.USD {
			t.Errorf("%s: $%g is said to be the same in every region, but us-east-1's is $%g", p.Key, p.USD, u.USD)
		}
		// A row cites a repository file at a commit, or an AWS page.
		if !strings.Contains(p.Source, " at ") && !strings.Contains(p.Source, "https://aws.amazon.com/") {
			t.Errorf("%s: source %q names neither a commit nor an AWS page", p.Key, p.Source)
		}
	}
	// The per-vCPU rows are the family's figure times the catalog's vCPUs.
	for _, typ := range []string{"c7i.large", "c7i.xlarge", "c7i.2xlarge", "m7i.large", "m7i.xlarge", "m7i.2xlarge", "r7i.xlarge"} {
		p, _ := ca.Lookup(InstanceKey(typ))
		i, _ := catalog.LookupInstance(typ)
		if !strings.Contains(p.Source, fmt.Sprintf("times %d vCPUs", i.VCPUs)) {
			t.Errorf("%s: source %q does not say it is %d vCPUs' worth", typ, p.Source, i.VCPUs)
		}
	}
	if got := strings.Join(CompleteRegions(), " "); got != "us-east-1" {
		t.Errorf("complete regions %q", got)
	}
}

func TestCostBuiltinRefusesUncoveredRegion(t *testing.T) {
	_, err := Builtin("eu-west-1")
	if err == nil || !strings.Contains(err.Error(), "no prices for eu-west-1") || !strings.Contains(err.Error(), "every price for us-east-1") {
		t.Fatalf("err = %v", err)
	}
}

// A weekend schedule runs across the end of the week: Friday 20:00 to Monday 08:00 is 60 h.
func TestCostWeeklyHoursWrapAroundTheWeek(t *testing.T) {
	var acts []action
	for _, a := range []struct {
		rec      string
		min, max float64
	}{{"0 20 * * FRI", 1, 2}, {"0 8 * * MON", 0, 0}} {
		ms, err := weeklyMinutes(a.rec)
		if err != nil {
			t.Fatal(err)
		}
		acts = append(acts, action{minute: ms[0], min: a.min, max: a.max})
	}
	minH, maxH := weeklyHours(acts)
	near(t, "min", minH, 60)
	near(t, "max", maxH, 120)
}

// An unscheduled on-demand group is part of the floor no schedule can lower; a scheduled one is
// not.
// An unscheduled group costs the same at minimum size and always on, line by line, with any
// price: its volumes' Min, reached through the week's hours, counts as fixed like their
// AlwaysOn, so a stack with no schedule has a floor of 100%.
func TestCostUnscheduledStackFloorIsAlwaysOn(t *testing.T) {
	prices := roundPrices()
	prices.Prices[KeyEBSGP3] = Price{Key: KeyEBSGP3, USD: 0.088, Date: "2026-01-01", Source: "test"}
	rs := pool("gw", 1, 1, false, nil)
	// 20 GB at $0.088 is where 730 h through the week's hours and 730 h directly part ways.
	rs[1].Inputs["blockDeviceMappings"] = []any{map[string]any{"ebs": map[string]any{"volumeSize": 20.0, "volumeType": "gp3"}}}
	e, err := New(&program.Plan{Stack: "s", Region: "test-1", Resources: rs}, prices, DefaultAssumptions())
	if err != nil {
		t.Fatal(err)
	}
	if e.Fixed != e.Min || e.FloorRatio != e.Ratio {
		t.Errorf("fixed %v of min %v, floor %v, ratio %v", e.Fixed, e.Min, e.FloorRatio, e.Ratio)
	}
}

func TestCostFixedCountsUnscheduledGroups(t *testing.T) {
	rs := append(pool("gw", 2, 4, false, nil), pool("p", 1, 2, true, nil)...)
	e := estimate(t, rs, fourWeeks())
	near(t, "fixed", e.Fixed, 2*672*1.0+2*10)
	near(t, "floor", e.FloorRatio, e.Fixed/e.AlwaysOn)
}

// A pool of minimum size 0 whose office hours raise it to 1 is compared with 1 instance always
// on, not with nothing.
func TestCostAlwaysOnUsesTheServingSize(t *testing.T) {
	rs := pool("p", 1, 2, true, nil)
	rs[0].Inputs["minSize"] = 0.0
	e := estimate(t, rs, fourWeeks())
	near(t, "always on", e.Lines[0].AlwaysOn, 672)
	near(t, "volume always on", e.Lines[1].AlwaysOn, 10)
	near(t, "min", e.Lines[0].Min, 240)
}

// Resources the estimate does not price are listed with their count, and only those the plan
// holds.
func TestCostNotCountedListsUnpricedResources(t *testing.T) {
	rs := append(pool("p", 1, 1, false, nil),
		program.PlannedResource{Type: "aws:cloudwatch/metricAlarm:MetricAlarm", Name: "a1"},
		program.PlannedResource{Type: "aws:cloudwatch/metricAlarm:MetricAlarm", Name: "a2"},
		program.PlannedResource{Type: "aws:dynamodb/table:Table", Name: "keys"})
	e := estimate(t, rs, DefaultAssumptions())
	got := map[string]int{}
	for _, n := range e.NotCounted {
		got[n.Type] = n.Count
		if n.What == "" || n.Why == "" {
			t.Errorf("%s: no what or why", n.Type)
		}
	}
	if len(got) != 2 || got["aws:cloudwatch/metricAlarm:MetricAlarm"] != 2 || got["aws:dynamodb/table:Table"] != 1 {
		t.Errorf("not counted %v", got)
	}
	var b strings.Builder
	if err := e.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "; 2 CloudWatch alarm(s) (AWS's free tier covers 10 standard alarm metrics an account); 1 DynamoDB table(s)") {
		t.Errorf("text does not list what is not counted:\n%s", b.String())
	}
}
