package policy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/llm-sandbox/llm-sandbox/internal/rules"
	"github.com/llm-sandbox/llm-sandbox/versions"
)

// nodeConfigPath is where the user data writes the node agent's config.
const nodeConfigPath = "/etc/llm-sandbox/node.json"

const typeBucketObject = "aws:s3/bucketObjectv2:BucketObjectv2"

// nodeConfig is a launch template's user data as the rules read it.
type nodeConfig struct {
	lt Resource
	// text is the decoded user data.
	text string
	// config is the node config it writes, nil when err is set.
	config map[string]any
	err    error
}

// nodeConfigs decodes every launch template's user data: base64 cloud-init that writes the
// node config as JSON.
func (p *Plan) nodeConfigs() []nodeConfig {
	var out []nodeConfig
	for _, lt := range p.byType(typeLaunchTmpl) {
		nc := nodeConfig{lt: lt}
		nc.config, nc.text, nc.err = decodeNodeConfig(str(lt.Inputs["userData"]))
		out = append(out, nc)
	}
	return out
}

func decodeNodeConfig(userData string) (map[string]any, string, error) {
	raw, err := base64.StdEncoding.DecodeString(userData)
	if err != nil {
		return nil, "", fmt.Errorf("user data is not base64: %v", err)
	}
	text := string(raw)
	var doc struct {
		WriteFiles []struct {
			Path    string `yaml:"path"`
			Content string `yaml:"content"`
		} `yaml:"write_files"`
	}
	if !strings.HasPrefix(text, "#cloud-config\n") {
		return nil, text, fmt.Errorf("user data is not a #cloud-config document")
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, text, fmt.Errorf("user data is not YAML: %v", err)
	}
	for _, f := range doc.WriteFiles {
		if f.Path != nodeConfigPath {
			continue
		}
		var config map[string]any
		if err := json.Unmarshal([]byte(f.Content), &config); err != nil {
			return nil, text, fmt.Errorf("%s is not JSON: %v", nodeConfigPath, err)
		}
		return config, text, nil
	}
	return nil, text, fmt.Errorf("user data writes no %s", nodeConfigPath)
}

func checkNodeConfigRendered(p *Plan) []Finding {
	var out []Finding
	for _, nc := range p.nodeConfigs() {
		switch role := str(nc.config["role"]); {
		case nc.err != nil:
			out = append(out, finding(nc.lt, "%v", nc.err))
		case obj(nc.config[role]) == nil:
			out = append(out, finding(nc.lt, "node config role %q has no %q section", role, role))
		}
	}
	return out
}

func checkNodeHook(p *Plan) []Finding {
	var out []Finding
	for _, nc := range p.nodeConfigs() {
		if nc.err != nil {
			continue
		}
		g, ok := p.groupOf(nc.lt)
		if !ok {
			out = append(out, finding(nc.lt, "no autoscaling group launches from this template"))
			continue
		}
		lc := obj(nc.config["lifecycle"])
		h := launchHook(g)
		beat, _ := num(lc["heartbeatSeconds"])
		want, _ := num(h["heartbeatTimeout"])
		if str(lc["hook"]) != str(h["name"]) || beat != want {
			out = append(out, finding(nc.lt, "node config completes hook %q (heartbeat %d s); group %s's launch hook is %q (heartbeat %d s)", str(lc["hook"]), beat, g.Name, str(h["name"]), want))
		}
	}
	return out
}

// secretLike matches what must never be in user data: a LiteLLM key, an AWS access key id, an
// AWS secret key setting, or a password, token or key given a value. A value that is a shell
// expansion ($token, ${token}, $(...)) or a printf verb (%s) is a reference the script fills
// in at boot, not a value the document holds: the fetch script sends the IMDS session token and
// the instance role's session token that way.
var secretLike = []*regexp.Regexp{
	regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{16,}`),
	regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`),
	regexp.MustCompile(`(?i)aws_secret_access_key`),
	regexp.MustCompile(`(?i)"?\b(master_?key|password|secret_?key|api_?key|token)"?\s*[:=]\s*"?[^"\s,}$%][^"\s,}]*`),
}

func checkUserDataSecrets(p *Plan) []Finding {
	var out []Finding
	for _, nc := range p.nodeConfigs() {
		for _, re := range secretLike {
			if m := re.FindString(nc.text); m != "" {
				out = append(out, finding(nc.lt, "user data holds %q", redact(m)))
			}
		}
	}
	return out
}

// redact keeps enough of a matched secret to find it, never the whole value.
func redact(s string) string {
	if len(s) <= 8 {
		return s
	}
	return s[:8] + "…"
}

// promptLogging are settings of Ollama and LiteLLM that write request bodies or prompts to
// logs or storage (Ollama's envconfig; LiteLLM's proxy logging settings).
var promptLogging = []string{
	"OLLAMA_DEBUG",
	"store_prompts_in_spend_logs: true",
	"turn_off_message_logging: false",
	"disable_spend_logs: false",
	"disable_error_logs: false",
	"--detailed_debug",
	"LITELLM_LOG=DEBUG",
	"set_verbose: true",
}

// loggingKey matches node config keys that would turn request or prompt logging on.
var loggingKey = regexp.MustCompile(`(?i)debug|verbose|log(ging)?requests|logprompts|messagelogging|storeprompts|spendlogs`)

func checkPromptLogging(p *Plan) []Finding {
	var out []Finding
	for _, nc := range p.nodeConfigs() {
		for _, s := range promptLogging {
			if strings.Contains(nc.text, s) {
				out = append(out, finding(nc.lt, "user data sets %s", s))
			}
		}
		for _, path := range loggingKeys(nc.config) {
			out = append(out, finding(nc.lt, "node config sets %s", path))
		}
	}
	return out
}

// loggingKeys returns the paths of keys that loggingKey matches and whose value is set (not
// false, zero or empty).
func loggingKeys(config map[string]any) []string {
	var out []string
	walk(config, "", func(path string, v any) {
		key := path[strings.LastIndex(path, ".")+1:]
		if path != "" && !strings.HasSuffix(path, "]") && loggingKey.MatchString(key) && set(v) {
			out = append(out, path)
		}
	})
	return out
}

func set(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != "" && t != "0" && !strings.EqualFold(t, "false")
	case float64:
		return t != 0
	}
	return true
}

func checkVersions(p *Plan) []Finding {
	var out []Finding
	for _, nc := range p.nodeConfigs() {
		ollama := obj(nc.config["ollama"])
		if nc.err != nil || str(nc.config["role"]) != "ollama" {
			continue
		}
		// The floor is package versions' rule, the one the agent enforces too. LiteLLM's version
		// is not in the plan: the agent installs the one its embedded hash-locked requirements
		// pin, whose floor the versions tests hold.
		v := str(ollama["version"])
		if msg := versions.CheckOllamaVersion(v); msg != "" {
			out = append(out, finding(nc.lt, "ollama.version %s", msg))
		}
		if url := str(obj(ollama["release"])["url"]); !strings.Contains(url, "/v"+v+"/") {
			out = append(out, finding(nc.lt, "ollama.release.url %q is not the release of version %s", url, v))
		}
	}
	return out
}

// checkPinnedOllama: the offline plan renders a stack whose Ollama release has no recorded
// SHA-256 (with a warning); check fails it here, with the way to pin it.
func checkPinnedOllama(p *Plan) []Finding {
	var out []Finding
	for _, nc := range p.nodeConfigs() {
		if nc.err != nil || str(nc.config["role"]) != "ollama" {
			continue
		}
		ollama := obj(nc.config["ollama"])
		if sha := str(obj(ollama["release"])["sha256"]); !rules.IsSHA256Hex(sha) {
			out = append(out, finding(nc.lt, "ollama.release.sha256 %q is not a pinned SHA-256: %s", sha, versions.PinAdvice(str(ollama["version"]))))
		}
	}
	return out
}

// anySHA256 finds the hashes a user-data script mentions.
var anySHA256 = regexp.MustCompile(`[0-9a-f]{64}`)

// downloads returns the paths of every object in a node config that names a URL, in order,
// and the objects by path.
func downloads(config map[string]any) ([]string, map[string]map[string]any) {
	var paths []string
	objects := map[string]map[string]any{}
	walk(config, "", func(path string, v any) {
		if m, ok := v.(map[string]any); ok && m["url"] != nil {
			paths = append(paths, path)
			objects[path] = m
		}
	})
	return paths, objects
}

func checkDownloads(p *Plan) []Finding {
	var out []Finding
	agentHashes := map[string]bool{}
	for _, o := range p.byType(typeBucketObject) {
		agentHashes[str(o.Inputs["sourceHash"])] = true
	}
	for _, nc := range p.nodeConfigs() {
		if nc.err != nil {
			continue
		}
		paths, dl := downloads(nc.config)
		for _, path := range paths {
			d := dl[path]
			url := str(d["url"])
			if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "s3://") {
				out = append(out, finding(nc.lt, "%s.url %q; want https:// or s3://", path, url))
			}
			// A checksum file fetched from the same release proves nothing: the hash must be
			// pinned in the node config, as the agent requires.
			if !rules.IsSHA256Hex(str(d["sha256"])) {
				out = append(out, finding(nc.lt, "%s has no pinned sha256 to check the download against", path))
			}
		}
		pinned := false
		for _, h := range anySHA256.FindAllString(nc.text, -1) {
			pinned = pinned || agentHashes[h]
		}
		if !pinned || !strings.Contains(nc.text, "sha256sum --check") {
			out = append(out, finding(nc.lt, "user data does not check the agent it fetches against the SHA-256 of the agent object in the artifacts bucket"))
		}
	}
	return out
}
