// Package pricingtest is a loopback stand-in for the AWS Price List API, for tests of code that
// reads prices with GetProducts (package cost, `sandboxctl cost --prices live`).
package pricingtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// Server serves GetProducts in the API's own protocol (JSON 1.1, target
// AWSPriceListService.GetProducts, SigV4-signed): it answers each request with the products of
// the asked service whose attributes match every TERM_MATCH filter, PageSize per page.
type Server struct {
	*httptest.Server
	// PageSize is how many products a page holds (2, so paging is exercised).
	PageSize int

	mu       sync.Mutex
	requests int
	products []json.RawMessage
}

// NewServer starts a server on 127.0.0.1 that serves the product documents of file (a JSON
// array of documents in the shape GetProducts returns: product, serviceCode, terms.OnDemand
// with priceDimensions), and stops it when the test ends.
func NewServer(t testing.TB, file string) *Server {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{PageSize: 2}
	if err := json.Unmarshal(raw, &s.products); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// Requests returns how many GetProducts calls were answered.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
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
	for _, p := range s.products {
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
	start = min(start, len(match))
	end := min(start+s.PageSize, len(match))
	out := map[string]any{"FormatVersion": "aws_v1", "PriceList": match[start:end]}
	if end < len(match) {
		out["NextToken"] = fmt.Sprint(end)
	}
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}
