package cost

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/pricing"

	"github.com/llm-sandbox/llm-sandbox/internal/cost/pricingtest"
)

// The testdata products are documents in the shape GetProducts returns (product, serviceCode,
// terms.OnDemand with priceDimensions) for ca-central-1; their figures are test data, not prices
// the table relies on.

func fakeClient(url string) *pricing.Client {
	return pricing.New(pricing.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
}

func TestCostLivePricesFromPriceListAPI(t *testing.T) {
	srv := pricingtest.NewServer(t, "testdata/products.json")
	tab, err := Live(context.Background(), fakeClient(srv.URL), "ca-central-1", []string{"g5.xlarge", "t3.large"})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Requests() == 0 {
		t.Fatal("the fake API was not called")
	}
	for key, want := range map[string]float64{
		InstanceKey("g5.xlarge"): 1.118,
		InstanceKey("t3.large"):  0.0928,
		KeyNATHour:               0.05,
		KeyNATGB:                 0.05,
		KeyEBSGP3:                0.088,
		KeyALBHour:               0.02475,
		KeyALBLCUHour:            0.0088,
		KeyKMSKey:                1,
		KeySecret:                0.4,
		KeyWAFACL:                5,
		KeyWAFRule:               1,
		KeyWAFRequests:           0.6, // $0.0000006 per request, per million
		KeyLogsIngestGB:          0.55,
		KeyLogsStorageGB:         0.033,
		KeyIPv4Hour:              0.005,
		KeyEndpointHour:          0.011,
	} {
		p, err := tab.Lookup(key)
		if err != nil {
			t.Error(err)
			continue
		}
		near(t, key, p.USD, want)
		if p.Date == "" || !strings.Contains(p.Source, "AWS Price List API") || !strings.Contains(p.Source, "SKU ") {
			t.Errorf("%s: date %q source %q", key, p.Date, p.Source)
		}
	}
	// The g5.xlarge answer holds a Windows product and a dedicated one too: only the Linux,
	// shared-tenancy product's BoxUsage is taken, and dated by its offer.
	if p := tab.Prices[InstanceKey("g5.xlarge")]; p.Date != "2026-11-01" {
		t.Errorf("g5.xlarge date %q, want the offer's effective date 2026-11-01", p.Date)
	}
}

func TestCostLiveNamesWhatIsMissing(t *testing.T) {
	srv := pricingtest.NewServer(t, "testdata/products.json")
	_, err := Live(context.Background(), fakeClient(srv.URL), "us-west-2", []string{"g5.xlarge"})
	if err == nil || !strings.Contains(err.Error(), `live price ec2/g5.xlarge: no on-demand product of AmazonEC2 in us-west-2 with a usage type ending "BoxUsage:g5.xlarge"`) {
		t.Fatalf("err = %v", err)
	}
}
