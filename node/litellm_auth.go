package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/rules"
)

// LiteLLMAuthSettingsFile is the custom-auth module's settings beside it: where the registry
// is (the table, or a local run's key store file) and the teams' models and limits (mode
// 0644, no secrets). Absent, the module accepts the master key only (a gateway configured
// without a registry).
const LiteLLMAuthSettingsFile = "/etc/llm-sandbox/litellm/llm_sandbox_auth.json"

// KeyCacheSeconds is how long a LiteLLM worker trusts a registry record it read: a revoked
// key is refused by every worker of every gateway node at most this long after `keys revoke`
// (plus one read). KeyStaleSeconds is how long a worker keeps using a record it cannot
// refresh because the registry does not answer; past it, the key is refused with 503.
const (
	KeyCacheSeconds = 20
	KeyStaleSeconds = 60
)

// KeyRegistry is the gateway's view of the department's key registry.
type KeyRegistry struct {
	// Table is the registry table (keyregistry.TableName), in the node's region. Required on
	// AWS, absent on the local platform.
	Table string `json:"table,omitempty"`
	// File is, on the local platform only (and required there), the absolute path of the
	// local run's key store (keyregistry.FileStore): the same records as the table, in a file
	// readable by its owner, the user the local run's LiteLLM runs as.
	File string `json:"file,omitempty"`
	// Teams are the teams of the stack file, whose keys LiteLLM accepts.
	Teams []LiteLLMTeam `json:"teams"`
}

// LiteLLMTeam is one team's models and per-key limits.
type LiteLLMTeam struct {
	Name              string   `json:"name"`
	Models            []string `json:"models"`
	RequestsPerMinute int      `json:"requestsPerMinute"`
	TokensPerMinute   int      `json:"tokensPerMinute"`
	ParallelPerKey    int      `json:"parallelPerKey"`
}

var registryTable = regexp.MustCompile(`^llm-sandbox-[a-z][a-z0-9-]*-keys$`)

// validate names each bad field under litellm.keyRegistry; models are the gateway's, local
// says the node is on the local platform.
func (k *KeyRegistry) validate(models []LiteLLMModel, local bool) []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("litellm.keyRegistry.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch {
	case local && k.Table != "":
		add("table", "must be absent on platform %s, which has no DynamoDB: name the key store in file (got %q)", PlatformLocal, k.Table)
	case local && !filepath.IsAbs(k.File):
		add("file", "must be the absolute path of the local run's key store on platform %s (got %q)", PlatformLocal, k.File)
	case !local && k.File != "":
		add("file", "is only for platform %s (got %q)", PlatformLocal, k.File)
	case !local && !registryTable.MatchString(k.Table):
		add("table", "must be the department's registry table, llm-sandbox-<department>-keys (got %q)", k.Table)
	}
	served := map[string]bool{}
	for _, m := range models {
		served[m.Name] = true
	}
	seen := map[string]bool{}
	for i, t := range k.Teams {
		at := func(f string) string { return fmt.Sprintf("teams[%d].%s", i, f) }
		if msg := rules.TeamName(t.Name); msg != "" {
			add(at("name"), "%s", msg)
		} else if seen[t.Name] {
			add(at("name"), "repeats team %q", t.Name)
		}
		seen[t.Name] = true
		if len(t.Models) == 0 {
			add(at("models"), "must list at least one model")
		}
		for j, m := range t.Models {
			if !served[m] {
				add(fmt.Sprintf("teams[%d].models[%d]", i, j), "%q is not a model of litellm.models", m)
			}
		}
		for f, v := range map[string]int{"requestsPerMinute": t.RequestsPerMinute, "tokensPerMinute": t.TokensPerMinute, "parallelPerKey": t.ParallelPerKey} {
			if v < 1 {
				add(at(f), "must be at least 1 (got %d)", v)
			}
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// RenderLiteLLMAuthSettings renders LiteLLMAuthSettingsFile from the node config, or returns
// nil when the config has no key registry.
func RenderLiteLLMAuthSettings(c *Config) ([]byte, error) {
	if c.LiteLLM == nil || c.LiteLLM.KeyRegistry == nil {
		return nil, nil
	}
	if errs := c.LiteLLM.KeyRegistry.validate(c.LiteLLM.Models, c.Local()); len(errs) > 0 {
		return nil, fmt.Errorf("render %s: %w", LiteLLMAuthSettingsFile, errors.Join(errs...))
	}
	type team struct {
		Models            []string `json:"models"`
		RequestsPerMinute int      `json:"rpm"`
		TokensPerMinute   int      `json:"tpm"`
		ParallelPerKey    int      `json:"parallel"`
	}
	teams := map[string]team{}
	for _, t := range c.LiteLLM.KeyRegistry.Teams {
		teams[t.Name] = team{t.Models, t.RequestsPerMinute, t.TokensPerMinute, t.ParallelPerKey}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	var served []string
	for _, m := range c.LiteLLM.Models {
		served = append(served, m.Name)
	}
	settings := map[string]any{
		"models":       served,
		"cacheSeconds": KeyCacheSeconds,
		"staleSeconds": KeyStaleSeconds,
		"teams":        teams,
	}
	// The one difference between the platforms: where the module reads a record.
	if c.Local() {
		settings["file"] = c.LiteLLM.KeyRegistry.File
	} else {
		settings["table"], settings["region"] = c.LiteLLM.KeyRegistry.Table, c.Region
	}
	err := enc.Encode(settings)
	return b.Bytes(), err
}

// LiteLLMAuthModule is the custom-auth module LiteLLM loads from beside config.yaml
// (general_settings.custom_auth). LiteLLM calls it for every request that needs a key and
// returns what it returns as is (proxy/auth/user_api_key_auth.py: a custom auth's
// UserAPIKeyAuth is returned without LiteLLM's own key checks), and passes a ProxyException's
// code through (proxy/auth/auth_exception_handler.py, _as_proxy_exception). Without a database,
// LiteLLM 1.108.7 itself would answer a wrong key with 400 ("No connected db.") and a missing
// one with 500.
//
// With the settings file (a gateway node): a key must have the registry's shape (KeyPrefix,
// the id, the secret), its record must hold the SHA-256 of the whole key (compared in constant
// time), not be revoked or expired, and name a team of the settings; else 401. The master key
// is refused like any other unknown key. A request for a model the gateway serves (the settings'
// models) but the team's list lacks gets 403 before any upstream call; a model the gateway does
// not serve goes on to LiteLLM, which answers 404 model_not_found as it would for any client. The returned UserAPIKeyAuth carries the key id as user_id, the
// team as team_id, the team's models, and its per-key rpm_limit, tpm_limit and
// max_parallel_requests, which LiteLLM's rate limiter (proxy/hooks/parallel_request_limiter_v3.py)
// enforces with 429 and a retry-after header. Records are cached per worker for cacheSeconds;
// a registry that does not answer is bridged with the last record for staleSeconds, then 503.
// The role is LiteLLM's internal user, never its admin.
//
// Only where a record is read differs between the platforms (_read): on AWS, the table's item
// through GetItem with boto3 (which the LiteLLM lock carries) and the node's role; on the
// local platform, the local run's key store file (keyregistry.FileStore), which holds the
// same attributes. Every check after the read is the same code for both.
//
// Without the settings file it accepts exactly the master key.
const LiteLLMAuthModule = `"""llm-sandbox: authenticate LiteLLM requests with the department's per-person keys.

Rendered by sandbox-node; change the stack, not this file.
"""
import asyncio
import hashlib
import hmac
import json
import os
import re
import time

from fastapi import Request
from litellm.proxy._types import LitellmUserRoles, ProxyErrorTypes, ProxyException, UserAPIKeyAuth

_MASTER_KEY = os.environ.get("` + MasterKeyVar + `", "")
_SETTINGS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "` + "llm_sandbox_auth.json" + `")
# A key's shape (keyregistry.KeyPrefix, the id, the secret): anything else is refused
# without a registry read.
_KEY = re.compile(r"^sk-lsb-([a-z2-7]{16})_[A-Za-z0-9_-]{43}$")
# The largest number of key ids a worker remembers; past it the oldest are dropped, so random
# well-formed keys cannot grow a worker's memory without bound.
_CACHE_LIMIT = 100000


def _load_settings():
    try:
        with open(_SETTINGS_PATH, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


_SETTINGS = _load_settings()
_cache = {}
_client = None


def _refuse(code, message, type_=ProxyErrorTypes.auth_error):
    return ProxyException(message=message, type=type_, param="api_key", code=code)


def _unauthorized():
    return _refuse(401, "Authentication Error: invalid, expired or revoked API key")


def _table():
    global _client
    if _client is None:
        import boto3

        _client = boto3.client("dynamodb", region_name=_SETTINGS["region"])
    return _client


def _read_table(key_id):
    out = _table().get_item(
        TableName=_SETTINGS["table"],
        Key={"` + keyregistry.AttrKeyID + `": {"S": key_id}},
        ConsistentRead=True,
    )
    item = out.get("Item")
    if not item:
        return None
    # Each attribute is {type: value}: a string ("S") or a number written as text ("N").
    return {name: next(iter(value.values()), None) for name, value in item.items()}


def _read_file(key_id):
    with open(_SETTINGS["file"], encoding="utf-8") as f:
        return json.load(f)["keys"].get(key_id)


def _read(key_id):
    """The registry record of key_id, its attributes by name, or None."""
    if "file" in _SETTINGS:
        return _read_file(key_id)
    return _read_table(key_id)


async def _record(key_id):
    now = time.monotonic()
    hit = _cache.get(key_id)
    if hit is not None and now - hit[0] < _SETTINGS["cacheSeconds"]:
        return hit[1]
    try:
        item = await asyncio.to_thread(_read, key_id)
    except Exception:
        if hit is not None and now - hit[0] < _SETTINGS["staleSeconds"]:
            return hit[1]
        raise _refuse(503, "the key registry does not answer; try again shortly", ProxyErrorTypes.internal_server_error)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.pop(next(iter(_cache)))
    _cache[key_id] = (now, item)
    return item


async def _requested_model(request):
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, TypeError):
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    key = (api_key or "").strip()
    if key.lower().startswith("bearer "):
        key = key[len("bearer "):].strip()
    if _SETTINGS is None:
        if _MASTER_KEY and hmac.compare_digest(key.encode(), _MASTER_KEY.encode()):
            return UserAPIKeyAuth(api_key=key, user_role=LitellmUserRoles.PROXY_ADMIN)
        raise _unauthorized()
    m = _KEY.match(key)
    if m is None:
        raise _unauthorized()
    key_id = m.group(1)
    item = await _record(key_id)
    if not item:
        raise _unauthorized()
    digest = hashlib.sha256(key.encode()).hexdigest()
    stored = item.get("` + keyregistry.AttrHash + `")
    if not isinstance(stored, str) or not hmac.compare_digest(digest.encode(), stored.encode()):
        raise _unauthorized()
    if item.get("` + keyregistry.AttrRevoked + `") is not None:
        raise _unauthorized()
    try:
        expires = int(item["` + keyregistry.AttrExpires + `"])
    except (KeyError, ValueError, TypeError):
        raise _unauthorized()
    if time.time() >= expires:
        raise _unauthorized()
    team_name = item.get("` + keyregistry.AttrTeam + `")
    team = _SETTINGS["teams"].get(team_name) if isinstance(team_name, str) else None
    if team is None:
        raise _unauthorized()
    model = await _requested_model(request)
    # A model the gateway serves but the team may not use is 403; one the gateway does not
    # serve goes on to LiteLLM's router, whose answer (404 model_not_found) says so.
    if model is not None and model in _SETTINGS["models"] and model not in team["models"]:
        denied = _refuse(403, "team %s may not use model %s" % (team_name, model), ProxyErrorTypes.team_model_access_denied)
        # The key is known: the usage module (llm_sandbox_usage.py) counts the error for it.
        denied.llm_sandbox_identity = (team_name, key_id)
        raise denied
    return UserAPIKeyAuth(
        api_key=digest,
        token=digest,
        user_id=key_id,
        team_id=team_name,
        models=list(team["models"]),
        rpm_limit=team["rpm"],
        tpm_limit=team["tpm"],
        max_parallel_requests=team["parallel"],
        user_role=LitellmUserRoles.INTERNAL_USER,
    )
`
