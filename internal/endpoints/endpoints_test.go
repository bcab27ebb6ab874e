package endpoints

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestForGatewayEndpointsAlways(t *testing.T) {
	if got, want := Services(For(false)), []string{"s3", "dynamodb"}; !slices.Equal(got, want) {
		t.Errorf("For(false) = %v, want %v", got, want)
	}
	for _, e := range For(false) {
		if e.Kind != Gateway {
			t.Errorf("%s: kind %s with a NAT, want only gateway endpoints", e.Service, e.Kind)
		}
	}
}

func TestForAirGapped(t *testing.T) {
	want := []string{"s3", "dynamodb", "ssm", "ssmmessages", "ec2messages", "secretsmanager", "autoscaling", "monitoring", "kms", "logs", "sts"}
	got := For(true)
	if !slices.Equal(Services(got), want) {
		t.Fatalf("For(true) = %v, want %v", Services(got), want)
	}
	seen := map[string]bool{}
	for i, e := range got {
		if seen[e.Service] {
			t.Errorf("%s listed twice", e.Service)
		}
		seen[e.Service] = true
		wantKind := Interface
		if e.Service == "s3" || e.Service == "dynamodb" {
			wantKind = Gateway
		}
		if e.Kind != wantKind {
			t.Errorf("%s: kind %s, want %s", e.Service, e.Kind, wantKind)
		}
		if i > 0 && got[i-1].Kind == Interface && e.Kind == Gateway {
			t.Errorf("%s: a gateway endpoint after an interface endpoint; want gateway endpoints first", e.Service)
		}
		if e.Why == "" || strings.Contains(e.Why, "\n") {
			t.Errorf("%s: want a one-line reason, got %q", e.Service, e.Why)
		}
	}
	// The slice is the caller's: changing it changes nothing for the next caller.
	got[0].Service = "changed"
	if For(true)[0].Service != "s3" {
		t.Error("For returns the package's own slice")
	}
}

func TestServiceName(t *testing.T) {
	if got := ServiceName("ca-central-1", "monitoring"); got != "com.amazonaws.ca-central-1.monitoring" {
		t.Errorf("ServiceName = %q", got)
	}
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// sdkEndpoint maps the aws-sdk-go-v2 service packages a node may link to the endpoint service
// they call.
var sdkEndpoint = map[string]string{
	"s3": "s3", "dynamodb": "dynamodb", "secretsmanager": "secretsmanager",
	"autoscaling": "autoscaling", "cloudwatch": "monitoring",
}

// credentialChain are service packages config.LoadDefaultConfig links for profile-based
// credentials (assume-role, IAM Identity Center, console sign-in); a node's credentials come
// from its instance profile through the metadata service, so it never calls them.
var credentialChain = []string{"sts", "sso", "ssooidc", "signin"}

// boto3Endpoint maps the boto3 client names of the Python modules the agent renders for LiteLLM
// to the endpoint service they call (CloudWatch metrics' endpoint is "monitoring").
var boto3Endpoint = map[string]string{"dynamodb": "dynamodb", "cloudwatch": "monitoring"}

// sessionManager are the services the AMI's SSM agent calls, which no code of the repository does.
var sessionManager = []string{"ssm", "ssmmessages", "ec2messages"}

// TestNodeCalledMatchesTheNodeCode keeps NodeCalled true to the code: every AWS service client
// linked into the node agent, and every boto3 client of the LiteLLM modules it renders, has
// its endpoint marked NodeCalls, and nothing else is (but Session Manager's three).
func TestNodeCalledMatchesTheNodeCode(t *testing.T) {
	root := repoRoot(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the node agent's packages: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-deps", "./cmd/sandbox-node")
	cmd.Dir = root
	// The module cache only: the test never reaches the network.
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/sandbox-node: %v", err)
	}
	called := map[string]string{} // endpoint service -> what calls it
	for _, sn := range sessionManager {
		called[sn] = "the SSM agent"
	}
	const sdk = "github.com/aws/aws-sdk-go-v2/service/"
	linked := 0
	for _, pkg := range strings.Fields(string(out)) {
		rest, ok := strings.CutPrefix(pkg, sdk)
		if !ok || strings.Contains(rest, "/") || rest == "internal" {
			continue
		}
		linked++
		if slices.Contains(credentialChain, rest) {
			continue
		}
		ep, ok := sdkEndpoint[rest]
		if !ok {
			t.Errorf("the node agent links %s%s: give its service an endpoint marked NodeCalls (or, if it only comes along with another package, say why here)", sdk, rest)
			continue
		}
		called[ep] = "the agent's " + rest + " client"
	}
	if linked == 0 {
		t.Fatalf("go list found no AWS service package in the node agent:\n%s", out)
	}

	boto3 := regexp.MustCompile(`boto3\.client\(\s*"([a-z0-9-]+)"`)
	sources, err := filepath.Glob(filepath.Join(root, "node", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	clients := 0
	for _, f := range sources {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range boto3.FindAllStringSubmatch(string(data), -1) {
			clients++
			ep, ok := boto3Endpoint[m[1]]
			if !ok {
				t.Errorf("%s makes a boto3 %q client: give its service an endpoint marked NodeCalls", filepath.Base(f), m[1])
				continue
			}
			called[ep] = "LiteLLM's boto3 " + m[1] + " client"
		}
	}
	if clients == 0 {
		t.Fatal("no boto3 client found in node/*.go; the LiteLLM modules make two (key registry, usage metrics)")
	}

	var want []string
	for ep := range called {
		want = append(want, ep)
	}
	sort.Strings(want)
	got := Services(NodeCalled())
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("NodeCalled() = %v, want %v (what the node's code calls: %v)", got, want, called)
	}
}
