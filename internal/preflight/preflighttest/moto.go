// Package preflighttest starts the real AWS emulator the preflight tests run against: the pinned
// moto server (tools/requirements-moto.txt) through tools/moto_preflight.py, which adds the EC2
// quotas and public AMI parameters moto lacks and fixes its signature check of bodiless requests
// (its docstring says what and why). It also seeds the emulator through the same AWS APIs an
// operator would use.
//
// The emulator's python comes from LLM_SANDBOX_MOTO_PYTHON, which `make test` sets after
// `make e2e-deps` installs the venv; without it the tests skip. It binds 127.0.0.1 only and is
// stopped when the test ends.
package preflighttest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/llm-sandbox/llm-sandbox/internal/catalog"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
)

// EnvMotoPython names the python of the venv that holds moto[server].
const EnvMotoPython = localruntest.EnvMotoPython

// Fake AMI ids the emulator publishes under the AMI parameters.
const (
	GPUAMI = "ami-0a10a10a10a10a10a"
	CPUAMI = "ami-02404024040240402"
)

// PublicParameters maps region → SSM parameter name → value: what the emulator publishes
// under /aws/service/ in every account.
type PublicParameters map[string]map[string]string

// AMIParameters publishes both AMI parameters the nodes use in each region.
func AMIParameters(regions ...string) PublicParameters {
	p := PublicParameters{}
	for _, r := range regions {
		p[r] = map[string]string{catalog.GPUAMIParameter: GPUAMI, catalog.CPUAMIParameter: CPUAMI}
	}
	return p
}

// Moto is a running emulator.
type Moto struct {
	// URL is its endpoint, http://127.0.0.1:<port>.
	URL string
	// Log is the emulator's own output.
	Log string
}

// Start starts the emulator with the given public parameters and waits (at most 60 s) until it
// answers; a cleanup stops it. It skips the test when EnvMotoPython is unset.
func Start(t testing.TB, published PublicParameters) *Moto {
	t.Helper()
	python := localruntest.RequireMoto(t)
	repo, err := localrun.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	params := filepath.Join(dir, "public-parameters.json")
	data, _ := json.Marshal(published)
	if err := os.WriteFile(params, data, 0o644); err != nil {
		t.Fatal(err)
	}
	port := localrun.FreePort(t)
	m := &Moto{URL: "http://127.0.0.1:" + strconv.Itoa(port), Log: filepath.Join(dir, "moto.log")}
	cmd := exec.Command(python, filepath.Join(repo, "tools", "moto_preflight.py"),
		"--host", "127.0.0.1", "--port", strconv.Itoa(port), "--public-parameters", params)
	// A requested (AMAZON_ISSUED) certificate stays PENDING_VALIDATION for this long; moto's
	// default of 60 s would let a slow test see it issued.
	cmd.Env = append(os.Environ(), "MOTO_ACM_VALIDATION_WAIT=3600")
	exited := localrun.StartGroup(t, "the emulator", cmd, m.Log)

	client := &http.Client{Timeout: 2 * time.Second}
	localrun.WaitReady(t, "the emulator", exited, m.Log, 60*time.Second, 200*time.Millisecond, func() error {
		resp, err := client.Get(m.URL + "/moto-api/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /moto-api/: HTTP %d", resp.StatusCode)
		}
		return nil
	})
	return m
}

// Config is an aws.Config for region that sends every call to the emulator with fake
// credentials (any key will do until EnforceAuth).
func (m *Moto) Config(region string) aws.Config {
	return m.ConfigAs(region, "testing", "testing")
}

// ConfigAs is Config with the given access key.
func (m *Moto) ConfigAs(region, keyID, secret string) aws.Config {
	return aws.Config{
		Region:       region,
		BaseEndpoint: aws.String(m.URL),
		Credentials:  credentials.NewStaticCredentialsProvider(keyID, secret, ""),
	}
}

// SetEnv points the AWS SDK's default configuration at the emulator for the rest of the test:
// AWS_ENDPOINT_URL and fake static credentials, with every other credential source (profiles,
// shared files, IMDS) switched off so nothing of the machine's own AWS set-up is read.
func (m *Moto) SetEnv(t *testing.T) {
	Isolate(t)
	t.Setenv("AWS_ENDPOINT_URL", m.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
}

// Isolate clears every AWS credential and configuration source of the environment for the rest
// of the test, so the SDK's default chain finds no credentials.
func Isolate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-file")
	t.Setenv("AWS_CONFIG_FILE", missing)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	} {
		t.Setenv(k, "") // records the value to restore
		os.Unsetenv(k)
	}
}

// RaiseQuota sets an EC2 quota's applied value the way an operator asks for it: Service Quotas
// RequestServiceQuotaIncrease, which the emulator approves at once.
func (m *Moto) RaiseQuota(t testing.TB, region, code string, vcpus float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := servicequotas.NewFromConfig(m.Config(region)).RequestServiceQuotaIncrease(ctx, &servicequotas.RequestServiceQuotaIncreaseInput{
		ServiceCode: aws.String("ec2"), QuotaCode: aws.String(code), DesiredValue: aws.Float64(vcpus),
	})
	if err != nil {
		t.Fatalf("emulator: request %s = %v in %s: %v", code, vcpus, region, err)
	}
	if out.RequestedQuota == nil || out.RequestedQuota.Status != "APPROVED" {
		t.Fatalf("emulator: request %s = %v in %s: not approved: %+v", code, vcpus, region, out.RequestedQuota)
	}
}

// ImportCertificate imports a self-signed certificate for names (the first is the subject's
// common name) valid until notAfter, and returns its ARN. ACM marks an imported certificate
// ISSUED at once, and EXPIRED once notAfter has passed.
func (m *Moto) ImportCertificate(t testing.TB, region string, names []string, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := acm.NewFromConfig(m.Config(region)).ImportCertificate(ctx, &acm.ImportCertificateInput{
		Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		PrivateKey:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
	})
	if err != nil {
		t.Fatalf("emulator: import a certificate for %v: %v", names, err)
	}
	return aws.ToString(out.CertificateArn)
}

// RequestCertificate requests a DNS-validated certificate for names and returns its ARN; it
// stays PENDING_VALIDATION (see Start).
func (m *Moto) RequestCertificate(t testing.TB, region string, names ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := acm.NewFromConfig(m.Config(region)).RequestCertificate(ctx, &acm.RequestCertificateInput{
		DomainName: aws.String(names[0]), SubjectAlternativeNames: names, ValidationMethod: "DNS",
	})
	if err != nil {
		t.Fatalf("emulator: request a certificate for %v: %v", names, err)
	}
	return aws.ToString(out.CertificateArn)
}

// CreateHostedZone creates a Route 53 hosted zone for domain and returns its bare id (without
// /hostedzone/), as access.hostedZoneId takes it. A private zone is associated with a new VPC
// in region, as AWS requires of one. Route 53 is global: every region's Config reaches the
// same zones.
func (m *Moto) CreateHostedZone(t testing.TB, region, domain string, private bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in := &route53.CreateHostedZoneInput{
		Name:            aws.String(domain),
		CallerReference: aws.String(fmt.Sprintf("preflighttest-%s-%d", domain, time.Now().UnixNano())),
	}
	if private {
		vpc, err := ec2.NewFromConfig(m.Config(region)).CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.99.0.0/16")})
		if err != nil {
			t.Fatalf("emulator: create a VPC for the private zone %s: %v", domain, err)
		}
		in.HostedZoneConfig = &r53types.HostedZoneConfig{PrivateZone: true}
		in.VPC = &r53types.VPC{VPCId: vpc.Vpc.VpcId, VPCRegion: r53types.VPCRegion(region)}
	}
	out, err := route53.NewFromConfig(m.Config(region)).CreateHostedZone(ctx, in)
	if err != nil {
		t.Fatalf("emulator: create the hosted zone %s: %v", domain, err)
	}
	return strings.TrimPrefix(aws.ToString(out.HostedZone.Id), "/hostedzone/")
}

// CreateRecord creates a record in a hosted zone: of type rtype with the given values, or,
// when aliasTo is set, an alias of type rtype to that load balancer DNS name.
func (m *Moto) CreateRecord(t testing.TB, zoneID, name string, rtype r53types.RRType, aliasTo string, values ...string) {
	t.Helper()
	set := &r53types.ResourceRecordSet{Name: aws.String(name), Type: rtype}
	if aliasTo != "" {
		// ZQSVJUPU6J1EY: the canonical hosted zone of application load balancers in
		// ca-central-1 (AWS General Reference, "Elastic Load Balancing endpoints and quotas").
		set.AliasTarget = &r53types.AliasTarget{DNSName: aws.String(aliasTo), HostedZoneId: aws.String("ZQSVJUPU6J1EY")}
	} else {
		set.TTL = aws.Int64(300)
		for _, v := range values {
			set.ResourceRecords = append(set.ResourceRecords, r53types.ResourceRecord{Value: aws.String(v)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := route53.NewFromConfig(m.Config("us-east-1")).ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{
			{Action: r53types.ChangeActionCreate, ResourceRecordSet: set},
		}},
	})
	if err != nil {
		t.Fatalf("emulator: create %s %s in %s: %v", rtype, name, zoneID, err)
	}
}

// CreateUser creates an IAM user with one inline policy (a JSON policy document) and an
// access key, and returns the key. Create users before EnforceAuth.
//
// It speaks IAM's query protocol directly, as localruntest does for Secrets Manager, so no
// IAM module joins go.mod for the tests' sake: until EnforceAuth, moto checks no signature.
func (m *Moto) CreateUser(t testing.TB, name, policy string) (keyID, secret string) {
	t.Helper()
	m.iam(t, url.Values{"Action": {"CreateUser"}, "UserName": {name}})
	m.iam(t, url.Values{"Action": {"PutUserPolicy"}, "UserName": {name}, "PolicyName": {name}, "PolicyDocument": {policy}})
	out := m.iam(t, url.Values{"Action": {"CreateAccessKey"}, "UserName": {name}})
	var created struct {
		Key struct {
			ID     string `xml:"AccessKeyId"`
			Secret string `xml:"SecretAccessKey"`
		} `xml:"CreateAccessKeyResult>AccessKey"`
	}
	if err := xml.Unmarshal(out, &created); err != nil || created.Key.ID == "" || created.Key.Secret == "" {
		t.Fatalf("emulator: create an access key for %s: unexpected answer %s (%v)", name, out, err)
	}
	return created.Key.ID, created.Key.Secret
}

func (m *Moto) iam(t testing.TB, params url.Values) []byte {
	t.Helper()
	params.Set("Version", "2010-05-08")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+"/", strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// moto routes by the credential scope's service name.
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("emulator: IAM %s: %v", params.Get("Action"), err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("emulator: IAM %s: HTTP %d: %s", params.Get("Action"), resp.StatusCode, out)
	}
	return out
}

// EnforceAuth makes the emulator check, from now on, every request's signature against the
// IAM users' keys and its action against their policies, as AWS does (moto's
// /moto-api/reset-auth with no unauthenticated requests left). Seed everything first: the
// "testing" key of Config is unknown to IAM and is refused from here on.
func (m *Moto) EnforceAuth(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL+"/moto-api/reset-auth", strings.NewReader("0"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("emulator: enforce authentication: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("emulator: enforce authentication: HTTP %d", resp.StatusCode)
	}
}
