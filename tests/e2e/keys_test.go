package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// TestGatewayKeys is department access end to end: the pinned LiteLLM, installed and
// configured by sandbox-node with the department's key registry (a table in the AWS emulator)
// and one team, in front of the real Ollama. A key the Go registry client issued gets
// completions; the master key, an unknown key and a request for a served model outside the
// team are refused (a model the gateway does not serve is LiteLLM's 404); the team's per-key requests-per-minute limit answers 429 with Retry-After; and a
// revoked key is refused within the revocation window. LiteLLM runs behind the agent's
// accounting proxy, as the Gateway component renders it, and checkGatewayInFlight follows one
// key's stream in the gateway's published in-flight requests.
func TestGatewayKeys(t *testing.T) {
	h := localruntest.RequireLiteLLM(t)
	d := localruntest.NewDeployment(t, h)
	pool := d.StartOllama(t, "chemistry-cpu", localrun.OllamaOptions{})

	cfg := aws.Config{
		Region:       localrun.Region,
		BaseEndpoint: aws.String(d.Moto.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	}
	keyregistrytest.CreateTable(t, cfg, localrun.Department)
	reg := keyregistry.New(dynamodb.NewFromConfig(cfg), keyregistry.TableName(localrun.Department))
	ctx := context.Background()
	now := time.Now()
	const rpm = 4
	alice, err := reg.Issue(ctx, "students", "alice", now, now.Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := reg.Issue(ctx, "students", "bob", now, now.Add(time.Hour), "")

	masterKey := "sk-" + localrun.RandomAlphanumeric(t, 48)
	arn := d.Moto.CreateSecret(t, "llm-sandbox/"+localrun.Department+"/litellm-master-key", masterKey)
	gw := d.NewMember(t, "chemistry-gateway", localruntest.GatewayHook)
	gwCfg := d.LiteLLMConfig(gw, localrun.GatewayOptions{
		MasterKeySecretArn: arn,
		// The gateway serves a second model the team may not use (no pool answers it: the
		// 403 comes before any upstream call).
		Routes: []node.LiteLLMModel{
			node.NewLiteLLMModel(localrun.ModelName, pool.URL(), 2048),
			node.NewLiteLLMModel("qwen2.5:7b", pool.URL(), 2048),
		},
		Workers: 1,
		KeyRegistry: &node.KeyRegistry{Table: keyregistry.TableName(localrun.Department), Teams: []node.LiteLLMTeam{
			{Name: "students", Models: []string{localrun.ModelName}, RequestsPerMinute: rpm, TokensPerMinute: 100000, ParallelPerKey: 1},
		}},
	})
	behindProxy(t, d.Moto.URL, gw.Group, &gwCfg)
	conf := gw.WriteConfig(t, gwCfg)
	if code := gw.Bootstrap(t, conf, localrun.BootstrapLimit); code != 0 {
		t.Fatalf("sandbox-node bootstrap (litellm) exited %d, want 0", code)
	}
	serveGateway(t, gw, conf)
	chatURL := gw.URL() + "/v1/chat/completions"
	chat := func(key, model string) (int, http.Header, string) {
		t.Helper()
		data, _ := json.Marshal(map[string]any{
			"model": model, "messages": []map[string]string{{"role": "user", "content": "hello"}}, "temperature": 0, "max_tokens": 4,
		})
		req, _ := http.NewRequest(http.MethodPost, chatURL, bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", chatURL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}

	if code, _, body := chat(alice.Key, localrun.ModelName); code != http.StatusOK || !strings.Contains(body, `"choices"`) {
		t.Fatalf("alice's key: HTTP %d, want a completion: %s", code, body)
	}
	for name, key := range map[string]string{"the master key": masterKey, "a key never issued": mustKey(t)} {
		if code, _, body := chat(key, localrun.ModelName); code != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401: %s", name, code, body)
		}
	}
	if code, _, body := chat(bob.Key, "qwen2.5:7b"); code != http.StatusForbidden {
		t.Errorf("bob asking for a model outside his team: HTTP %d, want 403: %s", code, body)
	}
	if code, _, body := chat(bob.Key, "no-such-model:1b"); code != http.StatusNotFound || !strings.Contains(body, "model_not_found") {
		t.Errorf("bob asking for a model the gateway does not serve: HTTP %d, want 404 model_not_found: %s", code, body)
	}

	// alice has made one request this minute: the rpm-th succeeds, the next is 429.
	for i := 2; i <= rpm; i++ {
		if code, _, body := chat(alice.Key, localrun.ModelName); code != http.StatusOK {
			t.Fatalf("alice's request %d of %d this minute: HTTP %d: %s", i, rpm, code, body)
		}
	}
	code, header, body := chat(alice.Key, localrun.ModelName)
	if code != http.StatusTooManyRequests || header.Get("Retry-After") == "" {
		t.Errorf("alice's request %d this minute: HTTP %d, Retry-After %q; want 429 with Retry-After: %s", rpm+1, code, header.Get("Retry-After"), body)
	}
	// The limit is alice's, not her team's.
	if code, _, body := chat(bob.Key, localrun.ModelName); code != http.StatusOK {
		t.Errorf("bob while alice is limited: HTTP %d, want 200: %s", code, body)
	}

	// Revoked: refused within the window (the module's cache time), polled every second.
	if err := reg.Revoke(ctx, bob.Record.KeyID, time.Now()); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		code, _, body := chat(bob.Key, localrun.ModelName)
		if code == http.StatusUnauthorized {
			t.Logf("bob's key refused %.1f s after the revoke", time.Since(revoked).Seconds())
			break
		}
		// 200, or 429 once the polling exceeds his own limit: still authenticated.
		if code != http.StatusOK && code != http.StatusTooManyRequests {
			t.Fatalf("bob after the revoke: HTTP %d: %s", code, body)
		}
		if time.Since(revoked) > time.Duration(node.KeyCacheSeconds+10)*time.Second {
			t.Fatalf("bob's key still works %s after the revoke", time.Since(revoked))
		}
		time.Sleep(time.Second)
	}

	carol, err := reg.Issue(ctx, "students", "carol", time.Now(), time.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	checkGatewayInFlight(t, d.Moto, gw, gwCfg, carol.Key)
}

func mustKey(t *testing.T) string {
	t.Helper()
	key, _, err := keyregistry.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}
