package awstest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// do sends one request to srv and returns the status and body.
func do(t *testing.T, srv *httptest.Server, method, path string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The fake behaves as an instance that requires IMDSv2: no metadata without a session token,
// a token only for a PUT with a valid TTL, and the answered paths recorded in order.
func TestIMDSRequiresTheV2Token(t *testing.T) {
	m := &IMDS{InstanceID: "i-0abc", Region: "eu-west-1"}
	srv := httptest.NewServer(m)
	defer srv.Close()

	if code, _ := do(t, srv, http.MethodGet, "/latest/meta-data/instance-id", nil); code != http.StatusUnauthorized {
		t.Errorf("GET without a token: %d, want 401", code)
	}
	for _, ttl := range []string{"", "0", "21601", "x"} {
		if code, _ := do(t, srv, http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": ttl}); code != http.StatusBadRequest {
			t.Errorf("PUT token with TTL %q: %d, want 400", ttl, code)
		}
	}
	if code, _ := do(t, srv, http.MethodGet, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}); code != http.StatusUnauthorized {
		t.Errorf("GET for a token: %d, want 401 (only PUT issues one)", code)
	}
	if m.UsedToken() {
		t.Errorf("UsedToken() before any token was issued")
	}
	code, token := do(t, srv, http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
	if code != http.StatusOK || len(token) != 32 {
		t.Fatalf("PUT token: %d %q, want 200 and a token", code, token)
	}
	if !m.UsedToken() {
		t.Errorf("UsedToken() = false after a token was issued")
	}
	auth := map[string]string{"X-aws-ec2-metadata-token": token}
	if code, _ := do(t, srv, http.MethodGet, "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": "other"}); code != http.StatusUnauthorized {
		t.Errorf("GET with a wrong token: %d, want 401", code)
	}
	if code, body := do(t, srv, http.MethodGet, "/latest/meta-data/instance-id", auth); code != http.StatusOK || body != "i-0abc" {
		t.Errorf("instance-id: %d %q", code, body)
	}
	// No Group: instance tags are not in the metadata.
	if code, _ := do(t, srv, http.MethodGet, "/latest/meta-data/tags/instance/aws:autoscaling:groupName", auth); code != http.StatusNotFound {
		t.Errorf("group tag without Group: %d, want 404", code)
	}
	if code, body := do(t, srv, http.MethodGet, "/latest/meta-data/placement/region", auth); code != http.StatusOK || body != "eu-west-1" {
		t.Errorf("region: %d %q", code, body)
	}
	if got, want := m.Served(), "/latest/meta-data/instance-id /latest/meta-data/placement/region"; got != want {
		t.Errorf("Served() = %q, want %q", got, want)
	}
}

// The drain watcher's two items answer 404 until set, as on an instance in service with no
// spot notice, then what was set.
func TestIMDSLifecycleStateAndSpotNotice(t *testing.T) {
	m := &IMDS{InstanceID: "i-0abc"}
	srv := httptest.NewServer(m)
	defer srv.Close()
	_, token := do(t, srv, http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	h := map[string]string{"X-aws-ec2-metadata-token": token}
	for _, p := range []string{"/latest/meta-data/autoscaling/target-lifecycle-state", "/latest/meta-data/spot/instance-action"} {
		if code, _ := do(t, srv, http.MethodGet, p, h); code != http.StatusNotFound {
			t.Errorf("GET %s before it is set: %d, want 404", p, code)
		}
	}
	m.SetTargetLifecycleState("Terminated")
	m.SetSpotInstanceAction("terminate", time.Date(2026, 12, 4, 18, 2, 0, 0, time.FixedZone("x", 3600)))
	if code, body := do(t, srv, http.MethodGet, "/latest/meta-data/autoscaling/target-lifecycle-state", h); code != http.StatusOK || body != "Terminated" {
		t.Errorf("target-lifecycle-state: %d %q, want 200 Terminated", code, body)
	}
	if code, body := do(t, srv, http.MethodGet, "/latest/meta-data/spot/instance-action", h); code != http.StatusOK || body != `{"action": "terminate", "time": "2026-12-04T17:02:00Z"}` {
		t.Errorf("spot/instance-action: %d %q", code, body)
	}
}

// An instance with a role serves its credentials as EC2 does: the SDK's instance-role provider
// reads them, and an instance without a role has none.
func TestIMDSServesTheRoleCredentials(t *testing.T) {
	m := &IMDS{InstanceID: "i-0abc", Role: "dev-cpu-node"}
	srv := httptest.NewServer(m)
	defer srv.Close()
	provider := ec2rolecreds.New(func(o *ec2rolecreds.Options) {
		o.Client = imds.New(imds.Options{Endpoint: srv.URL})
	})
	creds, err := provider.Retrieve(context.Background())
	if err != nil {
		t.Fatalf("instance-role credentials: %v", err)
	}
	if creds.AccessKeyID != "testing" || creds.SecretAccessKey != "testing" || creds.SessionToken == "" || !creds.CanExpire || creds.Expires.Before(time.Now()) {
		t.Errorf("instance-role credentials: %+v", creds)
	}
	if m.Served() != "/latest/meta-data/iam/security-credentials/ /latest/meta-data/iam/security-credentials/dev-cpu-node" {
		t.Errorf("paths served: %q", m.Served())
	}

	none := httptest.NewServer(&IMDS{InstanceID: "i-0abc"})
	defer none.Close()
	if _, err := ec2rolecreds.New(func(o *ec2rolecreds.Options) {
		o.Client = imds.New(imds.Options{Endpoint: none.URL})
	}).Retrieve(context.Background()); err == nil {
		t.Error("an instance without a role served credentials")
	}
}
