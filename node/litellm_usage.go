package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/llm-sandbox/llm-sandbox/internal/keyregistry"
	"github.com/llm-sandbox/llm-sandbox/internal/usage"
)

// LiteLLMUsageFile is the callback module beside config.yaml that counts each team's and
// key's usage and publishes the counts to CloudWatch (mode 0644, no secrets).
const LiteLLMUsageFile = "/etc/llm-sandbox/litellm/llm_sandbox_usage.py"

// LiteLLMUsageSettingsFile is the usage module's settings beside it: the namespace, the
// department, the region, the flush interval and the teams (mode 0644, no secrets). Absent,
// the module counts nothing (the local platform, which has no per-person keys).
const LiteLLMUsageSettingsFile = "/etc/llm-sandbox/litellm/llm_sandbox_usage.json"

// liteLLMUsageCallback is how config.yaml's litellm_settings.callbacks names the module's
// handler (as liteLLMErrorsCallback).
const liteLLMUsageCallback = "llm_sandbox_usage.handler"

// LiteLLMUsage turns on the usage metrics of a gateway with a key registry.
type LiteLLMUsage struct {
	// FlushSeconds is how often each LiteLLM worker publishes what it counted, 1..300;
	// usage.FlushSeconds on AWS. A worker also publishes what is left when it stops.
	FlushSeconds int `json:"flushSeconds"`
}

// validate names each bad field under litellm.usage; registry is the gateway's.
func (u *LiteLLMUsage) validate(registry *KeyRegistry) []error {
	var errs []error
	if registry == nil {
		errs = append(errs, fmt.Errorf("litellm.usage: needs litellm.keyRegistry: usage is counted per team and key id"))
	}
	if u.FlushSeconds < 1 || u.FlushSeconds > 300 {
		errs = append(errs, fmt.Errorf("litellm.usage.flushSeconds: must be 1..300 (got %d)", u.FlushSeconds))
	}
	return errs
}

// RenderLiteLLMUsageSettings renders LiteLLMUsageSettingsFile from the node config, or returns
// nil when the config turns no usage metrics on.
func RenderLiteLLMUsageSettings(c *Config) ([]byte, error) {
	if c.LiteLLM == nil || c.LiteLLM.Usage == nil {
		return nil, nil
	}
	if errs := c.LiteLLM.Usage.validate(c.LiteLLM.KeyRegistry); len(errs) > 0 {
		return nil, fmt.Errorf("render %s: %v", LiteLLMUsageSettingsFile, errs)
	}
	teams := []string{}
	for _, t := range c.LiteLLM.KeyRegistry.Teams {
		teams = append(teams, t.Name)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	err := enc.Encode(map[string]any{
		"namespace":    usage.Namespace,
		"department":   c.Department,
		"region":       c.Region,
		"flushSeconds": c.LiteLLM.Usage.FlushSeconds,
		"teams":        teams,
	})
	return b.Bytes(), err
}

// LiteLLMUsageModule is the callback module that counts, in each LiteLLM worker, per team and
// key id: requests, prompt tokens, completion tokens, errors and 429s, and publishes the
// counts to CloudWatch (usage.Namespace, dimensions usage.DimDepartment, DimTeam, DimKeyID)
// with boto3's put_metric_data (the LiteLLM lock carries boto3) and the node's role.
//
// What it reads, from the pinned LiteLLM (1.108.7):
//   - an answered request: CustomLogger.async_log_success_event, which LiteLLM calls once per
//     call with kwargs["standard_logging_object"] (litellm/types/utils.py, StandardLoggingPayload:
//     prompt_tokens, completion_tokens, and metadata.user_api_key_user_id and
//     user_api_key_team_id, the key id and team the custom-auth module returned);
//   - a failed request: CustomLogger.async_post_call_failure_hook, which the proxy calls on every
//     callback for each failed request (proxy/utils.py, ProxyLogging.post_call_failure_hook),
//     with the UserAPIKeyAuth of the request: a 429 of the rate limiter
//     (proxy/hooks/parallel_request_limiter_v3.py, raised before routing), an upstream error,
//     a prompt too long. A request the custom-auth module refuses reaches it with an empty
//     UserAPIKeyAuth (proxy/auth/auth_exception_handler.py: the identity is only known when
//     LiteLLM resolved it itself): an unknown, revoked or expired key (401) is counted
//     nowhere, as it has no key id anyone issued; a model outside the team (403) is counted
//     for its key, which the module names on the exception (llm_sandbox_identity).
//
// Only a team of the settings and a key id of the registry's shape become dimension values,
// so the number of metrics is bounded by the keys the department issued: nobody can create
// metrics by sending made-up keys. It never reads a message, a completion, a header or an
// address, and logs nothing but a failed publication (the error, no counts).
//
// Publishing: a daemon thread of each worker process (started with the worker's first count;
// a forked worker starts its own) sends what was counted every flushSeconds, in calls of at
// most 1,000 data (PutMetricData's limit), off the event loop, so no request ever waits on
// CloudWatch. A call that fails puts its counts back for the next one. When the worker stops
// (systemd stopping LiteLLM, a drained node), it sends what is left: atexit for a process
// that ends through sys.exit (a single process, and uvicorn's workers, which it spawns:
// uvicorn/_subprocess.py; multiprocessing/spawn.py spawn_main ends with sys.exit), and
// multiprocessing's finalizers for a forked worker, which ends through os._exit after them
// (multiprocessing/process.py BaseProcess._bootstrap, popen_fork.py). boto3 is imported when
// the module loads: once Python is shutting down, importing it fails.
var LiteLLMUsageModule = `"""llm-sandbox: count each team's and key's requests, tokens, errors and 429s; publish the counts to CloudWatch.

Rendered by sandbox-node; change the stack, not this file. LiteLLM loads it from config.yaml's
litellm_settings.callbacks. It reads key ids, teams, token counts and statuses: never a
prompt, a completion or an address.
"""
import atexit
import json
import multiprocessing.util
import os
import re
import sys
import threading

from litellm.integrations.custom_logger import CustomLogger

_SETTINGS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llm_sandbox_usage.json")
_KEY_ID = re.compile(r"^[a-z2-7]{` + strconv.Itoa(keyregistry.IDLength) + `}$")
# The counters, in the order of METRICS.
METRICS = ("` + usage.MetricRequests + `", "` + usage.MetricPromptTokens + `", "` + usage.MetricCompletionTokens + `", "` + usage.MetricErrors + `", "` + usage.MetricThrottles + `")
# PutMetricData takes at most 1,000 data per call.
_BATCH = 1000


def _load_settings():
    try:
        with open(_SETTINGS_PATH, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _status(e):
    """The HTTP status an exception answers with: status_code, else code, else 500."""
    for attr in ("status_code", "code"):
        try:
            return int(getattr(e, attr, None))
        except (TypeError, ValueError):
            pass
    return 500


def _int(v):
    try:
        return max(0, int(v or 0))
    except (TypeError, ValueError):
        return 0


class Usage(CustomLogger):
    def __init__(self, settings):
        super().__init__()
        self.settings = settings
        self.teams = frozenset(settings["teams"]) if settings else frozenset()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._counts = {}
        self._pid = None
        self._client = None
        self._ready = threading.Event()

    def count(self, team, key_id, requests=0, prompt=0, completion=0, errors=0, throttles=0):
        """Adds to the counters of a key of a team the settings name; anything else is ignored."""
        if self.settings is None or team not in self.teams or not isinstance(key_id, str) or not _KEY_ID.match(key_id):
            return
        self._start()
        with self._lock:
            c = self._counts.setdefault((team, key_id), [0, 0, 0, 0, 0])
            for i, v in enumerate((requests, prompt, completion, errors, throttles)):
                c[i] += v

    def _start(self):
        # Once per process: a worker forked from a process that already counted starts from
        # zero with a thread of its own (threads do not survive a fork).
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid, self._counts, self._client = os.getpid(), {}, None
            self._ready = threading.Event()
        threading.Thread(target=self._run, name="llm-sandbox-usage", daemon=True).start()
        atexit.register(self.flush)
        multiprocessing.util.Finalize(None, self.flush, exitpriority=10)

    def _run(self):
        # The client is made here, off the event loop and before it is needed: at exit,
        # boto3 can no longer make one (it registers atexit handlers).
        try:
            self._cloudwatch()
        except Exception as e:
            print("llm-sandbox usage: no CloudWatch client yet: %s" % e, file=sys.stderr, flush=True)
        finally:
            self._ready.set()
        stop = threading.Event()
        while not stop.wait(self.settings["flushSeconds"]):
            self.flush()

    def _cloudwatch(self):
        with self._lock:
            client = self._client
        if client is None and threading.current_thread().name != "llm-sandbox-usage":
            # A flush at exit right after the first count: the thread is making the client.
            self._ready.wait(30)
            with self._lock:
                client = self._client
        if client is None:
            client = boto3.client(
                "cloudwatch",
                region_name=self.settings["region"],
                config=Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3}),
            )
            with self._lock:
                self._client = client
        return client

    def flush(self):
        """Publishes the counts so far; what fails to go is kept for the next flush."""
        if self._pid != os.getpid():
            return
        with self._flushing:
            with self._lock:
                counts, self._counts = self._counts, {}
            data = []
            for (team, key_id), values in sorted(counts.items()):
                dims = [
                    {"Name": "` + usage.DimDepartment + `", "Value": self.settings["department"]},
                    {"Name": "` + usage.DimTeam + `", "Value": team},
                    {"Name": "` + usage.DimKeyID + `", "Value": key_id},
                ]
                # Zero counts are not sent: a metric costs only in the hours it has data.
                for name, v in zip(METRICS, values):
                    if v:
                        data.append(((team, key_id), {"MetricName": name, "Dimensions": dims, "Value": float(v), "Unit": "Count"}))
            for i in range(0, len(data), _BATCH):
                batch = data[i : i + _BATCH]
                try:
                    self._cloudwatch().put_metric_data(Namespace=self.settings["namespace"], MetricData=[d for _, d in batch])
                except Exception as e:
                    self._put_back(data[i:])
                    print("llm-sandbox usage: publishing to CloudWatch failed, kept for the next attempt: %s" % e, file=sys.stderr, flush=True)
                    return

    def _put_back(self, data):
        with self._lock:
            for key, d in data:
                c = self._counts.setdefault(key, [0, 0, 0, 0, 0])
                c[METRICS.index(d["MetricName"])] += int(d["Value"])

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        payload = kwargs.get("standard_logging_object") or {}
        meta = payload.get("metadata") or {}
        self.count(
            meta.get("user_api_key_team_id"),
            meta.get("user_api_key_user_id"),
            requests=1,
            prompt=_int(payload.get("prompt_tokens")),
            completion=_int(payload.get("completion_tokens")),
        )

    async def async_post_call_failure_hook(self, request_data, original_exception, user_api_key_dict, traceback_str=None):
        team = getattr(user_api_key_dict, "team_id", None)
        key_id = getattr(user_api_key_dict, "user_id", None)
        if key_id is None:
            # A request the custom-auth module refused after it knew the key (403).
            team, key_id = getattr(original_exception, "llm_sandbox_identity", (None, None))
        throttled = _status(original_exception) == 429
        self.count(team, key_id, requests=1, errors=0 if throttled else 1, throttles=1 if throttled else 0)
        return None


_settings = _load_settings()
if _settings is not None:
    # Imported now, at LiteLLM's start: boto3 registers exit handlers as it loads, which
    # Python refuses once it is shutting down, when a worker's last counts are published.
    import boto3
    from botocore.config import Config
handler = Usage(_settings)
`
