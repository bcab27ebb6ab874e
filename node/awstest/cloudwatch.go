package awstest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// Datum is one metric data point a PutMetricData call carried.
type Datum struct {
	Namespace, Metric, Unit string
	// Dimensions maps each dimension's name to its value.
	Dimensions map[string]string
	Value      float64
}

// CloudWatch fakes PutMetricData in CloudWatch's query protocol (the protocol of the
// project's CloudWatch client, internal/cwclient) and records every data point.
type CloudWatch struct {
	mu   sync.Mutex
	data []Datum
}

// Data returns the data points recorded so far.
func (c *CloudWatch) Data() []Datum {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Datum(nil), c.data...)
}

// ServeHTTP answers PutMetricData.
func (c *CloudWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !queryAction(w, r, "PutMetricData") {
		return
	}
	f := r.PostForm
	var got []Datum
	for i := 1; f.Has(fmt.Sprintf("MetricData.member.%d.MetricName", i)); i++ {
		p := fmt.Sprintf("MetricData.member.%d.", i)
		v, err := strconv.ParseFloat(f.Get(p+"Value"), 64)
		if err != nil {
			xmlError(w, http.StatusBadRequest, "Sender", "InvalidParameterValue", "bad Value")
			return
		}
		d := Datum{Namespace: f.Get("Namespace"), Metric: f.Get(p + "MetricName"), Unit: f.Get(p + "Unit"), Value: v, Dimensions: map[string]string{}}
		for j := 1; f.Has(fmt.Sprintf("%sDimensions.member.%d.Name", p, j)); j++ {
			q := fmt.Sprintf("%sDimensions.member.%d.", p, j)
			d.Dimensions[f.Get(q+"Name")] = f.Get(q + "Value")
		}
		got = append(got, d)
	}
	c.mu.Lock()
	c.data = append(c.data, got...)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprint(w, `<PutMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></PutMetricDataResponse>`)
}

// ServeCloudWatch starts a CloudWatch on 127.0.0.1, points aws-sdk-go-v2's CloudWatch client
// at it for the rest of the test (AWS_ENDPOINT_URL_CLOUDWATCH) and closes it when the test
// ends. Serve calls it, so that no serving node in a test reaches a real endpoint; call it
// again after Serve to read what a node published.
func ServeCloudWatch(t testing.TB) *CloudWatch {
	t.Helper()
	cw := &CloudWatch{}
	srv := httptest.NewServer(cw)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", srv.URL)
	return cw
}
