package cost

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
)

// Price is one unit price of the table, with where and when it was read.
type Price struct {
	// Key names the price: "ec2/<type>" for an instance type, otherwise one of the Key*
	// constants.
	Key string `json:"key"`
	// Unit is what one USD figure buys: "hour", "GB", "month", "GB-month", "million requests".
	Unit string `json:"unit"`
	// USD is the price in US dollars per Unit.
	USD float64 `json:"usd"`
	// Date is the day the price was read from Source (YYYY-MM-DD), or the Price List API
	// offer's effective date for live prices.
	Date string `json:"date"`
	// Source names the page or API the price comes from.
	Source string `json:"source"`
}

// Keys of the prices other than instance types.
const (
	KeyALBHour       = "elb/alb-hour"
	KeyALBLCUHour    = "elb/alb-lcu-hour"
	KeyNATHour       = "vpc/nat-gateway-hour"
	KeyNATGB         = "vpc/nat-gateway-gb"
	KeyIPv4Hour      = "vpc/public-ipv4-hour"
	KeyEndpointHour  = "vpc/interface-endpoint-az-hour"
	KeyEBSGP3        = "ebs/gp3-gb-month"
	KeyKMSKey        = "kms/key-month"
	KeySecret        = "secretsmanager/secret-month"
	KeyWAFACL        = "waf/web-acl-month"
	KeyWAFRule       = "waf/rule-month"
	KeyWAFRequests   = "waf/million-requests"
	KeyLogsIngestGB  = "logs/vended-ingest-gb"
	KeyLogsStorageGB = "logs/storage-gb-month"
)

// InstanceKey is the price key of an EC2 instance type (on-demand, Linux, shared tenancy).
func InstanceKey(instanceType string) string { return "ec2/" + instanceType }

// Table is the unit prices of one region.
type Table struct {
	// Region is the AWS region the prices are for.
	Region string `json:"region"`
	// Prices are keyed by Price.Key.
	Prices map[string]Price `json:"prices"`
}

// Lookup returns the price of key, or an error naming the key and the region.
func (t *Table) Lookup(key string) (Price, error) {
	p, ok := t.Prices[key]
	if !ok {
		return Price{}, fmt.Errorf("no price for %s in %s", key, t.Region)
	}
	return p, nil
}

// Sorted returns the prices ordered by key.
func (t *Table) Sorted() []Price {
	out := make([]Price, 0, len(t.Prices))
	for _, p := range t.Prices {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// The service prices of the built-in table, read on readDate. AWS's pricing pages render their
// regional tables in the browser, so a stored copy of a page holds only the figures it states in
// its own text and examples; the rows below are those US East (N. Virginia) figures, read from
// stored copies of the pages named per row and of public transcriptions that quote them (the
// WAF figures also appear in the cost example of AWS's "Security Automations for AWS WAF"
// solution guide). `--prices live` replaces them with the Price List API's.
const readDate = "2026-12-04"

// builtin holds the table's rows per region. us-east-1 is complete: its service rows above and
// the instance catalog's prices (internal/catalog is the one home of us-east-1 instance prices,
// which the spot-type choice also reads). Other regions hold only the rows that a public source
// states for that region, or that AWS states are the same in every region; a price no source gave is left out rather than guessed, and an
// estimate that needs it stops naming it (Missing, MissingPricesError). `--prices live` reads
// every price of any region from the AWS Price List API.
var builtin = map[string][]Price{
	"us-east-1": {
		{KeyALBHour, "hour", 0.0225, readDate, "https://aws.amazon.com/elasticloadbalancing/pricing/ (Application Load Balancer, US East (N. Virginia) example: $0.0225 per ALB-hour)"},
		{KeyALBLCUHour, "hour", 0.008, readDate, "https://aws.amazon.com/elasticloadbalancing/pricing/ (Application Load Balancer, US East (N. Virginia) example: $0.008 per LCU-hour)"},
		{KeyNATHour, "hour", 0.045, readDate, "https://aws.amazon.com/vpc/pricing/ (NAT gateway: $0.045 per NAT gateway-hour, US East)"},
		{KeyNATGB, "GB", 0.045, readDate, "https://aws.amazon.com/vpc/pricing/ (NAT gateway: $0.045 per GB processed, US East)"},
		{KeyIPv4Hour, "hour", 0.005, readDate, "https://aws.amazon.com/vpc/pricing/ (public IPv4 address in use: $0.005 per IP-hour, all regions)"},
		{KeyEndpointHour, "hour", 0.01, readDate, "https://aws.amazon.com/privatelink/pricing/ (interface endpoint: $0.01 per endpoint per AZ-hour, US East (N. Virginia))"},
		{KeyEBSGP3, "GB-month", 0.08, readDate, "https://aws.amazon.com/ebs/pricing/ (gp3 storage: $0.08 per GB-month, US East (N. Virginia))"},
		{KeyKMSKey, "month", 1.00, readDate, "https://aws.amazon.com/kms/pricing/ (customer managed key: $1 per key per month, prorated hourly)"},
		{KeySecret, "month", 0.40, readDate, "https://aws.amazon.com/secrets-manager/pricing/ ($0.40 per secret per month)"},
		{KeyWAFACL, "month", 5.00, readDate, "https://aws.amazon.com/waf/pricing/ (web ACL: $5.00 per month; the US East cost example of the Security Automations for AWS WAF solution guide)"},
		{KeyWAFRule, "month", 1.00, readDate, "https://aws.amazon.com/waf/pricing/ (rule: $1.00 per rule per web ACL per month)"},
		{KeyWAFRequests, "million requests", 0.60, readDate, "https://aws.amazon.com/waf/pricing/ ($0.60 per million requests inspected)"},
		{KeyLogsIngestGB, "GB", 0.50, readDate, "https://aws.amazon.com/cloudwatch/pricing/ (vended logs delivered to CloudWatch Logs, first 10 TB: $0.50 per GB, US East (N. Virginia))"},
		{KeyLogsStorageGB, "GB-month", 0.03, readDate, "https://aws.amazon.com/cloudwatch/pricing/ (log storage, archived: $0.03 per GB-month, US East (N. Virginia))"},
	},
	// Canada (Central): every price but g6e.xlarge, each from a public source that states a
	// ca-central-1 figure (or, for the services AWS prices alike in every region, from the AWS
	// page or post that says so). docs/cost.md, Prices, lists each row beside its us-east-1
	// figure; the sources are named per row below.
	"ca-central-1": {
		// The GPU types' on-demand Linux prices, from a public dataset generated from
		// instances.vantage.sh (which republishes the AWS Price List) on 2026-01-21. Its us-east-1
		// figures for the same types equal the catalog's. The same dataset lists no g6e.xlarge in
		// ca-central-1 (its availability omits the region), so the type has no row.
		caGPU("g4dn.xlarge", 0.584, "g4dn"),
		caGPU("g4dn.2xlarge", 0.835, "g4dn"),
		caGPU("g5.xlarge", 1.117, "g5"),
		caGPU("g5.2xlarge", 1.34573, "g5"),
		caGPU("g5.4xlarge", 1.80319, "g5"),
		caGPU("g5.12xlarge", 6.29784, "g5"),
		caGPU("g6.xlarge", 0.8936, "g6"),
		caGPU("g6.2xlarge", 1.08547, "g6"),
		// The t3 types', from the ec2instances.info data a Go library embedded on 2019-04-05,
		// dated so; its us-east-1 t3 figures equal the catalog's of 2026, and the 2026 per-vCPU
		// table below gives the same ca-central-1 figure (0.0464 a vCPU-hour).
		caT3("t3.large", 0.0928),
		caT3("t3.xlarge", 0.1856),
		// The current-generation CPU types', from a per-vCPU-hour table of each family's
		// on-demand Linux price per region (a type's price is the family's figure times its
		// vCPUs: these families price linearly with size, as the catalog's us-east-1 prices
		// show). The table's us-east-1 figures times vCPUs equal the catalog's, and its
		// ca-central-1 t3 figure times 2 equals the t3.large row above.
		caVCPU("c7i.large", 0.048825),
		caVCPU("c7i.xlarge", 0.048825),
		caVCPU("c7i.2xlarge", 0.048825),
		caVCPU("m7i.large", 0.056175),
		caVCPU("m7i.xlarge", 0.056175),
		caVCPU("m7i.2xlarge", 0.056175),
		caVCPU("r7i.xlarge", 0.07245),
		// Services.
		{KeyEBSGP3, "GB-month", 0.088, "2021-08-21", "github.com/syllogismos/aws_console \"AWS Console/Helpers/VolumePricingHelper.swift\" at 25f73415d32b (storagePricing[\"ca-central-1\"][\"gp3\"], transcribed from https://aws.amazon.com/ebs/pricing/; its us-east-1 gp3 figure, $0.08, is the us-east-1 row's of 2026)"},
		{KeyALBHour, "hour", 0.02475, "2026-07-03", "github.com/x7even/cloudcostsmcp opencloudcosts-go/internal/providers/aws/aws_network_alb_test.go at 1b72a8b55324 (the AWSELB ca-central-1 offer as fetched 2026-07-03: Canada (Central) LoadBalancerUsage, Load Balancer-Application, $0.02475 an hour)"},
		{KeyALBLCUHour, "hour", 0.0088, "2026-07-03", "github.com/x7even/cloudcostsmcp opencloudcosts-go/internal/providers/aws/aws_network_alb_test.go at 1b72a8b55324 (the AWSELB ca-central-1 offer as fetched 2026-07-03: CAN1-LCUUsage, $0.0088 per LCU-hour)"},
		{KeyNATHour, "hour", 0.05, "2026-08-29", "github.com/ikolomiets/aws-lambda-zig-demo docs/research/sqs-egress-without-interface-endpoint.md at 7cef0dcde508 (2026-08-29: the current Canada (Central) AmazonEC2 price list prices a NAT gateway-hour at $0.05)"},
		{KeyNATGB, "GB", 0.05, "2026-08-29", "github.com/ikolomiets/aws-lambda-zig-demo docs/research/sqs-egress-without-interface-endpoint.md at 7cef0dcde508 (2026-08-29: the current Canada (Central) AmazonEC2 price list prices a GB processed by a NAT gateway at $0.05)"},
		{KeyEndpointHour, "hour", 0.011, "2026-07-24", "github.com/ikolomiets/aws-lambda-zig-demo docs/research/sqs-egress-without-interface-endpoint.md at 7cef0dcde508 (the Canada (Central) AmazonVPC price list of publication 2026-07-24T15:42:25Z: SKU YZK8AEXHY7HJD36A, $0.011 per endpoint-hour in each AZ)"},
		{KeyIPv4Hour, "hour", 0.005, caReadDate, "github.com/YeChen-coder/EBOBotToDigitalPet ShootToTheAWSCloud_en.md at 6f9c964219c9 (a ca-central-1 estimate priced from the AmazonVPC ca-central-1 price list: public IPv4 $0.005 an hour); the same in every region, per https://aws.amazon.com/vpc/pricing/"},
		{KeyKMSKey, "month", 1.00, caReadDate, "the same in every region, per https://aws.amazon.com/kms/pricing/ (Key storage: each AWS KMS key costs $1/month, prorated hourly; the page states one price, with no regional table)"},
		{KeySecret, "month", 0.40, caReadDate, "github.com/YeChen-coder/EBOBotToDigitalPet ShootToTheAWSCloud_en.md at 6f9c964219c9 (a ca-central-1 estimate: Secrets Manager $0.40 per secret a month)"},
		{KeyWAFACL, "month", 5.00, caReadDate, wafEveryRegion + " (web ACL: $5.00 per month)"},
		{KeyWAFRule, "month", 1.00, caReadDate, wafEveryRegion + " (rule: $1.00 per rule per web ACL per month)"},
		{KeyWAFRequests, "million requests", 0.60, caReadDate, wafEveryRegion + " ($0.60 per million requests inspected)"},
		{KeyLogsIngestGB, "GB", 0.55, "2025-04-30", "github.com/DuckbillGroup/CloudWatchCashBack cloudwatch_pricing.json at 2ee064bb4fd3 (current as of 2025-04-30): [\"ca-central-1\"].logs.vended_logs.to_cloudwatch_logs_standard.first_10tb, $0.55 per GB; its us-east-1 figure, $0.50, is the us-east-1 row's"},
		{KeyLogsStorageGB, "GB-month", 0.033, "2025-04-30", "github.com/DuckbillGroup/CloudWatchCashBack cloudwatch_pricing.json at 2ee064bb4fd3 (current as of 2025-04-30): [\"ca-central-1\"].logs.storage, $0.033 per GB-month; the Price List figure of 2021-04-27 in github.com/cevoaustralia/cloudwatch-log-retention-manager src/log_retention_compliance/entrypoint.py at 337a337533eb is the same"},
	},
}

// caReadDate is the day the ca-central-1 rows whose source states no date of its own were read.
const caReadDate = "2026-12-05"

// wafEveryRegion says where the WAF rows of a region other than us-east-1 come from: AWS
// prices WAF alike in every region.
const wafEveryRegion = "the same in every region, per https://aws.amazon.com/blogs/networking-and-content-delivery/cost-effective-ways-for-securing-your-web-applications-using-aws-waf/ (AWS WAF pricing model: \"The pricing for AWS WAF is consistent across all AWS Regions\"); figures per https://aws.amazon.com/waf/pricing/"

// caVCPUDate and caVCPUCommit are the per-vCPU-hour table the ca-central-1 CPU types come from.
const (
	caVCPUDate   = "2026-03-15"
	caVCPUCommit = "1846007626387fcc70f3b899e194da73bcaad45d"
)

// caVCPU is a ca-central-1 CPU type's row: the family's price per vCPU-hour times the type's
// vCPUs (the catalog's), rounded to the millionth of a dollar. A type the catalog lacks gets no
// price, which the table's own test refuses.
func caVCPU(instanceType string, perVCPU float64) Price {
	i, _ := catalog.LookupInstance(instanceType)
	family, _, _ := strings.Cut(instanceType, ".")
	return Price{
		Key: InstanceKey(instanceType), Unit: "hour", USD: math.Round(perVCPU*float64(i.VCPUs)*1e6) / 1e6, Date: caVCPUDate,
		Source: fmt.Sprintf("github.com/sprinters-sh/sprinters.sh docs/aws-regions.md at %s (instance price table of %s, family %s, ca-central-1: $%g per vCPU-hour) times %d vCPUs",
			caVCPUCommit[:12], caVCPUDate, family, perVCPU, i.VCPUs),
	}
}

// caGPUSource is the dataset the ca-central-1 GPU rows come from, at the commit read, and the
// day it was generated.
const (
	caGPUDate   = "2026-01-21"
	caGPUCommit = "7412fd256c5eda04a70a17742a68e8e44824b2cb"
)

// caT3Date and caT3Commit are the snapshot the ca-central-1 t3 rows come from.
const (
	caT3Date   = "2019-04-05"
	caT3Commit = "83e9ebdd6081baf5f657bc061fb57053e8c4b215"
)

func caT3(instanceType string, usd float64) Price {
	return Price{
		Key: InstanceKey(instanceType), Unit: "hour", USD: usd, Date: caT3Date,
		Source: fmt.Sprintf("github.com/LeanerCloud/ec2-instances-info data/generated_bindata.go at %s (ec2instances.info data of %s, gzip-embedded), pricing.ca-central-1.linux.ondemand",
			caT3Commit[:12], caT3Date),
	}
}

func caGPU(instanceType string, usd float64, family string) Price {
	return Price{
		Key: InstanceKey(instanceType), Unit: "hour", USD: usd, Date: caGPUDate,
		Source: fmt.Sprintf("github.com/tsaol/aws-gpu data/%s_instances.js at %s (generated from instances.vantage.sh on %s), pricing.ca-central-1.onDemand",
			family, caGPUCommit[:12], caGPUDate),
	}
}

// builtinInstanceRegion is the region of the catalog's instance prices (catalog.Instance's
// PricePerHour is the on-demand Linux price in us-east-1).
const builtinInstanceRegion = "us-east-1"

// Regions returns the regions the built-in table holds rows for, sorted: complete ones and
// partial ones (see Table.Missing).
func Regions() []string {
	out := make([]string, 0, len(builtin))
	for r := range builtin {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// CompleteRegions returns the regions whose built-in table holds every price an estimate can
// ask for, sorted.
func CompleteRegions() []string {
	var out []string
	for _, r := range Regions() {
		if t, _ := Builtin(r); len(t.Missing()) == 0 {
			out = append(out, r)
		}
	}
	return out
}

// Builtin returns the built-in table of region: its rows and, for us-east-1, every catalog
// instance type's price. A region the table holds no rows for is an error that names the
// complete regions; a partial region's table is returned as it is (Missing names what it lacks).
func Builtin(region string) (*Table, error) {
	rows, ok := builtin[region]
	if !ok {
		return nil, fmt.Errorf("the price table has no prices for %s (it has every price for %s)", region, strings.Join(CompleteRegions(), ", "))
	}
	t := &Table{Region: region, Prices: map[string]Price{}}
	for _, p := range rows {
		t.Prices[p.Key] = p
	}
	if region == builtinInstanceRegion {
		for _, typ := range catalog.InstanceTypes() {
			i, _ := catalog.LookupInstance(typ)
			t.Prices[InstanceKey(typ)] = Price{Key: InstanceKey(typ), Unit: "hour", USD: i.PricePerHour, Date: i.PriceDate, Source: i.PriceSource}
		}
	}
	return t, nil
}

// ServiceKeys returns the keys of every price other than instance types, sorted.
func ServiceKeys() []string {
	var out []string
	for _, q := range liveQueries(nil) {
		out = append(out, q.key)
	}
	sort.Strings(out)
	return out
}

// Missing returns the keys of the prices an estimate can ask for (every catalog instance type
// and every service price) that the table lacks, sorted.
func (t *Table) Missing() []string {
	var out []string
	for _, typ := range catalog.InstanceTypes() {
		if _, ok := t.Prices[InstanceKey(typ)]; !ok {
			out = append(out, InstanceKey(typ))
		}
	}
	for _, k := range ServiceKeys() {
		if _, ok := t.Prices[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// MissingPricesError is an estimate that needs prices its table lacks.
type MissingPricesError struct {
	Stack, Region string
	// Keys are the missing prices' keys, sorted.
	Keys []string
	// Have are the keys of the prices the estimate needs that the table holds, sorted.
	Have []string
}

func (e *MissingPricesError) Error() string {
	msg := fmt.Sprintf("estimate %s: no %s price for %s", e.Stack, e.Region, strings.Join(e.Keys, ", "))
	if len(e.Have) > 0 {
		msg += fmt.Sprintf(" (of the prices it needs, the table has %s)", strings.Join(e.Have, ", "))
	}
	return msg
}
