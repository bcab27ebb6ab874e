package cost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/pricing"
)

// fakePriceListAPI serves GetProducts on loopback in the API's own protocol (JSON 1.1, target
// AWSPriceListService.GetProducts): it answers each request with the products of
// testdata/products.json of the asked service whose attributes match every TERM_MATCH filter,
// two per page, so paging is exercised too. Each product is a document in the shape the Price
// List API returns (product, serviceCode, terms.OnDemand with priceDimensions).
func fakePriceListAPI(t *testing.T) (*httptest.Server, *[]string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/products.json")
	if err != nil {
		t.Fatal(err)
	}
	var products []json.RawMessage
	if err := json.Unmarshal(raw, &products); err != nil {
		t.Fatal(err)
	}
	var targets []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targets = append(targets, r.Header.Get("X-Amz-Target"))
		if r.Header.Get("X-Amz-Target") != "AWSPriceListService.GetProducts" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
			http.Error(w, `{"__type":"InvalidParameterException","message":"unexpected request"}`, http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var in struct {
			ServiceCode string
			Filters     []struct{ Type, Field, Value string }
			NextToken   string
		}
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var match []string
		for _, p := range products {
			var doc struct {
				ServiceCode string `json:"serviceCode"`
				Product     struct {
					ProductFamily string            `json:"productFamily"`
					Attributes    map[string]string `json:"attributes"`
				} `json:"product"`
			}
			if err := json.Unmarshal(p, &doc); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			ok := doc.ServiceCode == in.ServiceCode
			for _, f := range in.Filters {
				v := doc.Product.Attributes[f.Field]
				if f.Field == "productFamily" {
					v = doc.Product.ProductFamily
				}
				ok = ok && f.Type == "TERM_MATCH" && v == f.Value
			}
			if ok {
				match = append(match, string(p))
			}
		}
		start := 0
		fmt.Sscan(in.NextToken, &start)
		end := min(start+2, len(match))
		out := map[string]any{"FormatVersion": "aws_v1", "PriceList": match[start:end]}
		if end < len(match) {
			out["NextToken"] = fmt.Sprint(end)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		json.NewEncoder(w).Encode(out)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &targets
}

func fakeClient(url string) *pricing.Client {
	return pricing.New(pricing.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	})
}

func TestCostLivePricesFromPriceListAPI(t *testing.T) {
	srv, targets := fakePriceListAPI(t)
	tab, err := Live(context.Background(), fakeClient(srv.URL), "ca-central-1", []string{"g5.xlarge", "t3.large"})
	if err != nil {
		t.Fatal(err)
	}
	if len(*targets) == 0 {
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
	srv, _ := fakePriceListAPI(t)
	_, err := Live(context.Background(), fakeClient(srv.URL), "us-west-2", []string{"g5.xlarge"})
	if err == nil || !strings.Contains(err.Error(), `live price ec2/g5.xlarge: no on-demand product of AmazonEC2 in us-west-2 with a usage type ending "BoxUsage:g5.xlarge"`) {
		t.Fatalf("err = %v", err)
	}
}
