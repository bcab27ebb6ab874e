package cost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
	"github.com/aws/aws-sdk-go-v2/service/pricing/types"
)

// ProductsAPI is the one call of the AWS Price List API that Live needs
// (*pricing.Client has it).
type ProductsAPI interface {
	GetProducts(ctx context.Context, in *pricing.GetProductsInput, optFns ...func(*pricing.Options)) (*pricing.GetProductsOutput, error)
}

// liveQuery finds one price: the products of a service in the region that match the filters,
// the one whose usage type ends with usageSuffix (usage types carry a region prefix such as
// "CAN1-", except some of us-east-1's), and its first on-demand price dimension.
type liveQuery struct {
	key, service, unit, usageSuffix string
	filters                         map[string]string
	// scale turns the offer's unit into the table's (per request into per million requests).
	scale float64
}

func liveQueries(instanceTypes []string) []liveQuery {
	q := []liveQuery{
		{key: KeyALBHour, service: "AWSELB", unit: "hour", usageSuffix: "LoadBalancerUsage", filters: map[string]string{"productFamily": "Load Balancer-Application"}},
		{key: KeyALBLCUHour, service: "AWSELB", unit: "hour", usageSuffix: "LCUUsage", filters: map[string]string{"productFamily": "Load Balancer-Application"}},
		{key: KeyNATHour, service: "AmazonEC2", unit: "hour", usageSuffix: "NatGateway-Hours", filters: map[string]string{"productFamily": "NAT Gateway"}},
		{key: KeyNATGB, service: "AmazonEC2", unit: "GB", usageSuffix: "NatGateway-Bytes", filters: map[string]string{"productFamily": "NAT Gateway"}},
		{key: KeyEBSGP3, service: "AmazonEC2", unit: "GB-month", usageSuffix: "EBS:VolumeUsage.gp3", filters: map[string]string{"productFamily": "Storage", "volumeApiName": "gp3"}},
		{key: KeyIPv4Hour, service: "AmazonVPC", unit: "hour", usageSuffix: "PublicIPv4:InUseAddress"},
		{key: KeyEndpointHour, service: "AmazonVPC", unit: "hour", usageSuffix: "VpcEndpoint-Hours"},
		{key: KeyKMSKey, service: "awskms", unit: "month", usageSuffix: "KMS-Keys"},
		{key: KeySecret, service: "AWSSecretsManager", unit: "month", usageSuffix: "AWSSecretsManager-Secrets"},
		{key: KeyWAFACL, service: "awswaf", unit: "month", usageSuffix: "WebACL"},
		{key: KeyWAFRule, service: "awswaf", unit: "month", usageSuffix: "Rule"},
		{key: KeyWAFRequests, service: "awswaf", unit: "million requests", usageSuffix: "Request", scale: 1e6},
		{key: KeyLogsIngestGB, service: "AmazonCloudWatch", unit: "GB", usageSuffix: "VendedLog-Bytes"},
		{key: KeyLogsStorageGB, service: "AmazonCloudWatch", unit: "GB-month", usageSuffix: "TimedStorage-ByteHrs"},
	}
	for _, t := range instanceTypes {
		q = append(q, liveQuery{key: InstanceKey(t), service: "AmazonEC2", unit: "hour", usageSuffix: "BoxUsage:" + t, filters: map[string]string{
			"productFamily": "Compute Instance", "instanceType": t, "operatingSystem": "Linux",
			"tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
		}})
	}
	return q
}

// Live reads the table of region from the AWS Price List API (GetProducts): every service price
// and the on-demand Linux price of each instance type. Each price is dated with its offer's
// effective date and names the product's SKU. The API is served from us-east-1 (and a few other
// regions) whatever region the prices are for.
func Live(ctx context.Context, api ProductsAPI, region string, instanceTypes []string) (*Table, error) {
	t := &Table{Region: region, Prices: map[string]Price{}}
	var errs []error
	for _, q := range liveQueries(instanceTypes) {
		p, err := liveOne(ctx, api, region, q)
		if err != nil {
			errs = append(errs, fmt.Errorf("live price %s: %w", q.key, err))
			continue
		}
		t.Prices[q.key] = p
	}
	return t, errors.Join(errs...)
}

// offer is the part of a Price List product document Live reads.
type offer struct {
	Product struct {
		SKU        string            `json:"sku"`
		Attributes map[string]string `json:"attributes"`
	} `json:"product"`
	Terms struct {
		OnDemand map[string]struct {
			EffectiveDate   string `json:"effectiveDate"`
			PriceDimensions map[string]struct {
				Unit         string            `json:"unit"`
				BeginRange   string            `json:"beginRange"`
				Description  string            `json:"description"`
				PricePerUnit map[string]string `json:"pricePerUnit"`
			} `json:"priceDimensions"`
		} `json:"OnDemand"`
	} `json:"terms"`
}

func liveOne(ctx context.Context, api ProductsAPI, region string, q liveQuery) (Price, error) {
	filters := []types.Filter{{Type: types.FilterTypeTermMatch, Field: aws.String("regionCode"), Value: aws.String(region)}}
	fields := make([]string, 0, len(q.filters))
	for f := range q.filters {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		filters = append(filters, types.Filter{Type: types.FilterTypeTermMatch, Field: aws.String(f), Value: aws.String(q.filters[f])})
	}
	in := &pricing.GetProductsInput{ServiceCode: aws.String(q.service), Filters: filters, FormatVersion: aws.String("aws_v1")}
	for {
		out, err := api.GetProducts(ctx, in)
		if err != nil {
			return Price{}, fmt.Errorf("GetProducts %s in %s: %w", q.service, region, err)
		}
		for _, doc := range out.PriceList {
			var o offer
			if err := json.Unmarshal([]byte(doc), &o); err != nil {
				return Price{}, fmt.Errorf("GetProducts %s: a price list entry is not a product document: %w", q.service, err)
			}
			if !strings.HasSuffix(o.Product.Attributes["usagetype"], q.usageSuffix) {
				continue
			}
			if p, ok := firstDimension(o, q); ok {
				return p, nil
			}
		}
		if out.NextToken == nil || *out.NextToken == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	return Price{}, fmt.Errorf("no on-demand product of %s in %s with a usage type ending %q", q.service, region, q.usageSuffix)
}

// firstDimension returns the product's on-demand price of the first tier (beginRange 0) in USD.
func firstDimension(o offer, q liveQuery) (Price, bool) {
	for _, term := range o.Terms.OnDemand {
		for _, d := range term.PriceDimensions {
			if d.BeginRange != "" && d.BeginRange != "0" {
				continue
			}
			usd, err := strconv.ParseFloat(d.PricePerUnit["USD"], 64)
			if err != nil {
				continue
			}
			if q.scale != 0 {
				usd *= q.scale
			}
			date := term.EffectiveDate
			if len(date) >= 10 {
				date = date[:10]
			}
			return Price{
				Key: q.key, Unit: q.unit, USD: usd, Date: date,
				Source: fmt.Sprintf("AWS Price List API, %s SKU %s (%s)", q.service, o.Product.SKU, d.Description),
			}, true
		}
	}
	return Price{}, false
}
