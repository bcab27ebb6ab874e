package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/llm-sandbox/llm-sandbox/config"
	"github.com/llm-sandbox/llm-sandbox/internal/cwclient"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry/keyregistrytest"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun"
	"github.com/llm-sandbox/llm-sandbox/internal/localrun/localruntest"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
	"github.com/llm-sandbox/llm-sandbox/node"
)

// walkthroughSection is the heading of docs/keys.md's walkthrough this test runs.
const walkthroughSection = "## Give a class its keys"

// walkthroughRosters are the rosters the walkthrough's admin holds (the doc shows their
// shape, not their 300 lines): file → its labels. Student s2026042 is the one revoked.
var walkthroughRosters = map[string][]string{
	"students.txt": labels("s2026%03d", 280),
	"tas.txt":      labels("ta%02d", 12),
	"kinetics.txt": labels("kin%02d", 8),
}

// walkthroughRevoked is the owner the walkthrough revokes.
const walkthroughRevoked = "s2026042"

func labels(format string, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf(format, i))
	}
	return out
}

// fencedBlocks returns the section of doc under heading (to the next "## " heading), and its
// fenced code blocks by language, in order.
func fencedBlocks(t *testing.T, doc, heading string) map[string][]string {
	t.Helper()
	start := strings.Index(doc, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("docs/keys.md has no section %q", heading)
	}
	section := doc[start+len(heading)+2:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	blocks := map[string][]string{}
	for _, m := range regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```$").FindAllStringSubmatch(section, -1) {
		blocks[m[1]] = append(blocks[m[1]], m[2])
	}
	return blocks
}

// TestWalkthroughGiveAClassItsKeys runs docs/keys.md's "Give a class its keys" as written: the
// section's YAML block is the stack file, and each of its sh blocks runs with bash, in order, in
// a private directory beside the project checkout, with the built sandboxctl on the path, the
// AWS emulator (holding the registry table) as every AWS endpoint and the real gateway as
// OPENAI_BASE_URL. The gateway is the pinned LiteLLM bootstrapped by sandbox-node with the
// stack's teams, the custom-auth and usage modules, one worker (so a key's limits are exact)
// and usage published every second, in front of the tiny model's Ollama.
//
// Between the blocks it checks what the section promises: the issue block leaves three
// owner-only files holding 300 distinct keys, one per roster line, each stored in the registry
// only as its hash; every one of the 300 keys, given to the gateway's own custom-auth module in
// the gateway's Python, authenticates as its team with that team's models and limits; keys of
// each team are served through the gateway and list their team's models, a student is refused
// a model of the TAs (403) and limited to the team's requests per minute (429); the revoked key
// prints 401 within the revocation window; and the usage blocks print, per team and key id,
// what the clients saw.
func TestWalkthroughGiveAClassItsKeys(t *testing.T) {
	h := localruntest.RequireLiteLLM(t)
	begun := time.Now()
	doc := string(readFile(t, filepath.Join(h.Repo, "docs", "keys.md")))
	blocks := fencedBlocks(t, doc, walkthroughSection)
	if len(blocks["yaml"]) != 1 {
		t.Fatalf("%q has %d yaml blocks, want the one stack file", walkthroughSection, len(blocks["yaml"]))
	}
	steps := blocks["sh"]
	has := func(s string) int {
		return slices.IndexFunc(steps, func(b string) bool { return strings.Contains(b, s) })
	}
	issueAt, revokeAt, curlAt, usageAt := has("keys issue"), has("keys revoke"), has("curl "), has("keys usage")
	if issueAt < 0 || !(issueAt < revokeAt && revokeAt < curlAt && curlAt < usageAt) {
		t.Fatalf("%q's sh blocks must issue, revoke, check the 401 and read usage, in that order (blocks at %d, %d, %d, %d):\n%q",
			walkthroughSection, issueAt, revokeAt, curlAt, usageAt, steps)
	}
	sandboxctl := buildSandboxctl(t, h.Repo)

	// The admin's home: the checkout with the stack file, and the private working directory
	// with the rosters.
	home := t.TempDir()
	project := filepath.Join(home, "llm-sandbox")
	work := filepath.Join(home, "chem101")
	for _, dir := range []string{filepath.Join(project, "stacks"), work} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeTo(t, filepath.Join(project, "Pulumi.yaml"), string(readFile(t, filepath.Join(h.Repo, "Pulumi.yaml"))))
	writeTo(t, filepath.Join(project, "stacks", "Pulumi."+localrun.Department+".yaml"), blocks["yaml"][0])
	spec, err := config.LoadChecked(project, localrun.Department)
	if err != nil {
		t.Fatalf("the walkthrough's stack file: %v", err)
	}
	if spec.Region != localrun.Region || len(spec.Teams) != 3 {
		t.Fatalf("the walkthrough's stack: region %s, %d teams; the test's deployment wants region %s and the section three teams", spec.Region, len(spec.Teams), localrun.Region)
	}
	rosterOf := map[string]string{} // owner → roster file
	for file, owners := range walkthroughRosters {
		writeTo(t, filepath.Join(work, file), strings.Join(owners, "\n")+"\n")
		for _, o := range owners {
			rosterOf[o] = file
		}
	}

	// The deployment: the emulator with the registry table, the pool, the gateway.
	d := localruntest.NewDeployment(t, h)
	cfg := aws.Config{Region: localrun.Region, BaseEndpoint: aws.String(d.Moto.URL), Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
	table := keyregistrytest.CreateTable(t, cfg, localrun.Department)
	pool := d.StartOllama(t, "chemistry-cpu", localrun.OllamaOptions{})
	var routes []node.LiteLLMModel
	for _, m := range spec.ModelNames() {
		// Only the tiny model answers; the other model is routed for the teams' lists.
		routes = append(routes, node.NewLiteLLMModel(m, pool.URL(), 2048))
	}
	registry := &node.KeyRegistry{Table: keyregistry.TableName(spec.Department)}
	for _, name := range spec.TeamNames() {
		tm := spec.Teams[name]
		registry.Teams = append(registry.Teams, node.LiteLLMTeam{Name: name, Models: slices.Clone(tm.Models),
			RequestsPerMinute: tm.RequestsPerMinute, TokensPerMinute: tm.TokensPerMinute, ParallelPerKey: tm.ParallelPerKey})
	}
	masterKey := "sk-" + localrun.RandomAlphanumeric(t, 48)
	arn := d.Moto.CreateSecret(t, "llm-sandbox/"+localrun.Department+"/litellm-master-key", masterKey)
	gw := d.NewMember(t, "chemistry-gateway", localruntest.GatewayHook)
	gw.Start(t, d.LiteLLMConfig(gw, localrun.GatewayOptions{
		MasterKeySecretArn: arn, Routes: routes, Workers: 1, KeyRegistry: registry, Usage: &node.LiteLLMUsage{FlushSeconds: 1},
	}), localrun.BootstrapLimit)
	t.Logf("deployment up %.0f s after the start", time.Since(begun).Seconds())

	bin := sandboxctl()
	missing := filepath.Join(home, "no-such-file")
	shellEnv := []string{
		"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + home, "LC_ALL=C",
		"AWS_ENDPOINT_URL=" + d.Moto.URL, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_CONFIG_FILE=" + missing, "AWS_SHARED_CREDENTIALS_FILE=" + missing, "AWS_EC2_METADATA_DISABLED=true",
		"OPENAI_BASE_URL=" + gw.URL() + "/v1",
	}
	run := func(i int) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-e", "-u", "-o", "pipefail", "-c", steps[i])
		cmd.Dir, cmd.Env = work, shellEnv
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("block %d of %q: %v\n%s\nstdout:\n%s\nstderr:\n%s", i+1, walkthroughSection, err, steps[i], stdout.String(), stderr.String())
		}
		return stdout.String()
	}

	// Issue (and whatever the section does before the revoke, such as listing).
	keysOf := map[string]keyregistry.Issued{} // owner → key
	for i := 0; i < revokeAt; i++ {
		out := run(i)
		if i == issueAt {
			keysOf = checkIssuedFiles(t, work, table, spec, rosterOf)
		}
		if strings.Contains(steps[i], "keys list") {
			checkListed(t, out, steps[i], keysOf)
		}
	}
	if len(keysOf) != 300 {
		t.Fatalf("%d keys issued, want 300", len(keysOf))
	}
	t.Logf("300 keys issued and checked %.0f s after the start", time.Since(begun).Seconds())
	checkModuleResolves(t, gw, keysOf, spec)

	// The class uses its keys: two of each team's keys chat; a student asks for a model of
	// the TAs; another student goes past the team's requests per minute.
	tally := newUsageTally()
	client := &http.Client{Timeout: 2 * time.Minute}
	call := func(k keyregistry.Issued, method, path string, body any) (int, http.Header, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			data, _ := json.Marshal(body)
			rd = bytes.NewReader(data)
		}
		req, _ := http.NewRequest(method, gw.URL()+path, rd)
		req.Header.Set("Authorization", "Bearer "+k.Key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, data
	}
	chat := func(k keyregistry.Issued, model string) (int, http.Header) {
		t.Helper()
		code, header, body := call(k, http.MethodPost, "/v1/chat/completions", map[string]any{
			"model": model, "messages": []map[string]string{{"role": "user", "content": "hello"}}, "temperature": 0, "max_tokens": 4,
		})
		tally.add(t, k.Record.Team, k.Record.KeyID, code, body)
		return code, header
	}
	var served []string
	for _, file := range slices.Sorted(maps.Keys(walkthroughRosters)) {
		for _, owner := range append(slices.Clone(walkthroughRosters[file][:2]), walkthroughRevoked) {
			k, ok := keysOf[owner]
			if !ok || slices.Contains(served, owner) || rosterOf[owner] != file {
				continue
			}
			served = append(served, owner)
			if code, _ := chat(k, localrun.ModelName); code != http.StatusOK {
				t.Errorf("%s's key (team %s): HTTP %d, want 200", owner, k.Record.Team, code)
			}
			code, _, body := call(k, http.MethodGet, "/v1/models", nil)
			var list struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			_ = json.Unmarshal(body, &list)
			var ids []string
			for _, m := range list.Data {
				ids = append(ids, m.ID)
			}
			slices.Sort(ids)
			if want := spec.Teams[k.Record.Team].Models; code != http.StatusOK || !slices.Equal(ids, want) {
				t.Errorf("GET /v1/models with %s's key (team %s): HTTP %d, models %v, want %v", owner, k.Record.Team, code, ids, want)
			}
		}
	}
	students, tas := spec.Teams["chem101"], spec.Teams["chem101-tas"]
	tasOnly := slices.DeleteFunc(slices.Clone(tas.Models), func(m string) bool { return slices.Contains(students.Models, m) })
	if len(tasOnly) == 0 {
		t.Fatalf("the walkthrough's TAs may call no model the students may not (%v, %v)", tas.Models, students.Models)
	}
	if code, _ := chat(keysOf["s2026002"], tasOnly[0]); code != http.StatusForbidden {
		t.Errorf("a student asking for %s: HTTP %d, want 403", tasOnly[0], code)
	}
	// s2026001 has made one request: with one worker, the limit is exact.
	for n := 2; ; n++ {
		code, header := chat(keysOf["s2026001"], localrun.ModelName)
		if code == http.StatusTooManyRequests {
			if n != students.RequestsPerMinute+1 || header.Get("Retry-After") == "" {
				t.Errorf("s2026001's first 429 was request %d (Retry-After %q), want request %d with Retry-After", n, header.Get("Retry-After"), students.RequestsPerMinute+1)
			}
			break
		}
		if code != http.StatusOK || n > students.RequestsPerMinute+1 {
			t.Fatalf("s2026001's request %d this minute: HTTP %d; want 200 up to the team's %d, then 429", n, code, students.RequestsPerMinute)
		}
	}

	// Revoke, then the section's check prints 401 within the revocation window.
	for i := revokeAt; i < curlAt; i++ {
		run(i)
	}
	revoked := time.Now()
	rec, err := keyregistry.New(table, keyregistry.TableName(spec.Department)).Get(context.Background(), keysOf[walkthroughRevoked].Record.KeyID)
	if err != nil || rec.Revoked == nil || rec.Owner != walkthroughRevoked {
		t.Fatalf("after the revoke block, %s's record: %+v (%v), want revoked", walkthroughRevoked, rec, err)
	}
	for {
		out := run(curlAt)
		if out == "401\n" {
			t.Logf("the revoked key got 401 %.1f s after the revoke", time.Since(revoked).Seconds())
			break
		}
		if out != "200\n" || time.Since(revoked) > time.Duration(node.KeyCacheSeconds+10)*time.Second {
			t.Fatalf("the 401 check printed %q %s after the revoke; want 401 within %d s", out, time.Since(revoked).Round(time.Second), node.KeyCacheSeconds)
		}
		time.Sleep(time.Second)
	}
	for i := curlAt + 1; i < usageAt; i++ {
		run(i)
	}

	// Usage: once the workers have published what the clients saw, the usage blocks print it.
	want := tally.teams()
	report := waitForUsage(t, cwclient.New(cfg), spec.Department, begun.Add(-time.Minute), want, 20*time.Second)
	diffUsage(t, "usage read back from CloudWatch", report.Teams, want)
	var printed strings.Builder
	for i := usageAt; i < len(steps); i++ {
		printed.WriteString(run(i))
	}
	checkUsageReports(t, printed.String(), want, keysOf)
	t.Logf("walkthrough done in %.0f s", time.Since(begun).Seconds())
}

func writeTo(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkIssuedFiles reads the key files the issue block wrote into work (every file it named
// with --out) and returns the keys by owner: each file owner-only, a row per owner of its
// roster with a new, distinct key of the roster's team naming its key id; the registry holds
// one item per key, with the key's hash, team and owner and never the key.
func checkIssuedFiles(t *testing.T, work string, table *dynamodb.Client, spec *config.Spec, rosterOf map[string]string) map[string]keyregistry.Issued {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(work, "*.csv"))
	if len(files) != 3 {
		t.Fatalf("the issue block wrote %v, want a CSV file per team", files)
	}
	keysOf := map[string]keyregistry.Issued{}
	teamOfRoster := map[string]string{}
	for _, path := range files {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", path, fi.Mode().Perm(), err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil || len(rows) < 2 || strings.Join(rows[0], ",") != "owner,team,keyId,expiresAt,key" {
			t.Fatalf("%s: want a CSV header and rows (%v): %v", path, err, rows)
		}
		for _, r := range rows[1:] {
			owner, team, id, expires, key := r[0], r[1], r[2], r[3], r[4]
			roster, ok := rosterOf[owner]
			switch {
			case !ok:
				t.Errorf("%s: a key for %q, who is on no roster", path, owner)
			case teamOfRoster[roster] != "" && teamOfRoster[roster] != team:
				t.Errorf("%s: %s of %s has team %s, others of that roster %s", path, owner, roster, team, teamOfRoster[roster])
			}
			teamOfRoster[roster] = team
			if _, dup := keysOf[owner]; dup {
				t.Errorf("%s: a second key for %s", path, owner)
			}
			got, ok := keyregistry.KeyID(key)
			exp, err := time.Parse(time.RFC3339, expires)
			tm, declared := spec.Teams[team]
			if !ok || got != id || err != nil || !declared || exp.After(time.Now().Add(time.Duration(tm.MaxKeyLifetimeDays)*24*time.Hour)) {
				t.Errorf("%s: row %q: want a key naming its id, of a declared team, within its lifetime", path, r[:4])
			}
			keysOf[owner] = keyregistry.Issued{Key: key, Record: keyregistry.Record{KeyID: id, Team: team, Owner: owner}}
		}
	}
	if len(keysOf) != len(rosterOf) {
		t.Errorf("the files hold keys for %d owners, want the %d of the rosters", len(keysOf), len(rosterOf))
	}
	if len(teamOfRoster) != 3 || teamOfRoster["students.txt"] == teamOfRoster["tas.txt"] || teamOfRoster["tas.txt"] == teamOfRoster["kinetics.txt"] || teamOfRoster["students.txt"] == teamOfRoster["kinetics.txt"] {
		t.Errorf("rosters and teams: %v, want three rosters in three teams", teamOfRoster)
	}
	distinct := map[string]bool{}
	for _, k := range keysOf {
		distinct[k.Key] = true
	}
	if len(distinct) != len(keysOf) {
		t.Errorf("%d distinct keys for %d owners", len(distinct), len(keysOf))
	}
	items := keyregistrytest.Items(t, table, spec.Department)
	if len(items) != len(keysOf) {
		t.Errorf("the registry holds %d items, want %d", len(items), len(keysOf))
	}
	byID := map[string]map[string]string{}
	for _, item := range items {
		byID[item[keyregistry.AttrKeyID]] = item
		for attr, v := range item {
			if strings.Contains(v, keyregistry.KeyPrefix) {
				t.Errorf("registry item %s: %s holds a key", item[keyregistry.AttrKeyID], attr)
			}
		}
	}
	for owner, k := range keysOf {
		item := byID[k.Record.KeyID]
		if item[keyregistry.AttrHash] != keyregistry.Hash(k.Key) || item[keyregistry.AttrTeam] != k.Record.Team || item[keyregistry.AttrOwner] != owner {
			t.Errorf("%s's key %s: registry item %v, want its hash, team %s and owner", owner, k.Record.KeyID, item, k.Record.Team)
		}
	}
	return keysOf
}

// checkListed checks a keys list block's output: the key ids of the team it lists, never a
// key.
func checkListed(t *testing.T, out, block string, keysOf map[string]keyregistry.Issued) {
	t.Helper()
	m := regexp.MustCompile(`--team (\S+)`).FindStringSubmatch(block)
	if m == nil || strings.Contains(out, keyregistry.KeyPrefix) {
		t.Errorf("keys list block %q printed a key or lists no team:\n%s", block, out)
		return
	}
	listed := 0
	for _, k := range keysOf {
		if strings.Contains(out, k.Record.KeyID) != (k.Record.Team == m[1]) {
			t.Errorf("keys list --team %s and key %s of team %s:\n%s", m[1], k.Record.KeyID, k.Record.Team, out)
		}
		if k.Record.Team == m[1] {
			listed++
		}
	}
	if listed == 0 {
		t.Errorf("keys list --team %s: the team holds no key", m[1])
	}
}

// resolveKeys is a driver of the gateway's custom-auth module: it reads a JSON list of keys
// on stdin, authenticates each as LiteLLM does (no model in the request) and prints a JSON
// list of what the module returned for each, or the HTTP status it refused it with.
const resolveKeys = `import asyncio
import json
import sys

import llm_sandbox_auth as auth
from litellm.proxy._types import ProxyException
from starlette.requests import Request


async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def main():
    out = []
    for key in json.load(sys.stdin):
        req = Request({"type": "http", "method": "GET", "path": "/v1/models", "headers": [], "query_string": b""}, receive)
        try:
            got = await auth.user_api_key_auth(req, key)
            out.append({"user_id": got.user_id, "team_id": got.team_id, "models": got.models,
                        "rpm_limit": got.rpm_limit, "tpm_limit": got.tpm_limit,
                        "max_parallel_requests": got.max_parallel_requests,
                        "user_role": str(getattr(got.user_role, "value", got.user_role))})
        except ProxyException as e:
            out.append({"refused": int(e.code)})
    json.dump(out, sys.stdout)


asyncio.run(main())
`

// checkModuleResolves gives every key to the custom-auth module the gateway node runs, as
// rendered there with its settings, in the gateway's own Python against the registry in the
// emulator: each must authenticate as its key id, of its team, with the team's models and
// limits, as an internal user.
func checkModuleResolves(t *testing.T, gw *localruntest.Member, keysOf map[string]keyregistry.Issued, spec *config.Spec) {
	t.Helper()
	owners := slices.Sorted(maps.Keys(keysOf))
	var keys []string
	for _, o := range owners {
		keys = append(keys, keysOf[o].Key)
	}
	in, _ := json.Marshal(keys)
	dir := filepath.Join(gw.Root, filepath.Dir(node.LiteLLMAuthFile))
	driver := filepath.Join(t.TempDir(), "resolve.py")
	writeTo(t, driver, resolveKeys)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gw.VenvPython(t), "-s", "-B", driver)
	cmd.Dir = dir
	cmd.Env = append(slices.Clone(gw.Env), "PYTHONPATH="+dir, "HOME="+gw.Home)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("the custom-auth module's driver: %v\n%s", err, stderr.String())
	}
	var got []struct {
		UserID      string   `json:"user_id"`
		TeamID      string   `json:"team_id"`
		Models      []string `json:"models"`
		RPM         int      `json:"rpm_limit"`
		TPM         int      `json:"tpm_limit"`
		Parallel    int      `json:"max_parallel_requests"`
		Role        string   `json:"user_role"`
		RefusedWith int      `json:"refused"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil || len(got) != len(keys) {
		t.Fatalf("the driver printed %d answers for %d keys (%v):\n%s", len(got), len(keys), err, stderr.String())
	}
	for i, o := range owners {
		k, g := keysOf[o], got[i]
		tm := spec.Teams[k.Record.Team]
		wantModels := slices.Clone(tm.Models)
		gotModels := slices.Clone(g.Models)
		slices.Sort(gotModels)
		if g.RefusedWith != 0 || g.UserID != k.Record.KeyID || g.TeamID != k.Record.Team || !slices.Equal(gotModels, wantModels) ||
			g.RPM != tm.RequestsPerMinute || g.TPM != tm.TokensPerMinute || g.Parallel != tm.ParallelPerKey || g.Role != "internal_user" {
			t.Errorf("%s's key through the custom-auth module: %+v; want key id %s of team %s with models %v, rpm %d, tpm %d, parallel %d, internal_user",
				o, g, k.Record.KeyID, k.Record.Team, wantModels, tm.RequestsPerMinute, tm.TokensPerMinute, tm.ParallelPerKey)
		}
	}
	t.Logf("the custom-auth module resolved %d keys through the registry in %.1f s", len(keys), time.Since(start).Seconds())
}

// usageRow is one row of keys usage's table: a team's sum ("(N keys)"), a key id, or the total.
var usageRow = regexp.MustCompile(`(?m)^(all teams|\S+)\s+(\(\d+ keys?\)|[a-z2-7]{16})?\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$`)

// checkUsageReports checks the text reports the usage blocks printed (one or more, each from
// its "usage of" line): each team row holds the team's number of keys and the sums the
// clients saw, each key row its key's counts (zeros for an unused key), the total the sum of
// the report's teams; together they cover every team.
func checkUsageReports(t *testing.T, out string, want []usage.Team, keysOf map[string]keyregistry.Issued) {
	t.Helper()
	teamCounts := map[string]usage.Counts{}
	keyCounts := map[string]usage.Counts{}
	for _, tm := range want {
		teamCounts[tm.Team] = tm.Counts
		for _, k := range tm.Keys {
			keyCounts[k.KeyID] = k.Counts
		}
	}
	keysIn := map[string]int{}
	teamOfKey := map[string]string{}
	for _, k := range keysOf {
		keysIn[k.Record.Team]++
		teamOfKey[k.Record.KeyID] = k.Record.Team
	}
	reports := strings.Split(out, "usage of ")[1:]
	if len(reports) == 0 {
		t.Fatalf("the usage blocks printed no report:\n%s", out)
	}
	covered := map[string]bool{}
	for _, rep := range reports {
		var total, sum usage.Counts
		rows := 0
		for _, m := range usageRow.FindAllStringSubmatch(rep, -1) {
			var c usage.Counts
			for i, p := range []*int64{&c.Requests, &c.PromptTokens, &c.CompletionTokens, &c.Errors, &c.Throttles} {
				*p, _ = strconv.ParseInt(m[3+i], 10, 64)
			}
			name, what := m[1], m[2]
			rows++
			switch {
			case name == "all teams":
				total = c
			case strings.HasPrefix(what, "("):
				covered[name] = true
				sum = sum.Plus(c)
				if n := keysIn[name]; what != fmt.Sprintf("(%d keys)", n) || c != teamCounts[name] {
					t.Errorf("usage row of team %s: %s %+v, want (%d keys) %+v", name, what, c, n, teamCounts[name])
				}
			default:
				if teamOfKey[what] != name || c != keyCounts[what] {
					t.Errorf("usage row of key %s (team %s): %+v, want team %s, %+v", what, name, c, teamOfKey[what], keyCounts[what])
				}
			}
		}
		if rows < 3 || total != sum {
			t.Errorf("a usage report with %d rows, total %+v, teams summing to %+v:\nusage of %s", rows, total, sum, rep)
		}
	}
	for team := range keysIn {
		if !covered[team] {
			t.Errorf("no usage report shows team %s:\n%s", team, out)
		}
	}
}
