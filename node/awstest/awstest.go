// Package awstest is a test double of the AWS endpoints the node agent calls: the EC2 instance
// metadata service (IMDSv2), Auto Scaling's CompleteLifecycleAction and Secrets Manager's
// GetSecretValue. It lets the agent's unit and command tests run the real aws-sdk-go-v2 clients
// against loopback and cause what a real account cannot on demand, such as "no active lifecycle
// action" or a throttled secret read. The end-to-end tests use a real AWS emulator instead for
// the AWS APIs, and this package's IMDS, which no emulator provides.
package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// IMDS fakes IMDSv2 for one instance: PUT /latest/api/token with a TTL of 1..21600 s returns a
// session token, and GETs that carry it are answered from the fields. No emulator provides IMDS
// (moto serves the AWS APIs, not the link-local metadata service), so the end-to-end tests use
// this fake too. Like an instance whose launch template requires IMDSv2, it refuses a GET
// without the token. Serve it with httptest.NewServer, or through Serve.
type IMDS struct {
	// InstanceID is meta-data/instance-id.
	InstanceID string
	// Group is meta-data/tags/instance/aws:autoscaling:groupName; empty answers 404, as when
	// instance tags are not allowed in metadata.
	Group string
	// Region is meta-data/placement/region, and the region of the instance identity document
	// (which the SDK's GetRegion reads); empty answers 404 for both.
	Region string
	// Role is the instance role: meta-data/iam/security-credentials/ lists it, and
	// meta-data/iam/security-credentials/<Role> answers the emulator's test credentials
	// (access key "testing") as EC2 serves a role's, so the SDK's default chain and the user
	// data's shell both sign with them. Empty answers 404, as for an instance without a role.
	Role string

	mu sync.Mutex
	// lifecycleState is meta-data/autoscaling/target-lifecycle-state; empty answers 404.
	lifecycleState string
	// spotAction is meta-data/spot/instance-action; empty answers 404, as before a notice.
	spotAction string
	token      string
	tokenHit   bool
	paths      []string
}

// ServeHTTP answers IMDSv2 requests.
func (m *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		ttl := r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")
		if n, err := strconv.Atoi(ttl); err != nil || n < 1 || n > 21600 {
			http.Error(w, "missing or bad X-aws-ec2-metadata-token-ttl-seconds", http.StatusBadRequest)
			return
		}
		m.mu.Lock()
		if m.token == "" {
			raw := make([]byte, 16)
			_, _ = rand.Read(raw) // never fails (crypto/rand)
			m.token = hex.EncodeToString(raw)
		}
		m.tokenHit = true
		token := m.token
		m.mu.Unlock()
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", ttl)
		io.WriteString(w, token)
	case r.Method == http.MethodGet:
		m.mu.Lock()
		token := m.token
		m.mu.Unlock()
		if token == "" || r.Header.Get("X-aws-ec2-metadata-token") != token {
			http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
			return
		}
		m.mu.Lock()
		v, ok := m.values()[r.URL.Path]
		if ok && v != "" {
			m.paths = append(m.paths, r.URL.Path)
		}
		m.mu.Unlock()
		if !ok || v == "" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, v)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// SetTargetLifecycleState sets meta-data/autoscaling/target-lifecycle-state, as Auto Scaling
// does: "InService" once the instance is in service, "Terminated" when it starts terminating
// it. Empty answers 404.
func (m *IMDS) SetTargetLifecycleState(state string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lifecycleState = state
}

// SetSpotInstanceAction gives the spot interruption notice meta-data/spot/instance-action:
// action ("terminate", "stop", "hibernate") at the time at, as JSON the way EC2 serves it.
func (m *IMDS) SetSpotInstanceAction(action string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.spotAction = fmt.Sprintf(`{"action": %q, "time": %q}`, action, at.UTC().Format(time.RFC3339))
}

// values maps the metadata paths the fake serves to their answers; m.mu is held.
func (m *IMDS) values() map[string]string {
	values := map[string]string{
		"/latest/meta-data/instance-id":                             m.InstanceID,
		"/latest/meta-data/tags/instance/aws:autoscaling:groupName": m.Group,
		"/latest/meta-data/placement/region":                        m.Region,
		"/latest/meta-data/autoscaling/target-lifecycle-state":      m.lifecycleState,
		"/latest/meta-data/spot/instance-action":                    m.spotAction,
	}
	if m.Role != "" {
		values["/latest/meta-data/iam/security-credentials/"] = m.Role
		values["/latest/meta-data/iam/security-credentials/"+m.Role] = fmt.Sprintf(`{
  "Code" : "Success",
  "LastUpdated" : %q,
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "testing",
  "SecretAccessKey" : "testing",
  "Token" : "testing-session-token",
  "Expiration" : %q
}`, time.Now().UTC().Format(time.RFC3339), time.Now().Add(6*time.Hour).UTC().Format(time.RFC3339))
	}
	if m.Region != "" {
		values["/latest/dynamic/instance-identity/document"] = fmt.Sprintf(
			`{"instanceId": %q, "region": %q, "availabilityZone": %q}`, m.InstanceID, m.Region, m.Region+"a")
	}
	return values
}

// UsedToken reports whether a client asked for an IMDSv2 session token.
func (m *IMDS) UsedToken() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokenHit
}

// Served lists the metadata paths answered, space-separated, in order.
func (m *IMDS) Served() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.paths, " ")
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

// queryAction parses a query-protocol request and reports whether it is a signed POST of
// action; otherwise it has answered with the error the service would send.
func queryAction(w http.ResponseWriter, r *http.Request, action string) bool {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		xmlError(w, http.StatusBadRequest, "Sender", "MalformedInput", "bad request")
		return false
	}
	if got := r.PostForm.Get("Action"); got != action {
		xmlError(w, http.StatusBadRequest, "Sender", "InvalidAction", "awstest does not implement "+got)
		return false
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		xmlError(w, http.StatusForbidden, "Sender", "MissingAuthenticationToken", "request is not signed")
		return false
	}
	return true
}

// ServeHTTP answers POSTed query-protocol requests.
func (a *AutoScaling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !queryAction(w, r, "CompleteLifecycleAction") {
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
		jsonError(w, http.StatusBadRequest, "UnknownOperationException", "awstest implements only secretsmanager.GetSecretValue")
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

// Serve starts meta, an AutoScaling, a SecretsManager and a CloudWatch on 127.0.0.1, points aws-sdk-go-v2 at
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
	ServeCloudWatch(t)
	return asg, sm
}
