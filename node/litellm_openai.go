package node

import "strconv"

// LiteLLMErrorsFile is the module beside config.yaml that gives LiteLLM's errors OpenAI's
// statuses and codes (mode 0644, no secrets).
const LiteLLMErrorsFile = "/etc/llm-sandbox/litellm/llm_sandbox_openai.py"

// liteLLMErrorsCallback is how config.yaml's litellm_settings.callbacks names the module's
// handler: LiteLLM loads "<module>.<instance>" from the config's directory
// (proxy/common_utils/callback_utils.py, initialize_callbacks_on_proxy, through
// proxy/types_utils/utils.py get_instance_fn).
const liteLLMErrorsCallback = "llm_sandbox_openai.handler"

// OverloadRetryAfterSeconds is the Retry-After the gateway sends with 503 when a pool's
// Ollama queue is full (OLLAMA_MAX_QUEUE): long enough for a queued generation to move, short
// enough that an SDK's automatic retry (which honours Retry-After) lands on a freed slot.
const OverloadRetryAfterSeconds = 2

// LiteLLMErrorsModule is the callback module that makes the pinned LiteLLM (1.108.7) answer as
// OpenAI's clients expect; without it, LiteLLM answers:
//   - an unknown model with 400 and code "400" (proxy/route_llm_request.py,
//     ProxyModelNotFoundError is an HTTPException with status 400): OpenAI answers 404 with code
//     "model_not_found", which the SDKs raise as NotFoundError;
//   - a prompt longer than the pool's context with 200, as Ollama cuts the prompt's start to
//     fit (the model never sees it): OpenAI answers 400 "context_length_exceeded";
//   - Ollama's full queue (503, "server busy ... maximum pending requests exceeded",
//     ollama server/routes.go handleScheduleError) with 503 and no Retry-After.
//
// Every error body is {"error": {"message", "type", "param", "code"}}: LiteLLM's handler
// writes a ProxyException so (proxy/proxy_server.py, openai_exception_handler), but its to_dict
// puts the HTTP status in "code" (proxy/_types.py, ProxyException.to_dict), where OpenAI puts
// its error code; OpenAIError puts the code there. It is also an HTTPException, which is what
// LiteLLM takes from a failure hook to replace the error it answers (proxy/utils.py,
// ProxyLogging.post_call_failure_hook: "If callback returned an HTTPException, use it"), and
// LiteLLM raises a ProxyException as it is (proxy/common_request_processing.py,
// handle_llm_api_exception).
//
// The context check is a pre-call hook (CustomLogger.async_pre_call_hook, which LiteLLM runs
// before routing; an exception there fails the request through the same failure path). It
// counts tokens with LiteLLM's default tokenizer (litellm.token_counter: tiktoken's cl100k_base,
// bundled with LiteLLM), an estimate of the model's own count, against the context the
// gateway's model_info gives each model (max_input_tokens). LiteLLM's own check (router
// setting enable_pre_call_checks) is not used: it looks the model up in LiteLLM's cost map
// (router.py, get_router_model_info), which has no entry for ollama_chat/<tag>, and then checks
// nothing.
//
// It also gives every chunk of a stream the first chunk's id, as OpenAI does: LiteLLM 1.108.7
// gives each chunk of an ollama_chat stream an id of its own (seen on this gateway), and
// openai-go's ChatCompletionAccumulator drops a chunk whose id differs from the first's
// (AddChunk), so a Go client lost all but the first token. LiteLLM runs the hook on every
// streamed response when a callback overrides it (proxy/utils.py, ProxyLogging:
// async_post_call_streaming_iterator_hook in the class's own attributes).
//
// The module reads no text beyond counting it and logs nothing.
var LiteLLMErrorsModule = `"""llm-sandbox: answer as OpenAI's API does: errors (status, type, code, Retry-After), stream ids.

Rendered by sandbox-node; change the stack, not this file. LiteLLM loads it from
config.yaml's litellm_settings.callbacks. It counts a prompt's tokens and logs nothing.
"""
import litellm
from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger
from litellm.proxy._types import ProxyException
from litellm.proxy.route_llm_request import ProxyModelNotFoundError

# Seconds a client should wait when a pool's Ollama queue is full.
RETRY_AFTER_SECONDS = ` + strconv.Itoa(OverloadRetryAfterSeconds) + `


class OpenAIError(ProxyException, HTTPException):
    """An error as OpenAI answers it: the HTTP status, and OpenAI's code in the body's "code"."""

    def __init__(self, status, message, error_type, code, headers=None):
        ProxyException.__init__(
            self, message=message, type=error_type, param=None, code=status, headers=headers, openai_code=code
        )
        self.status_code = status
        self.detail = message

    def to_dict(self):
        error = super().to_dict()
        error["code"] = self.openai_code
        return error


def _max_input_tokens(model):
    """The context the gateway's config gives model (max_input_tokens), or None."""
    from litellm.proxy.proxy_server import llm_router

    if llm_router is None or not isinstance(model, str):
        return None
    limits = [
        (d.get("model_info") or {}).get("max_input_tokens") for d in llm_router.get_model_list(model_name=model) or []
    ]
    limits = [n for n in limits if isinstance(n, int) and n > 0]
    return max(limits) if limits else None


def _input_tokens(data):
    """The request's prompt tokens, or None when it has none this check can count."""
    messages = data.get("messages")
    if isinstance(messages, list):
        return litellm.token_counter(messages=messages, tools=data.get("tools"))
    texts = data.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts):
        # An embedding request: each input is embedded on its own, so the longest counts.
        return max(litellm.token_counter(text=t) for t in texts)
    return None


def context_length_exceeded(limit, tokens):
    return OpenAIError(
        400,
        "This model's maximum context length is %d tokens. However, your request has %d input tokens "
        "(counted with the gateway's tokenizer). Please reduce the length of the input." % (limit, tokens),
        "invalid_request_error",
        "context_length_exceeded",
    )


class OpenAIErrors(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        limit = _max_input_tokens(data.get("model"))
        if limit is None:
            return data
        tokens = _input_tokens(data)
        if tokens is not None and tokens > limit:
            raise context_length_exceeded(limit, tokens)
        return data

    async def async_post_call_failure_hook(self, request_data, original_exception, user_api_key_dict, traceback_str=None):
        e = original_exception
        if isinstance(e, ProxyModelNotFoundError):
            return OpenAIError(
                404,
                "The model %r does not exist or you do not have access to it." % (request_data.get("model"),),
                "invalid_request_error",
                "model_not_found",
            )
        if isinstance(e, litellm.ContextWindowExceededError):
            return OpenAIError(400, str(getattr(e, "message", e)), "invalid_request_error", "context_length_exceeded")
        if isinstance(e, litellm.ServiceUnavailableError):
            return OpenAIError(
                503,
                "The model's pool is busy (its queue is full). Retry after %d seconds." % RETRY_AFTER_SECONDS,
                "server_error",
                "server_busy",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return None

    async def async_post_call_streaming_iterator_hook(self, user_api_key_dict, response, request_data):
        # One id for every chunk of a stream, as OpenAI sends it: clients join chunks by it.
        stream_id = None
        async for chunk in response:
            chunk_id = chunk.get("id") if isinstance(chunk, dict) else getattr(chunk, "id", None)
            if stream_id is None:
                stream_id = chunk_id
            elif chunk_id != stream_id:
                if isinstance(chunk, dict):
                    chunk["id"] = stream_id
                else:
                    chunk.id = stream_id
            yield chunk


handler = OpenAIErrors()
`
