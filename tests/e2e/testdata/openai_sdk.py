"""Drive a department's API with the official OpenAI Python SDK and print what it saw.

Run by tests/e2e/openai_test.go with the SDK's venv (tools/requirements-openai.txt):

    python openai_sdk.py <base URL> <key> <chat model> <embedding model> <marker> <case>

<case> is "surface" (models, chat, streaming with usage, legacy completions, embeddings, tools,
JSON mode, JSON schema and the errors a client can cause) or "overload" (the gateway answering a full pool).
It prints one JSON object; the Go test asserts on it. Prompts and embedding inputs carry the
marker, which the test then looks for in every log and file.
"""
import json
import sys

import openai

base, key, chat_model, embed_model, marker, case = sys.argv[1:7]
# No automatic retries: each error must reach the test as the exception the SDK maps it to.
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris"]}},
            "required": ["city"],
        },
    },
}
# A schema that only a call of WEATHER_TOOL satisfies: with it as the response format Ollama
# constrains the tiny random-weight model to emit a tool call it then parses as one.
CALL_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "enum": ["get_weather"]},
        "arguments": WEATHER_TOOL["function"]["parameters"],
    },
    "required": ["name", "arguments"],
}
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}


def user(what):
    return [{"role": "user", "content": "Reference %s-%s: what is the weather?" % (marker, what)}]


def error(call):
    """The SDK exception a call raises, as the test reads it."""
    try:
        call()
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        return {
            "exception": type(e).__name__,
            "status": e.status_code,
            "code": e.code,
            "type": e.type,
            "body_keys": sorted(body.keys()),
            "retry_after": e.response.headers.get("retry-after"),
        }
    return {"exception": None}


def tool_calls(calls):
    return [
        {"id": c.id, "type": c.type, "name": c.function.name, "arguments": json.loads(c.function.arguments)}
        for c in calls or []
    ]


def surface():
    out = {"models": sorted(m.id for m in client.models.list())}

    chat = client.chat.completions.create(model=chat_model, messages=user("chat"), max_tokens=8, temperature=0)
    out["chat"] = {
        "object": chat.object,
        "content": chat.choices[0].message.content,
        "finish_reason": chat.choices[0].finish_reason,
        "usage": chat.usage.model_dump() if chat.usage else None,
    }

    content, chunks, usage = "", 0, None
    for chunk in client.chat.completions.create(
        model=chat_model, messages=user("stream"), max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ):
        chunks += 1
        for c in chunk.choices:
            content += c.delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    out["stream"] = {"content": content, "chunks": chunks, "usage": usage}

    # The legacy text-completion endpoint, which LiteLLM maps onto the chat model.
    legacy = client.completions.create(
        model=chat_model, prompt="Reference %s-legacy: the weather is" % marker, max_tokens=8, temperature=0,
    )
    out["legacy"] = {
        "object": legacy.object,
        "text": legacy.choices[0].text,
        "usage": legacy.usage.model_dump() if legacy.usage else None,
    }
    text, chunks = "", 0
    for chunk in client.completions.create(
        model=chat_model, prompt="Reference %s-legacy-stream: the weather is" % marker, max_tokens=8, temperature=0,
        stream=True,
    ):
        chunks += 1
        for c in chunk.choices:
            text += c.text or ""
    out["legacy_stream"] = {"text": text, "chunks": chunks}

    emb = client.embeddings.create(model=embed_model, input=["%s-embed-one" % marker, "%s-embed-two" % marker])
    out["embeddings"] = {
        "object": emb.object,
        "count": len(emb.data),
        "indexes": [d.index for d in emb.data],
        "dimensions": [len(d.embedding) for d in emb.data],
        "usage": emb.usage.model_dump() if emb.usage else None,
    }

    call = client.chat.completions.create(
        model=chat_model, messages=user("tools"), max_tokens=64, temperature=0, tools=[WEATHER_TOOL],
        tool_choice="auto", response_format={"type": "json_schema", "json_schema": {"name": "call", "schema": CALL_SCHEMA}},
    )
    out["tools"] = {
        "finish_reason": call.choices[0].finish_reason,
        "tool_calls": tool_calls(call.choices[0].message.tool_calls),
    }

    # Streamed, the tool call arrives in deltas: name and arguments are joined by index.
    calls, finish = {}, None
    for chunk in client.chat.completions.create(
        model=chat_model, messages=user("tools-stream"), max_tokens=64, temperature=0, tools=[WEATHER_TOOL],
        response_format={"type": "json_schema", "json_schema": {"name": "call", "schema": CALL_SCHEMA}}, stream=True,
    ):
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for d in c.delta.tool_calls or []:
                got = calls.setdefault(d.index, {"name": "", "arguments": ""})
                if d.function and d.function.name:
                    got["name"] += d.function.name
                if d.function and d.function.arguments:
                    got["arguments"] += d.function.arguments
    out["tools_stream"] = {
        "finish_reason": finish,
        "tool_calls": [{"name": c["name"], "arguments": json.loads(c["arguments"])} for _, c in sorted(calls.items())],
    }

    js = client.chat.completions.create(
        model=chat_model, messages=user("json-object"), max_tokens=8, temperature=0,
        response_format={"type": "json_object"},
    )
    out["json_object"] = {"content": js.choices[0].message.content}
    schema = client.chat.completions.create(
        model=chat_model, messages=user("json-schema"), max_tokens=16, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA}},
    )
    out["json_schema"] = {"content": schema.choices[0].message.content}

    out["errors"] = {
        "unknown_model": error(lambda: client.chat.completions.create(model="no-such-model:1b", messages=user("unknown"))),
        "unknown_embedding_model": error(lambda: client.embeddings.create(model="no-such-embedder", input="x")),
        "over_context": error(lambda: client.chat.completions.create(
            model=chat_model, messages=[{"role": "user", "content": "%s-long %s" % (marker, "word " * 3000)}], max_tokens=8,
        )),
        "over_context_embedding": error(lambda: client.embeddings.create(
            model=embed_model, input="%s-long-embed %s" % (marker, "word " * 3000),
        )),
        "wrong_key": error(lambda: openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0).models.list()),
    }
    return out


def overload():
    return {
        "chat": error(lambda: client.chat.completions.create(model=chat_model, messages=user("busy"), max_tokens=8)),
        "stream": error(lambda: list(client.chat.completions.create(
            model=chat_model, messages=user("busy-stream"), max_tokens=8, stream=True,
        ))),
        "embeddings": error(lambda: client.embeddings.create(model=embed_model, input="%s-busy" % marker)),
    }


print(json.dumps({"surface": surface, "overload": overload}[case]()))
