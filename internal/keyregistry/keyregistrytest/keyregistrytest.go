// Package keyregistrytest creates a department's key registry table in an AWS emulator, with
// the key schema the KeyStore component gives the real one (partition key keyregistry.AttrKeyID,
// a string; on demand), for tests of the registry's clients.
package keyregistrytest

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
)

// CreateTable creates department's registry table through cfg and returns a client on it.
func CreateTable(t testing.TB, cfg aws.Config, department string) *dynamodb.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := dynamodb.NewFromConfig(cfg)
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(keyregistry.TableName(department)),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(keyregistry.AttrKeyID), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(keyregistry.AttrKeyID), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatalf("create the key registry table: %v", err)
	}
	return client
}

// Items returns every item of department's table as attribute name → value text, for
// assertions on what the registry stores.
func Items(t testing.TB, client *dynamodb.Client, department string) []map[string]string {
	t.Helper()
	out, err := client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(keyregistry.TableName(department))})
	if err != nil {
		t.Fatalf("scan the key registry table: %v", err)
	}
	var items []map[string]string
	for _, item := range out.Items {
		m := map[string]string{}
		for k, v := range item {
			switch v := v.(type) {
			case *types.AttributeValueMemberS:
				m[k] = v.Value
			case *types.AttributeValueMemberN:
				m[k] = v.Value
			default:
				m[k] = "(other)"
			}
		}
		items = append(items, m)
	}
	return items
}

// EnvMotoPython names the python of the venv holding moto[server] (as for every emulator test;
// `make test` sets it).
const EnvMotoPython = "LLM_SANDBOX_MOTO_PYTHON"

// Emulator is a plain moto server on 127.0.0.1, for the packages that cannot use
// preflighttest's (its harness imports node, which tests the gateway's key checks).
type Emulator struct {
	// URL is its endpoint, http://127.0.0.1:<port>.
	URL string
	// Python is the emulator venv's python, which has boto3.
	Python string
}

// Start starts the emulator and waits (at most 60 s) until it answers; a cleanup stops it. It
// skips the test when EnvMotoPython is unset.
func Start(t *testing.T) *Emulator {
	t.Helper()
	python := os.Getenv(EnvMotoPython)
	if python == "" {
		t.Skipf("the AWS emulator is not configured: run `make e2e-deps` and set %s", EnvMotoPython)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var log bytes.Buffer
	cmd := exec.Command(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the emulator: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	e := &Emulator{URL: "http://127.0.0.1:" + strconv.Itoa(port), Python: python}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := client.Get(e.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return e
			}
		}
		select {
		case <-exited:
			t.Fatalf("the emulator exited:\n%s", log.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator did not answer within 60 s:\n%s", log.String())
		}
	}
}

// Config is an aws.Config for region that sends every call to the emulator with fake
// credentials.
func (e *Emulator) Config(region string) aws.Config {
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(e.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	}
}
