// Package fakeaws is a test double of the AWS endpoints the node agent calls: the EC2 instance
// metadata service (IMDSv2), Auto Scaling's CompleteLifecycleAction and Secrets Manager's
// GetSecretValue. It lets the agent's unit and command tests run the real aws-sdk-go-v2 clients
// against loopback and cause what a real account cannot on demand, such as "no active lifecycle
// action" or a throttled secret read. The end-to-end tests use a real AWS emulator instead.
package fakeaws

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// IMDS fakes IMDSv2: PUT /latest/api/token, then GETs under /latest/meta-data/ that carry the
// token.
type IMDS struct {
	// InstanceID is meta-data/instance-id.
	InstanceID string
	// Group is meta-data/tags/instance/aws:autoscaling:groupName; empty answers 404, as when
	// instance tags are not allowed in metadata.
	Group string
	// Region is meta-data/placement/region.
	Region string
}

const token = "fake-imds-token"

// ServeHTTP answers IMDSv2 requests.
func (m *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		fmt.Fprint(w, token)
		return
	}
	if r.Header.Get("X-aws-ec2-metadata-token") != token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	values := map[string]string{
		"/latest/meta-data/instance-id":                             m.InstanceID,
		"/latest/meta-data/tags/instance/aws:autoscaling:groupName": m.Group,
		"/latest/meta-data/placement/region":                        m.Region,
	}
	if m.Region != "" {
		// The SDK's GetRegion reads the region from the instance identity document.
		values["/latest/dynamic/instance-identity/document"] = fmt.Sprintf(
			`{"instanceId": %q, "region": %q, "availabilityZone": %q}`, m.InstanceID, m.Region, m.Region+"a")
	}
	v, ok := values[r.URL.Path]
	if !ok || v == "" {
		http.NotFound(w, r)
		return
	}
	fmt.Fprint(w, v)
}

// Call is one CompleteLifecycleAction request.
type Call struct {
	Group      string
	Hook       string
	InstanceID string
	Result     string
}

// AutoScaling fakes CompleteLifecycleAction in Auto Scaling's query protocol and records the
// calls.
type AutoScaling struct {
	mu             sync.Mutex
	noActiveAction bool
	failures       int
	calls          []Call
}

// SetNoActiveAction makes the next calls answer as AWS does when the instance is not waiting
// on a hook (a reboot): ValidationError "No active Lifecycle Action found with instance ID".
func (a *AutoScaling) SetNoActiveAction(v bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.noActiveAction = v
}

// FailNext makes the next n calls answer 503 ServiceUnavailable.
func (a *AutoScaling) FailNext(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failures = n
}

// Calls returns the calls recorded so far (failed ones included).
func (a *AutoScaling) Calls() []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Call(nil), a.calls...)
}

func xmlError(w http.ResponseWriter, status int, kind, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fake</RequestId></ErrorResponse>`, kind, code, msg)
}

// ServeHTTP answers POSTed query-protocol requests.
func (a *AutoScaling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		xmlError(w, http.StatusBadRequest, "Sender", "MalformedInput", "bad request")
		return
	}
	if action := r.PostForm.Get("Action"); action != "CompleteLifecycleAction" {
		xmlError(w, http.StatusBadRequest, "Sender", "InvalidAction", "fakeaws does not implement "+action)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		xmlError(w, http.StatusForbidden, "Sender", "MissingAuthenticationToken", "request is not signed")
		return
	}
	call := Call{
		Group:      r.PostForm.Get("AutoScalingGroupName"),
		Hook:       r.PostForm.Get("LifecycleHookName"),
		InstanceID: r.PostForm.Get("InstanceId"),
		Result:     r.PostForm.Get("LifecycleActionResult"),
	}
	a.mu.Lock()
	a.calls = append(a.calls, call)
	noActive := a.noActiveAction
	fail := a.failures > 0
	if fail {
		a.failures--
	}
	a.mu.Unlock()
	switch {
	case fail:
		xmlError(w, http.StatusServiceUnavailable, "Receiver", "ServiceUnavailable", "try again")
	case noActive:
		xmlError(w, http.StatusBadRequest, "Sender", "ValidationError", "No active Lifecycle Action found with instance ID "+call.InstanceID)
	default:
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><CompleteLifecycleActionResult></CompleteLifecycleActionResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></CompleteLifecycleActionResponse>`)
	}
}

// SecretsManager fakes GetSecretValue in Secrets Manager's JSON 1.1 protocol (POST / with
// X-Amz-Target: secretsmanager.GetSecretValue) for secrets held in memory, and records the
// SecretIds asked for.
type SecretsManager struct {
	mu       sync.Mutex
	secrets  map[string]string
	failures int
	calls    []string
}

// Put stores a secret's string value under id (an ARN, or a name).
func (s *SecretsManager) Put(id, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secrets == nil {
		s.secrets = map[string]string{}
	}
	s.secrets[id] = value
}

// FailNext makes the next n calls answer 400 ThrottlingException, as a busy account does.
func (s *SecretsManager) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = n
}

// Calls returns the SecretIds asked for so far (failed calls included).
func (s *SecretsManager) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func jsonError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// ServeHTTP answers GetSecretValue.
func (s *SecretsManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
		jsonError(w, http.StatusBadRequest, "UnknownOperationException", "fakeaws implements only secretsmanager.GetSecretValue")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		jsonError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "request is not signed")
		return
	}
	var in struct {
		SecretID string `json:"SecretId"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err := json.Unmarshal(body, &in); err != nil || in.SecretID == "" {
		jsonError(w, http.StatusBadRequest, "InvalidParameterException", "SecretId is required")
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, in.SecretID)
	fail := s.failures > 0
	if fail {
		s.failures--
	}
	value, ok := s.secrets[in.SecretID]
	s.mu.Unlock()
	switch {
	case fail:
		jsonError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
	case !ok:
		jsonError(w, http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
	default:
		name := in.SecretID
		if i := strings.LastIndex(name, ":secret:"); i >= 0 {
			name = name[i+len(":secret:"):]
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"ARN": in.SecretID, "Name": name, "SecretString": value,
			"VersionId": "00000000-0000-0000-0000-000000000001", "VersionStages": []string{"AWSCURRENT"},
			"CreatedDate": 1764300000,
		})
	}
}

// Serve starts meta, an AutoScaling and a SecretsManager on 127.0.0.1, points aws-sdk-go-v2 at
// them through the environment for the rest of the test (dummy static credentials, no shared
// config files, so no test reaches a real AWS endpoint), and closes them when the test ends.
func Serve(t testing.TB, meta *IMDS) (*AutoScaling, *SecretsManager) {
	t.Helper()
	asg, sm := &AutoScaling{}, &SecretsManager{}
	imdsSrv, asgSrv, smSrv := httptest.NewServer(meta), httptest.NewServer(asg), httptest.NewServer(sm)
	for _, s := range []*httptest.Server{imdsSrv, asgSrv, smSrv} {
		t.Cleanup(s.Close)
	}
	for k, v := range map[string]string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": imdsSrv.URL,
		"AWS_EC2_METADATA_DISABLED":         "false",
		"AWS_ENDPOINT_URL_AUTO_SCALING":     asgSrv.URL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER":  smSrv.URL,
		"AWS_ACCESS_KEY_ID":                 "AKIAFAKEFAKEFAKEFAKE",
		"AWS_SECRET_ACCESS_KEY":             "fake-secret",
		"AWS_SESSION_TOKEN":                 "",
		"AWS_PROFILE":                       "",
		"AWS_CONFIG_FILE":                   "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE":       "/dev/null",
		"AWS_ENDPOINT_URL":                  "",
		"AWS_REGION":                        "",
		"AWS_DEFAULT_REGION":                "",
	} {
		t.Setenv(k, v)
	}
	return asg, sm
}
