#!/usr/bin/env python3
"""Record the request bodies that pinned official LLM clients send (DESIGN.md §10).

SpendGuard refuses request fields it cannot price unless they are known to be free; the *free*
list is derived from what real clients send. This script drives each official client against a
tiny aiohttp capture server on 127.0.0.1 (random port) that records every request and answers a
minimal valid response for that API (JSON or SSE stream), then writes one JSON file per
(client, API, scenario[, request number]) into ``tests/providers/recorded/``.

It runs in a separate virtualenv, never in the project's own environment::

    python3 -m venv /tmp/clients
    /tmp/clients/bin/pip install -r tests/providers/recorded/VERSIONS.txt
    /tmp/clients/bin/python scripts/record_client_bodies.py            # record + FIELDS.md
    /tmp/clients/bin/python scripts/record_client_bodies.py record     # recordings only
    /tmp/clients/bin/python scripts/record_client_bodies.py fields     # FIELDS.md only

(first time, or to move to newer clients:
``/tmp/clients/bin/pip install -U openai openai-agents langchain-openai langchain-anthropic
anthropic google-genai aiohttp litellm xai-sdk`` and rerun; VERSIONS.txt is rewritten from what
is installed, then review the diff of ``tests/providers/recorded/``. ``--client NAME`` records
one client only. A client that is not installed is skipped and reported; the exit code is 1 when
any scenario failed or any SDK field is unclassified. xai-sdk is only read, for the xAI field
list: xAI's REST chat completions is reached with the openai SDK.)

Each recording holds ``client``, ``client_version``, ``api``, ``scenario``, ``call`` (what the
agent developer wrote), ``method``, ``path``, ``query``, ``headers`` (only ``anthropic-*``,
``openai-*``, ``x-goog-*``, ``x-stainless-*``; secret ones as ``<redacted>``) and ``body``
(parsed JSON). Determinism: the script re-executes itself with ``PYTHONHASHSEED=0`` (openai-agents
builds ``include`` from a set), the capture server answers fixed ids, and client retries are off.
No request leaves 127.0.0.1: tracing / telemetry / remote cost maps are switched off by env.

``fields`` writes ``tests/providers/recorded/FIELDS.md``: the request fields each SDK's type
definitions declare (extracted here from the installed SDK source), each with the proposed
classification kept in ``CLASSIFY`` below, and whether a recording contains it. A field the SDK
declares but ``CLASSIFY`` lacks is listed as UNCLASSIFIED, so an SDK bump shows what is new.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.metadata as md
import json
import os
import platform
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "providers" / "recorded"

# Keep every request on this machine: no tracing export, telemetry or remote price maps.
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LANGCHAIN_TRACING_V2", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "false")
for _var in (
    "GOOGLE_GENAI_API_VERSION",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
):
    os.environ.pop(_var, None)

PACKAGES = [
    "openai",
    "openai-agents",
    "langchain-openai",
    "langchain-core",
    "langchain-anthropic",
    "anthropic",
    "google-genai",
    "litellm",
    "xai-sdk",
    "aiohttp",
    "httpx",
    "pydantic",
]
KEEP_PREFIXES = ("anthropic-", "openai-", "x-goog-", "x-stainless-")
SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization"}
FAKE_KEY = "sk-recording-not-a-key"


def version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# Canned answers
# ---------------------------------------------------------------------------------------------


def example_from_schema(schema: Any, defs: dict | None = None, depth: int = 0) -> Any:
    """A minimal instance of a JSON schema (or Gemini OpenAPI schema) for structured outputs."""
    if not isinstance(schema, dict) or depth > 12:
        return "x"
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return example_from_schema(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, depth + 1)
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return example_from_schema(options[0], defs, depth + 1)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    kind = str(kind).lower()
    if kind == "object":
        props = schema.get("properties", {})
        return {k: example_from_schema(v, defs, depth + 1) for k, v in props.items()}
    if kind == "array":
        return []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return "x"


def _sse(event: str | None, data: Any) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def _openai_chat(body: dict) -> tuple[dict | None, list[bytes] | None]:
    model = body.get("model", "model")
    messages = body.get("messages", [])
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    answered = any(m.get("role") == "tool" for m in messages)
    call = None
    if tools and not answered and body.get("tool_choice") != "none":
        fn = tools[0]["function"]
        call = {
            "name": fn["name"],
            "arguments": json.dumps(example_from_schema(fn.get("parameters", {}))),
        }
    text = "ok"
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema":
        text = json.dumps(example_from_schema(rf["json_schema"].get("schema", {})))
    elif rf.get("type") == "json_object":
        text = "{}"
    n = body.get("n") or 1
    usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    if not body.get("stream"):
        choices = []
        for i in range(n):
            msg: dict[str, Any] = {
                "role": "assistant",
                "content": None if call else text,
                "refusal": None,
            }
            if call:
                msg["tool_calls"] = [{"id": "call_rec1", "type": "function", "function": call}]
            choices.append(
                {
                    "index": i,
                    "message": msg,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if call else "stop",
                }
            )
        return {
            "id": "chatcmpl-rec1",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": choices,
            "usage": usage,
        }, None
    base = {
        "id": "chatcmpl-rec1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
    }
    chunks = []
    for i in range(n):
        chunks.append(
            {
                **base,
                "choices": [
                    {
                        "index": i,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ],
            }
        )
        if call:
            delta = {
                "tool_calls": [
                    {"index": 0, "id": "call_rec1", "type": "function", "function": call}
                ]
            }
        else:
            delta = {"content": text}
        chunks.append({**base, "choices": [{"index": i, "delta": delta, "finish_reason": None}]})
        chunks.append(
            {
                **base,
                "choices": [
                    {"index": i, "delta": {}, "finish_reason": "tool_calls" if call else "stop"}
                ],
            }
        )
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": usage})
    return None, [_sse(None, c) for c in chunks] + [_sse(None, "[DONE]")]


def _openai_responses(body: dict) -> tuple[dict | None, list[bytes] | None]:
    model = body.get("model", "model")
    inp = body.get("input")
    items = inp if isinstance(inp, list) else []
    answered = any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in items)
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    text = "ok"
    fmt = ((body.get("text") or {}).get("format")) or {}
    if fmt.get("type") == "json_schema":
        text = json.dumps(example_from_schema(fmt.get("schema", {})))
    if tools and not answered and body.get("tool_choice") != "none":
        item = {
            "type": "function_call",
            "id": "fc_rec1",
            "call_id": "call_rec1",
            "name": tools[0]["name"],
            "arguments": json.dumps(example_from_schema(tools[0].get("parameters", {}))),
            "status": "completed",
        }
    else:
        item = {
            "type": "message",
            "id": "msg_rec1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
        }
    usage = {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 6,
    }
    resp = {
        "id": "resp_rec1",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "model": model,
        "output": [item],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "reasoning": {"effort": None, "summary": None},
    }
    if not body.get("stream"):
        return resp, None
    seq = iter(range(1000))
    events = [
        (
            "response.created",
            {"response": {**resp, "status": "in_progress", "output": [], "usage": None}},
        ),
        (
            "response.in_progress",
            {"response": {**resp, "status": "in_progress", "output": [], "usage": None}},
        ),
    ]
    if item["type"] == "message":
        events += [
            (
                "response.output_item.added",
                {"output_index": 0, "item": {**item, "status": "in_progress", "content": []}},
            ),
            (
                "response.content_part.added",
                {
                    "item_id": "msg_rec1",
                    "output_index": 0,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                },
            ),
            (
                "response.output_text.delta",
                {
                    "item_id": "msg_rec1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": text,
                    "logprobs": [],
                },
            ),
            (
                "response.output_text.done",
                {
                    "item_id": "msg_rec1",
                    "output_index": 0,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                },
            ),
            (
                "response.content_part.done",
                {
                    "item_id": "msg_rec1",
                    "output_index": 0,
                    "content_index": 0,
                    "part": item["content"][0],
                },
            ),
        ]
    else:
        events += [
            (
                "response.output_item.added",
                {"output_index": 0, "item": {**item, "status": "in_progress", "arguments": ""}},
            ),
            (
                "response.function_call_arguments.delta",
                {"item_id": "fc_rec1", "output_index": 0, "delta": item["arguments"]},
            ),
            (
                "response.function_call_arguments.done",
                {
                    "item_id": "fc_rec1",
                    "output_index": 0,
                    "name": item["name"],
                    "arguments": item["arguments"],
                },
            ),
        ]
    events += [
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": resp}),
    ]
    return None, [_sse(t, {"type": t, "sequence_number": next(seq), **d}) for t, d in events]


def _openai_embeddings(body: dict) -> tuple[dict, None]:
    inputs = body.get("input")
    count = (
        len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
    )
    vector = [0.0, 0.5, 1.0]
    if body.get("encoding_format") == "base64":
        emb: Any = base64.b64encode(struct.pack("<3f", *vector)).decode()
    else:
        emb = vector
    data = [{"object": "embedding", "index": i, "embedding": emb} for i in range(count)]
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }, None


def _anthropic_messages(body: dict) -> tuple[dict | None, list[bytes] | None]:
    model = body.get("model", "model")
    tools = [t for t in body.get("tools") or [] if "input_schema" in t]
    answered = any(
        isinstance(m.get("content"), list)
        and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in m["content"])
        for m in body.get("messages", [])
    )
    choice = (body.get("tool_choice") or {}).get("type")
    block: dict[str, Any]
    if tools and not answered and choice != "none":
        name = (body.get("tool_choice") or {}).get("name") or tools[0]["name"]
        schema = next((t["input_schema"] for t in tools if t["name"] == name), {})
        block = {
            "type": "tool_use",
            "id": "toolu_rec1",
            "name": name,
            "input": example_from_schema(schema),
        }
        stop = "tool_use"
    else:
        text = "ok"
        fmt = (body.get("output_config") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            text = json.dumps(example_from_schema(fmt.get("schema", {})))
        block = {"type": "text", "text": text}
        stop = "end_turn"
    usage = {
        "input_tokens": 5,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    msg = {
        "id": "msg_rec1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return msg, None
    start_block = {**block, "text": ""} if block["type"] == "text" else {**block, "input": {}}
    delta = (
        {"type": "text_delta", "text": block["text"]}
        if block["type"] == "text"
        else {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    )
    events = [
        (
            "message_start",
            {
                "message": {
                    **msg,
                    "content": [],
                    "stop_reason": None,
                    "usage": {**usage, "output_tokens": 1},
                }
            },
        ),
        ("content_block_start", {"index": 0, "content_block": start_block}),
        ("content_block_delta", {"index": 0, "delta": delta}),
        ("content_block_stop", {"index": 0}),
        (
            "message_delta",
            {"delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 1}},
        ),
        ("message_stop", {}),
    ]
    return None, [_sse(t, {"type": t, **d}) for t, d in events]


def _gemini(path: str, body: dict) -> tuple[dict | None, list[bytes] | None]:
    if path.endswith(":countTokens"):
        return {"totalTokens": 5}, None
    decls = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    answered = any(
        "functionResponse" in p for c in body.get("contents", []) for p in c.get("parts", [])
    )
    gen = body.get("generationConfig") or {}
    if decls and not answered:
        part: dict[str, Any] = {
            "functionCall": {
                "name": decls[0]["name"],
                "args": example_from_schema(
                    decls[0].get("parameters")
                    or decls[0].get("parametersJsonSchema")
                    or decls[0].get("parameters_json_schema")
                    or {}
                ),
            }
        }
    elif gen.get("responseSchema") or gen.get("responseJsonSchema"):
        part = {
            "text": json.dumps(
                example_from_schema(gen.get("responseSchema") or gen.get("responseJsonSchema"))
            )
        }
    else:
        part = {"text": "ok"}
    resp = {
        "candidates": [
            {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6},
        "modelVersion": "recorded",
        "responseId": "rec1",
    }
    if path.endswith(":streamGenerateContent"):
        return None, [_sse(None, resp)]
    return resp, None


def answer(path: str, body: Any) -> tuple[dict | None, list[bytes] | None, int]:
    body = body if isinstance(body, dict) else {}
    if path.endswith("/chat/completions"):
        return (*_openai_chat(body), 200)
    if path.endswith("/responses"):
        return (*_openai_responses(body), 200)
    if path.endswith("/embeddings"):
        return (*_openai_embeddings(body), 200)
    if path.endswith("/messages/count_tokens"):
        return {"input_tokens": 5}, None, 200
    if path.endswith("/messages"):
        return (*_anthropic_messages(body), 200)
    if ":" in path.rsplit("/", 1)[-1]:
        return (*_gemini(path, body), 200)
    return {"error": {"message": f"capture server: no canned answer for {path}"}}, None, 404


# ---------------------------------------------------------------------------------------------
# Capture server (own event loop in a thread, so sync and async clients can both call it)
# ---------------------------------------------------------------------------------------------


class CaptureServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request):  # type: ignore[no-untyped-def]
        from aiohttp import web

        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {}
        for name, value in request.headers.items():
            low = name.lower()
            if low in SECRET_HEADERS:
                headers[low] = "<redacted>"
            elif low.startswith(KEEP_PREFIXES):
                headers[low] = value
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": dict(sorted(headers.items())),
                "body": body,
            }
        )
        payload, events, status = answer(request.path, body)
        if events is None:
            return web.json_response(
                payload,
                status=status,
                headers={"request-id": "req_rec1", "x-request-id": "req_rec1"},
            )
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "request-id": "req_rec1",
                "x-request-id": "req_rec1",
            },
        )
        await resp.prepare(request)
        for chunk in events:
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    def start(self) -> CaptureServer:
        from aiohttp import web

        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("capture server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def take(self) -> list[dict]:
        out, self.requests = self.requests, []
        return out


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    client: str  # distribution name on PyPI
    api: str
    name: str
    call: str
    fn: Callable[[str], None]


SCENARIOS: list[Scenario] = []


def scenario(client: str, api: str, name: str, call: str) -> Callable:
    def deco(fn: Callable[[str], None]) -> Callable[[str], None]:
        SCENARIOS.append(Scenario(client, api, name, call, fn))
        return fn

    return deco


WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
CHAT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER_PARAMS,
        "strict": True,
    },
}
RESP_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": WEATHER_PARAMS,
    "strict": True,
}
ANTH_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": WEATHER_PARAMS,
}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
HELLO = [{"role": "user", "content": "Say hi"}]


def _openai(base: str):  # type: ignore[no-untyped-def]
    import openai

    return openai.OpenAI(api_key=FAKE_KEY, base_url=f"{base}/v1", max_retries=0)


def _anthropic(base: str):  # type: ignore[no-untyped-def]
    import anthropic

    return anthropic.Anthropic(api_key=FAKE_KEY, base_url=base, max_retries=0)


# --- openai SDK: chat completions ------------------------------------------------------------


@scenario(
    "openai",
    "openai.chat_completions",
    "plain",
    "client.chat.completions.create(model, messages=[system, user])",
)
def _(base: str) -> None:
    _openai(base).chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "system", "content": "Be brief."}, *HELLO]
    )


@scenario(
    "openai",
    "openai.chat_completions",
    "tools",
    "client.chat.completions.create(..., tools=[function], tool_choice=named, parallel_tool_calls=False)",
)
def _(base: str) -> None:
    _openai(base).chat.completions.create(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[CHAT_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )


@scenario(
    "openai",
    "openai.chat_completions",
    "tool_result_turn",
    "client.chat.completions.create(..., messages=[user, assistant tool_calls, tool], tools, tool_choice='auto')",
)
def _(base: str) -> None:
    _openai(base).chat.completions.create(
        model="gpt-4.1-mini",
        tools=[CHAT_TOOL],
        tool_choice="auto",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    )


@scenario(
    "openai",
    "openai.chat_completions",
    "response_format_json_schema",
    "client.chat.completions.create(..., response_format={'type': 'json_schema', ...})",
)
def _(base: str) -> None:
    _openai(base).chat.completions.create(
        model="gpt-4.1-mini",
        messages=HELLO,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True},
        },
    )


@scenario(
    "openai",
    "openai.chat_completions",
    "parse_pydantic",
    "client.chat.completions.parse(..., response_format=PydanticModel)",
)
def _(base: str) -> None:
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    _openai(base).chat.completions.parse(
        model="gpt-4.1-mini", messages=HELLO, response_format=Person
    )


@scenario(
    "openai",
    "openai.chat_completions",
    "stream",
    "client.chat.completions.create(..., stream=True, stream_options={'include_usage': True})",
)
def _(base: str) -> None:
    for _chunk in _openai(base).chat.completions.create(
        model="gpt-4.1-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
    ):
        pass


@scenario(
    "openai",
    "openai.chat_completions",
    "stream_helper",
    "with client.chat.completions.stream(...) as s: s.get_final_completion()",
)
def _(base: str) -> None:
    with _openai(base).chat.completions.stream(model="gpt-4.1-mini", messages=HELLO) as s:
        s.get_final_completion()


@scenario(
    "openai",
    "openai.chat_completions",
    "reasoning_effort",
    "client.chat.completions.create(model='o4-mini', reasoning_effort='low', max_completion_tokens=2000)",
)
def _(base: str) -> None:
    _openai(base).chat.completions.create(
        model="o4-mini", messages=HELLO, reasoning_effort="low", max_completion_tokens=2000
    )


@scenario(
    "openai",
    "openai.chat_completions",
    "sampling_options",
    "client.chat.completions.create(..., n, logprobs, top_logprobs, seed, stop, user, metadata, store, "
    "temperature, max_tokens)",
)
def _(base: str) -> None:
    _openai(base).chat.completions.create(
        model="gpt-4.1-mini",
        messages=HELLO,
        n=2,
        logprobs=True,
        top_logprobs=2,
        seed=7,
        stop=["END"],
        user="user-1",
        metadata={"team": "a"},
        store=True,
        temperature=0.2,
        max_tokens=100,
    )


@scenario(
    "openai",
    "openai.chat_completions",
    "prediction",
    "client.chat.completions.create(model='gpt-4.1', prediction={'type': 'content', ...})",
)
def _(base: str) -> None:
    _openai(base).chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "user", "content": "Rename x to y in: x = 1"}],
        prediction={"type": "content", "content": "y = 1"},
    )


# --- openai SDK: responses -------------------------------------------------------------------


@scenario(
    "openai",
    "openai.responses",
    "plain",
    "client.responses.create(model, input=str, instructions=str)",
)
def _(base: str) -> None:
    _openai(base).responses.create(model="gpt-4.1-mini", input="Say hi", instructions="Be brief.")


@scenario(
    "openai",
    "openai.responses",
    "tools",
    "client.responses.create(..., tools=[function, web_search, file_search], tool_choice='auto')",
)
def _(base: str) -> None:
    _openai(base).responses.create(
        model="gpt-4.1-mini",
        input="Weather in Paris?",
        tool_choice="auto",
        tools=[
            RESP_TOOL,
            {"type": "web_search"},
            {"type": "file_search", "vector_store_ids": ["vs_1"], "max_num_results": 5},
        ],
    )


@scenario(
    "openai",
    "openai.responses",
    "reasoning",
    "client.responses.create(model='o4-mini', reasoning={'effort': 'low', 'summary': 'auto'}, "
    "max_output_tokens=2000)",
)
def _(base: str) -> None:
    _openai(base).responses.create(
        model="o4-mini",
        input="Say hi",
        max_output_tokens=2000,
        reasoning={"effort": "low", "summary": "auto"},
    )


@scenario(
    "openai",
    "openai.responses",
    "previous_response_id",
    "client.responses.create(..., previous_response_id='resp_prev', input=[function_call_output])",
)
def _(base: str) -> None:
    _openai(base).responses.create(
        model="gpt-4.1-mini",
        previous_response_id="resp_prev",
        tools=[RESP_TOOL],
        input=[{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
    )


@scenario(
    "openai",
    "openai.responses",
    "include",
    "client.responses.create(..., store=False, include=['reasoning.encrypted_content', ...])",
)
def _(base: str) -> None:
    _openai(base).responses.create(
        model="o4-mini",
        input="Say hi",
        store=False,
        reasoning={"effort": "low"},
        include=["reasoning.encrypted_content", "message.output_text.logprobs"],
    )


@scenario("openai", "openai.responses", "stream", "client.responses.create(..., stream=True)")
def _(base: str) -> None:
    for _event in _openai(base).responses.create(model="gpt-4.1-mini", input="Say hi", stream=True):
        pass


@scenario(
    "openai",
    "openai.responses",
    "stream_helper",
    "with client.responses.stream(...) as s: s.get_final_response()",
)
def _(base: str) -> None:
    with _openai(base).responses.stream(model="gpt-4.1-mini", input="Say hi") as s:
        s.get_final_response()


@scenario(
    "openai",
    "openai.responses",
    "text_format_json_schema",
    "client.responses.create(..., text={'format': {'type': 'json_schema', ...}})",
)
def _(base: str) -> None:
    _openai(base).responses.create(
        model="gpt-4.1-mini",
        input="Say hi",
        text={
            "format": {
                "type": "json_schema",
                "name": "person",
                "schema": PERSON_SCHEMA,
                "strict": True,
            }
        },
    )


@scenario(
    "openai",
    "openai.responses",
    "parse_pydantic",
    "client.responses.parse(..., text_format=PydanticModel)",
)
def _(base: str) -> None:
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    _openai(base).responses.parse(model="gpt-4.1-mini", input="Say hi", text_format=Person)


@scenario(
    "openai",
    "openai.embeddings",
    "plain",
    "client.embeddings.create(model='text-embedding-3-small', input=[str, str])",
)
def _(base: str) -> None:
    _openai(base).embeddings.create(model="text-embedding-3-small", input=["hello", "world"])


@scenario(
    "openai",
    "openai.embeddings",
    "float_dimensions",
    "client.embeddings.create(..., encoding_format='float', dimensions=256)",
)
def _(base: str) -> None:
    _openai(base).embeddings.create(
        model="text-embedding-3-small", input="hello", encoding_format="float", dimensions=256
    )


# --- openai-agents ---------------------------------------------------------------------------


def _agents_run(base: str, model_kind: str, streamed: bool = False) -> None:
    import openai
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
    )
    from agents.tracing import set_tracing_disabled

    set_tracing_disabled(True)

    @function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    client = openai.AsyncOpenAI(api_key=FAKE_KEY, base_url=f"{base}/v1", max_retries=0)
    model_cls = OpenAIResponsesModel if model_kind == "responses" else OpenAIChatCompletionsModel
    agent = Agent(
        name="assistant",
        instructions="Be brief.",
        tools=[get_weather],
        model=model_cls(model="gpt-4.1-mini", openai_client=client),
    )

    async def go() -> None:
        if streamed:
            result = Runner.run_streamed(agent, "Weather in Paris?")
            async for _event in result.stream_events():
                pass
        else:
            await Runner.run(agent, "Weather in Paris?")
        await client.close()

    asyncio.run(go())


@scenario(
    "openai-agents",
    "openai.responses",
    "runner_function_tool",
    "Runner.run(Agent(tools=[@function_tool], model=OpenAIResponsesModel(...)), input)",
)
def _(base: str) -> None:
    _agents_run(base, "responses")


@scenario(
    "openai-agents",
    "openai.responses",
    "runner_streamed_function_tool",
    "Runner.run_streamed(Agent(tools=[@function_tool], model=OpenAIResponsesModel(...)), input)",
)
def _(base: str) -> None:
    _agents_run(base, "responses", streamed=True)


@scenario(
    "openai-agents",
    "openai.chat_completions",
    "runner_function_tool",
    "Runner.run(Agent(tools=[@function_tool], model=OpenAIChatCompletionsModel(...)), input)",
)
def _(base: str) -> None:
    _agents_run(base, "chat")


@scenario(
    "openai-agents",
    "openai.chat_completions",
    "runner_streamed_function_tool",
    "Runner.run_streamed(Agent(tools=[@function_tool], model=OpenAIChatCompletionsModel(...)), input)",
)
def _(base: str) -> None:
    _agents_run(base, "chat", streamed=True)


# --- langchain-openai ------------------------------------------------------------------------


def _lc_openai(base: str, **kw: Any):  # type: ignore[no-untyped-def]
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model="gpt-4.1-mini", api_key=FAKE_KEY, base_url=f"{base}/v1", max_retries=0, **kw
    )


def _lc_weather_tool():  # type: ignore[no-untyped-def]
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return "sunny"

    return get_weather


def _lc_person():  # type: ignore[no-untyped-def]
    from pydantic import BaseModel

    class Person(BaseModel):
        """A person."""

        name: str
        age: int

    return Person


@scenario("langchain-openai", "openai.chat_completions", "invoke", "ChatOpenAI(model).invoke(str)")
def _(base: str) -> None:
    _lc_openai(base).invoke("Say hi")


@scenario(
    "langchain-openai",
    "openai.chat_completions",
    "stream",
    "for c in ChatOpenAI(model).stream(str)",
)
def _(base: str) -> None:
    for _c in _lc_openai(base).stream("Say hi"):
        pass


@scenario(
    "langchain-openai",
    "openai.chat_completions",
    "bind_tools",
    "ChatOpenAI(model).bind_tools([@tool]).invoke(str)",
)
def _(base: str) -> None:
    _lc_openai(base).bind_tools([_lc_weather_tool()]).invoke("Weather in Paris?")


@scenario(
    "langchain-openai",
    "openai.chat_completions",
    "with_structured_output",
    "ChatOpenAI(model).with_structured_output(PydanticModel).invoke(str)",
)
def _(base: str) -> None:
    _lc_openai(base).with_structured_output(_lc_person()).invoke("Invent a person")


@scenario(
    "langchain-openai",
    "openai.chat_completions",
    "with_structured_output_function_calling",
    "ChatOpenAI(model).with_structured_output(PydanticModel, method='function_calling').invoke(str)",
)
def _(base: str) -> None:
    _lc_openai(base).with_structured_output(_lc_person(), method="function_calling").invoke(
        "Invent a person"
    )


@scenario(
    "langchain-openai",
    "openai.responses",
    "invoke",
    "ChatOpenAI(model, use_responses_api=True).invoke(str)",
)
def _(base: str) -> None:
    _lc_openai(base, use_responses_api=True).invoke("Say hi")


@scenario(
    "langchain-openai",
    "openai.responses",
    "stream",
    "for c in ChatOpenAI(model, use_responses_api=True).stream(str)",
)
def _(base: str) -> None:
    for _c in _lc_openai(base, use_responses_api=True).stream("Say hi"):
        pass


@scenario(
    "langchain-openai",
    "openai.responses",
    "bind_tools",
    "ChatOpenAI(model, use_responses_api=True).bind_tools([@tool]).invoke(str)",
)
def _(base: str) -> None:
    _lc_openai(base, use_responses_api=True).bind_tools([_lc_weather_tool()]).invoke(
        "Weather in Paris?"
    )


@scenario(
    "langchain-openai",
    "openai.responses",
    "with_structured_output",
    "ChatOpenAI(model, use_responses_api=True).with_structured_output(PydanticModel).invoke(str)",
)
def _(base: str) -> None:
    _lc_openai(base, use_responses_api=True).with_structured_output(_lc_person()).invoke(
        "Invent a person"
    )


# --- langchain-anthropic ---------------------------------------------------------------------


def _lc_anthropic(base: str, **kw: Any):  # type: ignore[no-untyped-def]
    from langchain_anthropic import ChatAnthropic

    return ChatAnthropic(
        model="claude-sonnet-4-6", api_key=FAKE_KEY, base_url=base, max_retries=0, **kw
    )


@scenario("langchain-anthropic", "anthropic.messages", "invoke", "ChatAnthropic(model).invoke(str)")
def _(base: str) -> None:
    _lc_anthropic(base).invoke("Say hi")


@scenario(
    "langchain-anthropic",
    "anthropic.messages",
    "stream",
    "for c in ChatAnthropic(model).stream(str)",
)
def _(base: str) -> None:
    for _c in _lc_anthropic(base).stream("Say hi"):
        pass


@scenario(
    "langchain-anthropic",
    "anthropic.messages",
    "bind_tools",
    "ChatAnthropic(model).bind_tools([@tool]).invoke(str)",
)
def _(base: str) -> None:
    _lc_anthropic(base).bind_tools([_lc_weather_tool()]).invoke("Weather in Paris?")


@scenario(
    "langchain-anthropic",
    "anthropic.messages",
    "sampling",
    "ChatAnthropic(model, temperature=0.2, top_k=5, max_tokens=1024).invoke(str)",
)
def _(base: str) -> None:
    _lc_anthropic(base, temperature=0.2, top_k=5, max_tokens=1024).invoke("Say hi")


@scenario(
    "langchain-anthropic",
    "anthropic.messages",
    "with_structured_output",
    "ChatAnthropic(model).with_structured_output(PydanticModel).invoke(str)",
)
def _(base: str) -> None:
    _lc_anthropic(base).with_structured_output(_lc_person()).invoke("Invent a person")


# --- anthropic SDK ---------------------------------------------------------------------------


@scenario(
    "anthropic",
    "anthropic.messages",
    "plain",
    "client.messages.create(model, max_tokens, messages)",
)
def _(base: str) -> None:
    _anthropic(base).messages.create(model="claude-sonnet-4-6", max_tokens=1024, messages=HELLO)


@scenario(
    "anthropic",
    "anthropic.messages",
    "system_cache_control",
    "client.messages.create(..., system=[text+cache_control 5m, text+cache_control ttl='1h'])",
)
def _(base: str) -> None:
    _anthropic(base).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=HELLO,
        system=[
            {
                "type": "text",
                "text": "Long reference text.",
                "cache_control": {"type": "ephemeral"},
            },
            {
                "type": "text",
                "text": "Longer reference text.",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
        ],
    )


@scenario(
    "anthropic",
    "anthropic.messages",
    "tools_tool_choice",
    "client.messages.create(..., tools=[custom], tool_choice={'type': 'tool', 'name': ...})",
)
def _(base: str) -> None:
    _anthropic(base).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[ANTH_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
    )


@scenario(
    "anthropic",
    "anthropic.messages",
    "server_tools",
    "client.messages.create(..., tools=[web_search_20250305 max_uses=3, custom], tool_choice='auto')",
)
def _(base: str) -> None:
    _anthropic(base).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=[{"role": "user", "content": "News today?"}],
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}, ANTH_TOOL],
        tool_choice={"type": "auto"},
    )


@scenario(
    "anthropic",
    "anthropic.messages",
    "thinking",
    "client.messages.create(..., max_tokens=4096, thinking={'type': 'enabled', 'budget_tokens': 2048})",
)
def _(base: str) -> None:
    _anthropic(base).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=4096,
        messages=HELLO,
        thinking={"type": "enabled", "budget_tokens": 2048},
    )


@scenario(
    "anthropic",
    "anthropic.messages",
    "adaptive_thinking_effort",
    "client.messages.create(..., thinking={'type': 'adaptive'}, output_config={'effort': 'high'})",
)
def _(base: str) -> None:
    _anthropic(base).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=4096,
        messages=HELLO,
        thinking={"type": "adaptive"},
        output_config={"effort": "high"},
    )


@scenario(
    "anthropic",
    "anthropic.messages",
    "parse_pydantic",
    "client.messages.parse(..., output_format=PydanticModel)",
)
def _(base: str) -> None:
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    _anthropic(base).messages.parse(
        model="claude-sonnet-4-6", max_tokens=1024, messages=HELLO, output_format=Person
    )


@scenario(
    "anthropic", "anthropic.messages", "stream", "for e in client.messages.create(..., stream=True)"
)
def _(base: str) -> None:
    for _e in _anthropic(base).messages.create(
        model="claude-sonnet-4-6", max_tokens=1024, messages=HELLO, stream=True
    ):
        pass


@scenario(
    "anthropic",
    "anthropic.messages",
    "stream_helper",
    "with client.messages.stream(...) as s: s.get_final_message()",
)
def _(base: str) -> None:
    with _anthropic(base).messages.stream(
        model="claude-sonnet-4-6", max_tokens=1024, messages=HELLO
    ) as s:
        s.get_final_message()


@scenario(
    "anthropic",
    "anthropic.messages",
    "metadata_stop_sequences",
    "client.messages.create(..., metadata={'user_id'}, stop_sequences=[...])",
)
def _(base: str) -> None:
    _anthropic(base).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=HELLO,
        metadata={"user_id": "user-1"},
        stop_sequences=["END"],
    )


@scenario(
    "anthropic",
    "anthropic.messages",
    "sampling_extra_body",
    "client.messages.create(..., extra_body={'temperature', 'top_k', 'top_p'}) -- this SDK no longer "
    "declares temperature/top_k/top_p, older code passes them this way",
)
def _(base: str) -> None:
    _anthropic(base).messages.create(
        model="claude-sonnet-4-6",
        max_tokens=1024,
        messages=HELLO,
        extra_body={"temperature": 0.2, "top_k": 5, "top_p": 0.9},
    )


@scenario(
    "anthropic",
    "anthropic.count_tokens",
    "plain",
    "client.messages.count_tokens(model, messages, system, tools)",
)
def _(base: str) -> None:
    _anthropic(base).messages.count_tokens(
        model="claude-sonnet-4-6", messages=HELLO, system="Be brief.", tools=[ANTH_TOOL]
    )


# --- google-genai ----------------------------------------------------------------------------


def _genai(base: str, api_version: str | None):  # type: ignore[no-untyped-def]
    from google import genai
    from google.genai import types

    opts: dict[str, Any] = {"base_url": f"{base}/"}
    if api_version:
        opts["api_version"] = api_version
    client = genai.Client(api_key=FAKE_KEY, http_options=types.HttpOptions(**opts))
    _KEEP_ALIVE.append(client)  # a genai.Client closes its transport when garbage-collected
    return client


_KEEP_ALIVE: list[Any] = []


def _genai_scenarios(tag: str, api_version: str | None) -> None:
    label = "http_options={'api_version': 'v1beta'}" if api_version else "default api_version"
    G = "gemini-2.5-flash"

    def reg(name: str, call: str, api: str = "gemini.generate_content") -> Callable:
        return scenario("google-genai", api, f"{tag}.{name}", f"genai.Client({label}).{call}")

    @reg("plain", "models.generate_content(model, contents=str)")
    def _(base: str) -> None:
        _genai(base, api_version).models.generate_content(model=G, contents="Say hi")

    @reg(
        "system_instruction",
        "models.generate_content(..., config={system_instruction, temperature, max_output_tokens})",
    )
    def _(base: str) -> None:
        _genai(base, api_version).models.generate_content(
            model=G,
            contents="Say hi",
            config={
                "system_instruction": "Be brief.",
                "temperature": 0.2,
                "max_output_tokens": 256,
            },
        )

    @reg(
        "tools_function",
        "models.generate_content(..., config={tools=[Tool(function_declarations)], "
        "automatic_function_calling disabled})",
    )
    def _(base: str) -> None:
        from google.genai import types

        decl = types.FunctionDeclaration(
            name="get_weather",
            description="Weather for a city",
            parameters_json_schema=WEATHER_PARAMS,
        )
        _genai(base, api_version).models.generate_content(
            model=G,
            contents="Weather in Paris?",
            config=types.GenerateContentConfig(
                tools=[types.Tool(function_declarations=[decl])],
                tool_config=types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(mode="ANY")
                ),
            ),
        )

    @reg(
        "tools_python_callable",
        "models.generate_content(..., config={tools=[python function]}) (AFC)",
    )
    def _(base: str) -> None:
        def get_weather(city: str) -> str:
            """Weather for a city."""
            return "sunny"

        _genai(base, api_version).models.generate_content(
            model=G, contents="Weather in Paris?", config={"tools": [get_weather]}
        )

    @reg(
        "google_search",
        "models.generate_content(..., config={tools=[Tool(google_search=GoogleSearch())]})",
    )
    def _(base: str) -> None:
        from google.genai import types

        _genai(base, api_version).models.generate_content(
            model=G,
            contents="News today?",
            config=types.GenerateContentConfig(
                tools=[types.Tool(google_search=types.GoogleSearch())]
            ),
        )

    @reg(
        "thinking_config",
        "models.generate_content(..., config={thinking_config: {thinking_budget, "
        "include_thoughts}})",
    )
    def _(base: str) -> None:
        from google.genai import types

        _genai(base, api_version).models.generate_content(
            model=G,
            contents="Say hi",
            config=types.GenerateContentConfig(
                thinking_config=types.ThinkingConfig(thinking_budget=1024, include_thoughts=True)
            ),
        )

    @reg(
        "response_schema",
        "models.generate_content(..., config={response_mime_type='application/json', "
        "response_schema=PydanticModel})",
    )
    def _(base: str) -> None:
        from pydantic import BaseModel

        class Person(BaseModel):
            name: str
            age: int

        _genai(base, api_version).models.generate_content(
            model=G,
            contents="Invent a person",
            config={"response_mime_type": "application/json", "response_schema": Person},
        )

    @reg(
        "safety_settings",
        "models.generate_content(..., config={safety_settings=[...], stop_sequences, "
        "seed, candidate_count})",
    )
    def _(base: str) -> None:
        from google.genai import types

        _genai(base, api_version).models.generate_content(
            model=G,
            contents="Say hi",
            config=types.GenerateContentConfig(
                safety_settings=[
                    types.SafetySetting(
                        category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_ONLY_HIGH"
                    )
                ],
                stop_sequences=["END"],
                seed=7,
                candidate_count=1,
            ),
        )

    @reg(
        "stream",
        "models.generate_content_stream(model, contents=str)",
        api="gemini.stream_generate_content",
    )
    def _(base: str) -> None:
        for _c in _genai(base, api_version).models.generate_content_stream(
            model=G, contents="Say hi"
        ):
            pass

    @reg("count_tokens", "models.count_tokens(model, contents=str)", api="gemini.count_tokens")
    def _(base: str) -> None:
        _genai(base, api_version).models.count_tokens(model=G, contents="Say hi")

    @reg("chat", "chats.create(model).send_message(str)")
    def _(base: str) -> None:
        _genai(base, api_version).chats.create(model=G).send_message("Say hi")


_genai_scenarios("default", None)
_genai_scenarios("v1beta", "v1beta")


# --- litellm (as a client) -------------------------------------------------------------------


def _litellm(base: str, model: str, api_base: str, **kw: Any) -> None:
    import litellm

    litellm.telemetry = False
    out = litellm.completion(
        model=model, api_base=api_base, api_key=FAKE_KEY, messages=HELLO, num_retries=0, **kw
    )
    if kw.get("stream"):
        for _c in out:
            pass


for _prov, _model, _suffix, _api in (
    ("openai", "openai/gpt-4.1-mini", "/v1", "openai.chat_completions"),
    ("anthropic", "anthropic/claude-sonnet-4-6", "", "anthropic.messages"),
    ("gemini", "gemini/gemini-2.5-flash", "", "gemini.generate_content"),
):
    for _stream in (False, True):

        def _make(
            model: str = _model, suffix: str = _suffix, stream: bool = _stream
        ) -> Callable[[str], None]:
            def run(base: str) -> None:
                kw: dict[str, Any] = {"stream": True} if stream else {"temperature": 0.2}
                if model.startswith("anthropic/"):
                    kw["max_tokens"] = 1024
                _litellm(base, model, base + suffix, **kw)

            return run

        scenario(
            "litellm",
            _api if not (_stream and _prov == "gemini") else "gemini.stream_generate_content",
            f"{_prov}.{'stream' if _stream else 'plain'}",
            f"litellm.completion(model='{_model}', api_base=<capture>{_suffix}, messages"
            f"{', stream=True' if _stream else ', temperature=0.2'})",
        )(_make())


# ---------------------------------------------------------------------------------------------
# Recording
# ---------------------------------------------------------------------------------------------


def _fname(sc: Scenario, index: int, total: int) -> str:
    stem = f"{sc.client}__{sc.api}__{sc.name}"
    return f"{stem}.{index + 1}.json" if total > 1 else f"{stem}.json"


def record(only: list[str] | None) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    server = CaptureServer().start()
    failures: list[str] = []
    written: set[str] = set()
    try:
        for sc in SCENARIOS:
            if only and sc.client not in only:
                continue
            if version(sc.client) is None:
                failures.append(f"{sc.client}: not installed, skipped {sc.api} {sc.name}")
                continue
            server.take()
            error = None
            try:
                sc.fn(server.url)
            except Exception:  # noqa: BLE001 - report and keep recording the rest
                error = traceback.format_exc(limit=3)
            reqs = server.take()
            if error or not reqs:
                failures.append(
                    f"{sc.client} {sc.api} {sc.name}: {len(reqs)} request(s); {error or 'no request'}"
                )
                if not reqs:
                    continue
            for i, req in enumerate(reqs):
                doc = {
                    "client": sc.client,
                    "client_version": version(sc.client),
                    "api": sc.api,
                    "scenario": sc.name,
                    "call": sc.call,
                    **req,
                }
                if error:
                    doc["client_error"] = error.strip().splitlines()[-1]
                name = _fname(sc, i, len(reqs))
                (OUT / name).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
                written.add(name)
    finally:
        server.stop()
    if not only:
        for stale in OUT.glob("*__*.json"):
            if stale.name not in written:
                stale.unlink()
    write_versions()
    print(f"wrote {len(written)} recordings to {OUT.relative_to(ROOT)}")
    for f in failures:
        print("FAILED:", f, file=sys.stderr)
    return 1 if failures else 0


def write_versions() -> None:
    lines = [
        "# Official clients the recordings in this directory were made with (pip requirements format).",
        "# Reproduce: python3 -m venv /tmp/clients && /tmp/clients/bin/pip install -r VERSIONS.txt",
        "#           then /tmp/clients/bin/python scripts/record_client_bodies.py",
        f"# python {platform.python_version()}",
    ]
    for pkg in PACKAGES:
        v = version(pkg)
        lines.append(f"{pkg}=={v}" if v else f"# {pkg}: not installed")
    (OUT / "VERSIONS.txt").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# SDK field extraction (from the installed SDKs' type definitions)
# ---------------------------------------------------------------------------------------------


@dataclass
class Field:
    name: str  # as on the wire
    type: str = ""
    required: bool = False
    note: str = ""  # extraction note (e.g. "SDK field config.top_k", "not sent in Gemini API mode")


def _strip(tp: Any) -> Any:
    import typing

    import typing_extensions as te

    while True:
        origin = typing.get_origin(tp)
        if origin in (
            te.Required,
            te.NotRequired,
            typing.Required,
            typing.NotRequired,
            typing.Annotated,
            te.Annotated,
        ):
            tp = typing.get_args(tp)[0]
            continue
        return tp


def _is_union(tp: Any) -> bool:
    import types
    import typing

    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _render(tp: Any, depth: int = 0) -> str:
    """A short, stable rendering of a type annotation for the tables."""
    import typing

    tp = _strip(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is type(None):
        return "null"
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if _is_union(tp):
        parts = []
        for a in args:
            r = _render(a, depth + 1)
            if r not in parts:
                parts.append(r)
        text = " | ".join(parts)
        return text if len(text) <= 90 or depth else text[:87] + "..."
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        if name in ("dict", "Dict", "Mapping"):
            return "object"
        if args and name not in ("Dict",):
            return f"list[{_render(args[0], depth + 1)}]"
        return "list"
    name = getattr(tp, "__name__", None)
    if name in ("SequenceNotStr",):
        return "list"
    if name:
        return {
            "str": "string",
            "int": "integer",
            "float": "number",
            "bool": "boolean",
            "object": "any",
        }.get(name, name)
    return str(tp).replace("typing.", "")


def _hints(td: Any) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(td, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolved forward refs: fall back to raw strings
        out: dict[str, Any] = {}
        for klass in reversed(td.__mro__):
            out.update(getattr(klass, "__annotations__", {}))
        return out


def typed_dict_fields(*tds: Any) -> list[Field]:
    """Fields of one or more TypedDicts (e.g. the streaming and non-streaming params), merged."""
    fields: dict[str, Field] = {}
    for td in tds:
        required = getattr(td, "__required_keys__", frozenset())
        for name, tp in _hints(td).items():
            rendered, req = _render(tp), name in required
            if name in fields:
                old = fields[name]
                parts = old.type.split(" | ")
                parts += [p for p in rendered.split(" | ") if p not in parts]
                rendered = " | ".join(parts)
                req = req and old.required
            fields[name] = Field(name, rendered, req)
    return sorted(fields.values(), key=lambda f: (not f.required, f.name))


def literal_values(tp: Any) -> list[Any]:
    import typing

    tp = _strip(tp)
    if typing.get_origin(tp) is typing.Literal:
        return list(typing.get_args(tp))
    if _is_union(tp):
        out: list[Any] = []
        for a in typing.get_args(tp):
            out += literal_values(a)
        return out
    return []


def union_members(tp: Any) -> list[Any]:
    import typing

    tp = _strip(tp)
    if _is_union(tp):
        out: list[Any] = []
        for a in typing.get_args(tp):
            out += union_members(a)
        return out
    return [tp]


def tool_variants(union: Any) -> list[tuple[str, Any]]:
    """(wire `type` value, TypedDict) for each member of a tool union; `-` when `type` is optional."""
    out = []
    for member in union_members(union):
        if not hasattr(member, "__annotations__"):
            continue
        hints = _hints(member)
        values = literal_values(hints.get("type")) if "type" in hints else []
        for v in values or ["(no type)"]:
            out.append((str(v), member))
    return out


def _gemini_mldev_map(func_name: str) -> list[tuple[str, str, str | None, str]]:
    """From google-genai's models.py: (sdk field, target object, wire key path, note) for a converter."""
    import ast

    import google.genai.models as gm

    tree = ast.parse(Path(gm.__file__).read_text())
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == func_name)
    out = []
    for stmt in func.body:
        if not isinstance(stmt, ast.If):
            continue
        test = stmt.test
        if not (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Call)
            and getattr(test.left.func, "id", "") == "getv"
        ):
            continue
        src = ".".join(e.value for e in test.left.args[1].elts)  # type: ignore[attr-defined]
        first = stmt.body[0]
        if isinstance(first, ast.Raise):
            msg = ""
            for node in ast.walk(first):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    msg += node.value
            out.append((src, "-", None, msg.strip()))
            continue
        for node in ast.walk(first):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setv":
                target = getattr(node.args[0], "id", "?")
                path = ".".join(e.value for e in node.args[1].elts)  # type: ignore[attr-defined]
                out.append((src, target, path, ""))
                break
    return out


def _proto_fields(descriptor: Any) -> list[Field]:
    kinds = {
        1: "number",
        2: "number",
        3: "integer",
        4: "integer",
        5: "integer",
        8: "boolean",
        9: "string",
        12: "bytes",
        13: "integer",
    }
    out = []
    for f in descriptor.fields:
        if f.message_type is not None:
            t = f.message_type.name
        elif f.enum_type is not None:
            t = " | ".join(v.name for v in f.enum_type.values)
        else:
            t = kinds.get(f.type, str(f.type))
        if f.is_repeated:
            t = f"list[{t}]"
        out.append(Field(f.name, t))
    return out


@dataclass
class Section:
    key: str  # classification key, e.g. "openai.chat"
    title: str
    fields: list[Field]
    presence: Callable[[str], list[str]] | None = (
        None  # field -> clients whose recordings contain it
    )
    intro: str = ""


def _recordings() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(OUT.glob("*__*.json"))]


def _presence(
    apis: tuple[str, ...], getter: Callable[[dict, str], bool]
) -> Callable[[str], list[str]]:
    recs = [r for r in _recordings() if r["api"] in apis and isinstance(r.get("body"), dict)]

    def find(field: str) -> list[str]:
        return sorted({r["client"] for r in recs if getter(r["body"], field)})

    return find


def _tools_of(body: dict) -> list[dict]:
    return [t for t in body.get("tools") or [] if isinstance(t, dict)]


def _tool_type(tool: dict, default: str = "(no type)") -> str:
    return str(tool.get("type") or default)


def _nested(body: dict, dotted: str) -> bool:
    node: Any = body
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def extract_sections() -> list[Section]:
    sections: list[Section] = []

    # --- OpenAI chat completions ---
    from openai.types.chat import completion_create_params as ccp
    from openai.types.chat.chat_completion_tool_union_param import ChatCompletionToolUnionParam

    chat_apis = ("openai.chat_completions",)
    sections.append(
        Section(
            "openai.chat",
            "OpenAI chat completions — top-level fields (`POST /v1/chat/completions`)",
            typed_dict_fields(
                ccp.CompletionCreateParamsNonStreaming, ccp.CompletionCreateParamsStreaming
            ),
            _presence(chat_apis, lambda b, f: f in b),
            "Source: `openai/types/chat/completion_create_params.py` (`CompletionCreateParamsBase` + `stream`).",
        )
    )
    sections.append(
        Section(
            "openai.chat.tools",
            "OpenAI chat completions — `tools[].type`",
            [
                Field(t, ", ".join(sorted(_hints(m))))
                for t, m in tool_variants(ChatCompletionToolUnionParam)
            ],
            _presence(chat_apis, lambda b, f: any(_tool_type(t) == f for t in _tools_of(b))),
        )
    )
    rf = [
        Field(f"response_format.type={t}", ", ".join(sorted(_hints(m))))
        for t, m in tool_variants(_hints(ccp.CompletionCreateParamsBase)["response_format"])
    ]
    nested = []
    for parent in (
        "web_search_options",
        "stream_options",
        "prediction",
        "audio",
        "moderation",
        "prompt_cache_options",
    ):
        tp = _hints(ccp.CompletionCreateParamsBase)[parent]
        for member in union_members(tp):
            if hasattr(member, "__annotations__"):
                nested += [
                    Field(f"{parent}.{f.name}", f.type, f.required)
                    for f in typed_dict_fields(member)
                ]
    sections.append(
        Section(
            "openai.chat.nested",
            "OpenAI chat completions — nested billing-relevant fields",
            rf + nested,
            _presence(
                chat_apis,
                lambda b, f: (
                    _nested(b, f.split("=")[0])
                    if "=" not in f
                    else (b.get("response_format") or {}).get("type") == f.split("=")[1]
                ),
            ),
        )
    )

    from openai.types import embedding_create_params as ecp

    sections.append(
        Section(
            "openai.embeddings",
            "OpenAI embeddings — top-level fields (`POST /v1/embeddings`)",
            typed_dict_fields(ecp.EmbeddingCreateParams),
            _presence(("openai.embeddings",), lambda b, f: f in b),
        )
    )

    # --- OpenAI Responses ---
    from openai.types.responses import response_create_params as rcp
    from openai.types.responses.response_includable import ResponseIncludable
    from openai.types.responses.tool_param import ToolParam
    from openai.types.shared_params.reasoning import Reasoning

    resp_apis = ("openai.responses",)
    sections.append(
        Section(
            "openai.responses",
            "OpenAI Responses — top-level fields (`POST /v1/responses`)",
            typed_dict_fields(
                rcp.ResponseCreateParamsNonStreaming, rcp.ResponseCreateParamsStreaming
            ),
            _presence(resp_apis, lambda b, f: f in b),
            "Source: `openai/types/responses/response_create_params.py` (`ResponseCreateParamsBase` + `stream`).",
        )
    )
    sections.append(
        Section(
            "openai.responses.tools",
            "OpenAI Responses — `tools[].type` (fields of each)",
            [
                Field(t, ", ".join(sorted(k for k in _hints(m) if k != "type")))
                for t, m in tool_variants(ToolParam)
            ],
            _presence(resp_apis, lambda b, f: any(_tool_type(t) == f for t in _tools_of(b))),
            "Source: `openai/types/responses/tool_param.py` (`ToolParam` union).",
        )
    )
    rn = [Field(f"reasoning.{f.name}", f.type) for f in typed_dict_fields(Reasoning)]
    rn += [Field(f"include[]={v}", "") for v in literal_values(ResponseIncludable)]
    for parent in (
        "text",
        "stream_options",
        "context_management",
        "background_options",
        "prompt_cache_options",
        "image",
        "access_programs",
        "conversation",
        "prompt",
        "moderation",
    ):
        tp = _hints(rcp.ResponseCreateParamsBase)[parent]
        for member in union_members(tp):
            if hasattr(member, "__annotations__"):
                rn += [
                    Field(f"{parent}.{f.name}", f.type, f.required)
                    for f in typed_dict_fields(member)
                ]
    rn += [
        Field(f"service_tier={v}", "")
        for v in literal_values(_hints(rcp.ResponseCreateParamsBase)["service_tier"])
    ]

    def resp_nested(b: dict, f: str) -> bool:
        if f.startswith("include[]="):
            return f.split("=", 1)[1] in (b.get("include") or [])
        if f.startswith("service_tier="):
            return b.get("service_tier") == f.split("=", 1)[1]
        return _nested(b, f)

    sections.append(
        Section(
            "openai.responses.nested",
            "OpenAI Responses — nested billing-relevant fields and values",
            rn,
            _presence(resp_apis, resp_nested),
        )
    )

    # --- xAI chat completions ---
    try:
        from xai_sdk.proto.v6 import chat_pb2

        xf = _proto_fields(chat_pb2.GetCompletionsRequest.DESCRIPTOR)
        xt = []
        for oneof_field in chat_pb2.Tool.DESCRIPTOR.oneofs[0].fields:
            sub = oneof_field.message_type
            xt.append(Field(oneof_field.name, ", ".join(f.name for f in sub.fields)))
        xs = [
            Field(f"search_parameters.{f.name}", f.type)
            for f in _proto_fields(chat_pb2.SearchParameters.DESCRIPTOR)
        ]
        sections.append(
            Section(
                "xai.chat",
                "xAI chat completions — fields the official xAI SDK declares (`xai_sdk` proto "
                "`GetCompletionsRequest`; on REST `POST /v1/chat/completions` the same names in snake_case, "
                "alongside the OpenAI chat fields above, which is what OpenAI-SDK clients send to xAI)",
                xf,
                None,
                "Source: `xai_sdk/proto/v6/chat_pb2` descriptor. xAI's REST chat completions is OpenAI-compatible: "
                "agents reach it with the `openai` SDK (`base_url=https://api.x.ai/v1`), so every OpenAI chat field above "
                "can arrive too; those not listed here are ignored or rejected by xAI.",
            )
        )
        sections.append(
            Section(
                "xai.chat.tools", "xAI — server-side tool types (`Tool` oneof) and their fields", xt
            )
        )
        sections.append(
            Section("xai.chat.nested", "xAI — `search_parameters` (Live Search) fields", xs)
        )
    except ImportError:
        pass  # xai-sdk is optional here: without it FIELDS.md just lacks the xAI sections

    # --- Anthropic Messages ---
    from anthropic.types import message_count_tokens_params as mctp
    from anthropic.types import message_create_params as amcp
    from anthropic.types.beta import message_create_params as bmcp
    from anthropic.types.beta.beta_tool_union_param import BetaToolUnionParam
    from anthropic.types.tool_union_param import ToolUnionParam

    anth_apis = ("anthropic.messages",)
    ga = typed_dict_fields(amcp.MessageCreateParamsNonStreaming, amcp.MessageCreateParamsStreaming)
    sections.append(
        Section(
            "anthropic.messages",
            "Anthropic Messages — top-level fields (`POST /v1/messages`)",
            ga,
            _presence(anth_apis, lambda b, f: f in b),
            "Source: `anthropic/types/message_create_params.py`. This SDK no longer declares `temperature`, "
            "`top_k`, `top_p`; older clients and litellm/langchain still send them (see the extra rows).",
        )
    )
    ga_names = {f.name for f in ga}
    ga += [
        Field(
            name,
            "number",
            note="not declared by this SDK version; sent by litellm/langchain/older SDKs",
        )
        for name in ("temperature", "top_k", "top_p")
        if name not in ga_names
    ]
    beta = [
        f
        for f in typed_dict_fields(
            bmcp.MessageCreateParamsNonStreaming, bmcp.MessageCreateParamsStreaming
        )
        if f.name not in ga_names
    ]
    sections.append(
        Section(
            "anthropic.messages.beta",
            "Anthropic Messages — extra top-level fields only the beta params declare "
            "(`client.beta.messages.create`, same path plus `anthropic-beta`)",
            beta,
            _presence(anth_apis, lambda b, f: f in b),
            "Source: `anthropic/types/beta/message_create_params.py`. `betas` is sent as the `anthropic-beta` header, "
            "not in the body.",
        )
    )
    ga_tools = tool_variants(ToolUnionParam)
    ga_types = {t for t, _ in ga_tools}
    tools = [Field(t, ", ".join(sorted(k for k in _hints(m) if k != "type"))) for t, m in ga_tools]
    tools += [
        Field(t, ", ".join(sorted(k for k in _hints(m) if k != "type")), note="beta only")
        for t, m in tool_variants(BetaToolUnionParam)
        if t not in ga_types
    ]
    sections.append(
        Section(
            "anthropic.messages.tools",
            "Anthropic Messages — `tools[].type` (fields of each)",
            tools,
            _presence(
                anth_apis, lambda b, f: any(_tool_type(t, "custom") == f for t in _tools_of(b))
            ),
            "Source: `anthropic/types/tool_union_param.py` and `beta/beta_tool_union_param.py`. A custom tool has no "
            "`type` (or `custom`).",
        )
    )
    hints = _hints(amcp.MessageCreateParamsBase)
    an: list[Field] = []
    for parent in (
        "thinking",
        "tool_choice",
        "output_config",
        "cache_control",
        "metadata",
        "container",
        "diagnostics",
    ):
        members = [m for m in union_members(hints[parent]) if hasattr(m, "__annotations__")]
        for m in members:
            mh = _hints(m)
            tag = literal_values(mh.get("type")) if len(members) > 1 and "type" in mh else []
            prefix = f"{parent}[type={tag[0]}]" if tag else parent
            an += [
                Field(f"{prefix}.{f.name}", f.type, f.required)
                for f in typed_dict_fields(m)
                if f.name != "type"
            ]
            if tag and not [k for k in mh if k != "type"]:
                an.append(Field(prefix, ""))
    an += [Field("service_tier=" + str(v), "") for v in literal_values(hints["service_tier"])]
    an += [Field("speed=" + str(v), "") for v in literal_values(hints["speed"])]

    def anth_nested(b: dict, f: str) -> bool:
        if "=" in f and "[" not in f:
            k, v = f.split("=", 1)
            return b.get(k) == v
        if "[type=" in f:
            parent, rest = f.split("[type=", 1)
            tag, _, sub = rest.partition("]")
            obj = b.get(parent)
            return isinstance(obj, dict) and obj.get("type") == tag and (not sub or sub[1:] in obj)
        return _nested(b, f)

    sections.append(
        Section(
            "anthropic.messages.nested",
            "Anthropic Messages — nested billing-relevant fields",
            an,
            _presence(anth_apis, anth_nested),
        )
    )
    sections.append(
        Section(
            "anthropic.count_tokens",
            "Anthropic — `POST /v1/messages/count_tokens` top-level fields",
            typed_dict_fields(mctp.MessageCountTokensParams),
            _presence(("anthropic.count_tokens",), lambda b, f: f in b),
        )
    )

    # --- Gemini generateContent (Gemini Developer API wire format) ---
    from google.genai import types as gt

    gem_apis = ("gemini.generate_content", "gemini.stream_generate_content")
    top = _gemini_mldev_map("_GenerateContentParameters_to_mldev")
    cfg = _gemini_mldev_map("_GenerateContentConfig_to_mldev")
    req: list[Field] = []
    for src, target, path, note in top:
        if path and not path.startswith("_url"):
            req.append(Field(path, note=f"SDK `{src}`"))
    for src, target, path, note in cfg:
        if target == "parent_object" and path:
            req.append(Field(path, note=f"SDK `config.{src}`"))
    sections.append(
        Section(
            "gemini.request",
            "Gemini `generateContent` / `streamGenerateContent` — top-level request keys (camelCase)",
            req,
            _presence(gem_apis, lambda b, f: f in b),
            "Source: google-genai `models.py` converters `_GenerateContentParameters_to_mldev` and "
            "`_GenerateContentConfig_to_mldev` (keys written to the request root), read from their AST.",
        )
    )
    gen: list[Field] = []
    mapped = set()
    for src, target, path, note in cfg:
        mapped.add(src)
        if target == "to_object" and path:
            gen.append(Field(path, note=f"SDK `config.{src}`"))
    sections.append(
        Section(
            "gemini.generationConfig",
            "Gemini — `generationConfig.*` keys the SDK writes",
            gen,
            _presence(gem_apis, lambda b, f: f in (b.get("generationConfig") or {})),
        )
    )
    cfg_fields = gt.GenerateContentConfig.model_fields
    rest: list[Field] = []
    for src, target, path, note in cfg:
        if path is None:
            rest.append(Field(f"config.{src}", note="raises in Gemini API mode: " + note[:100]))
    for name in cfg_fields:
        if name not in mapped:
            rest.append(Field(f"config.{name}", note="client-side only (never on the wire)"))
    sections.append(
        Section(
            "gemini.sdk_only",
            "Gemini — `GenerateContentConfig` fields that never reach the Gemini API wire",
            rest,
            None,
            "Source: `google.genai.types.GenerateContentConfig.model_fields` minus the keys the mldev "
            "converter writes.",
        )
    )
    tool_map = _gemini_mldev_map("_Tool_to_mldev")
    tf = [
        Field(
            path or f"({src})", note=("SDK `" + src + "`") if path else "raises in Gemini API mode"
        )
        for src, _t, path, _n in tool_map
    ]
    sections.append(
        Section(
            "gemini.tools",
            "Gemini — `tools[]` object keys",
            tf,
            _presence(gem_apis, lambda b, f: any(f in t for t in _tools_of(b))),
            "Source: `_Tool_to_mldev`. Sub-objects are passed through with the SDK's own (snake_case) field names.",
        )
    )
    gnest: list[Field] = []
    # Passed through unconverted: the wire keys are the SDK's snake_case field names.
    for fname in gt.ThinkingConfig.model_fields:
        gnest.append(
            Field(f"generationConfig.thinkingConfig.{fname}", note="passed through (snake_case)")
        )
    for fname in gt.FunctionDeclaration.model_fields:
        gnest.append(
            Field(f"tools[].functionDeclarations[].{fname}", note="passed through (snake_case)")
        )
    # Converted by their own mldev converters.
    for prefix, conv in (
        ("generationConfig.imageConfig", "_ImageConfig_to_mldev"),
        ("tools[].googleSearch", "_GoogleSearch_to_mldev"),
    ):
        for src, _t, path, note in _gemini_mldev_map(conv):
            gnest.append(
                Field(
                    f"{prefix}.{path}" if path else f"{prefix}.({src})",
                    note=f"SDK `{src}`" if path else "raises in Gemini API mode",
                )
            )

    def gem_nested(b: dict, f: str) -> bool:
        if f.startswith("tools[]."):
            _, key, *rest_ = f.split(".")
            key = key.replace("[]", "")
            for t in _tools_of(b):
                obj = t.get(key)
                objs = obj if isinstance(obj, list) else [obj]
                if any(isinstance(o, dict) and rest_[0] in o for o in objs):
                    return True
            return False
        return _nested(b, f)

    sections.append(
        Section(
            "gemini.nested",
            "Gemini — nested keys passed through as SDK field names (snake_case on the wire)",
            gnest,
            _presence(gem_apis, gem_nested),
        )
    )
    ct = _gemini_mldev_map("_CountTokensParameters_to_mldev") + _gemini_mldev_map(
        "_CountTokensConfig_to_mldev"
    )
    sections.append(
        Section(
            "gemini.count_tokens",
            "Gemini `countTokens` — request keys",
            [
                Field(
                    p or f"config.{s}",
                    note=("SDK `" + s + "`") if p else "raises in Gemini API mode",
                )
                for s, _t, p, _n in ct
                if not (p or "").startswith("_url")
            ],
            _presence(("gemini.count_tokens",), lambda b, f: f in b),
        )
    )
    return sections


# ---------------------------------------------------------------------------------------------
# Proposed classification (reviewed by hand; FIELDS.md flags any SDK field missing here)
# ---------------------------------------------------------------------------------------------
# "free: why" = cannot change the bill; "bounded: how" = changes the bill and how SpendGuard bounds
# it; "refused: why" = cannot be bounded (400 unless CAP_FORWARD_UNPRICED_FIELDS names it).
# "(verify)" = inferred from the SDK docstring only; confirm against the provider's docs first.

_INPUT = "bounded: counts as input tokens"
_FREE_SAMPLING = "free: sampling control, output stays under the output cap"
_OUT_CAP = "bounded: the output cap; SpendGuard prices it (and lowers it to fit the budget)"
_MODERATION = (
    "refused: runs a moderation model on input and output; no per-request price published "
    "(verify, then price or mark free)"
)
_SERVICE_TIER_OPENAI = (
    "bounded: priced by service-tier variant (default / flex ≈0.5× / priority ≈2×; `fast` "
    "is billed as priority; `scale` and `ultrafast` refused unless priced); absent or `auto` "
    "= the project's default tier, which may be priority: SpendGuard sends the tier it priced"
)
_PREV_RESPONSE = (
    "bounded: the stored context of that response is re-billed as input; bounded only for ids "
    "whose input+output tokens SpendGuard itself relayed, refused for unknown ids"
)
_CACHE_OPTS_OPENAI = (
    "bounded: on gpt-5.6+ cache writes are billed (at the cache-write rate); price all input at "
    "max(input, cache-write) rate; a `ttl` without a price is refused"
)

CLASSIFY: dict[str, dict[str, str]] = {
    "openai.chat": {
        "messages": _INPUT + " (text exact with tiktoken; images by the model's tile/patch rule; "
        "`input_audio` parts refused unless the model has an audio-input price)",
        "model": "bounded: selects the price row; an unpriced model is refused",
        "stream": "free: same tokens; SpendGuard must add `stream_options.include_usage` upstream itself",
        "audio": "bounded: audio output tokens at the model's audio-output rate (with modalities=audio); "
        "refused where no audio price exists",
        "frequency_penalty": _FREE_SAMPLING,
        "presence_penalty": _FREE_SAMPLING,
        "temperature": _FREE_SAMPLING,
        "top_p": _FREE_SAMPLING,
        "seed": _FREE_SAMPLING,
        "stop": _FREE_SAMPLING,
        "logit_bias": _FREE_SAMPLING,
        "function_call": "free: legacy tool_choice",
        "functions": _INPUT + " (legacy tool definitions)",
        "logprobs": "free: response detail",
        "top_logprobs": "free: response detail",
        "max_completion_tokens": _OUT_CAP + " (reasoning tokens included)",
        "max_tokens": _OUT_CAP + " (deprecated alias of max_completion_tokens)",
        "metadata": "free: stored with the completion",
        "store": "free: stored completions are not billed",
        "user": "free: identifier",
        "safety_identifier": "free: identifier",
        "modalities": "bounded: `audio` switches output to audio-token pricing; refused where unpriced",
        "moderation": _MODERATION,
        "n": "bounded: multiplies the output: WCEC = n × output cap",
        "parallel_tool_calls": "free: tool-call shape only",
        "prediction": "bounded: rejected prediction tokens are billed as output; add the prediction's token "
        "count to the output bound",
        "prompt_cache_key": "free: routing hint for the cache",
        "prompt_cache_options": _CACHE_OPTS_OPENAI,
        "prompt_cache_retention": "bounded: deprecated alias of prompt_cache_options.ttl; `24h` has the same "
        "token prices (extended retention), cache-write rule as prompt_cache_options",
        "reasoning_effort": "free: reasoning tokens are output tokens, already inside the output cap "
        "(the default cap must be the model's max output)",
        "response_format": "bounded: a json_schema counts as input tokens",
        "service_tier": _SERVICE_TIER_OPENAI,
        "stream_options": "free: usage reporting; SpendGuard forces include_usage=true upstream",
        "tool_choice": "free: selection only",
        "tools": "bounded: definitions count as input tokens",
        "verbosity": "free: output stays under the output cap",
        "web_search_options": "bounded: search models run one web search per request: the per-call fee "
        "(by search_context_size, default medium) from the price table, plus search "
        "content tokens as input; refused for a model without a fee entry",
    },
    "openai.chat.tools": {
        "function": "bounded: definition counts as input tokens",
        "custom": "bounded: definition (and grammar) counts as input tokens",
    },
    "openai.chat.nested": {
        "response_format.type=text": "free",
        "response_format.type=json_object": "free",
        "response_format.type=json_schema": "bounded: schema counts as input tokens",
        "web_search_options.search_context_size": "bounded: selects the per-call fee tier (low/medium/high)",
        "web_search_options.user_location": "free",
        "stream_options.include_usage": "free (SpendGuard sets it true upstream to count the stream)",
        "stream_options.include_obfuscation": "free: padding on stream events",
        "prediction.content": "bounded: its token count is added to the output bound",
        "prediction.type": "free",
        "audio.format": "free",
        "audio.voice": "free",
        "moderation.model": _MODERATION,
        "moderation.policy": _MODERATION,
        "prompt_cache_options.mode": "bounded: explicit breakpoints write the cache: cache-write rate",
        "prompt_cache_options.ttl": "bounded: only `30m` exists (write rate); any other value refused",
    },
    "openai.embeddings": {
        "input": _INPUT + " (exact with tiktoken)",
        "model": "bounded: selects the price row",
        "dimensions": "free: output size only",
        "encoding_format": "free: `base64` is the openai SDK default",
        "user": "free: identifier",
    },
    "openai.responses": {
        "input": _INPUT
        + " (items; images/files by the model's rule; encrypted reasoning items by byte length)",
        "instructions": _INPUT,
        "model": "bounded: selects the price row; an unpriced model is refused",
        "stream": "free: same tokens; usage arrives in response.completed",
        "access_programs": "refused: access-program selection with undocumented price effect (verify)",
        "background": "refused: the POST returns before the bill is known (usage only via GET "
        "/v1/responses/{id}); bounded once SpendGuard settles background responses on retrieval",
        "background_options": "bounded: `soonest` = standard price; `2h`/`8h` are discounts, so the standard "
        "price bounds them (needs background, see above)",
        "context_management": "refused: server-side compaction runs extra model work not covered by "
        "max_output_tokens (verify how it is billed)",
        "conversation": "refused: prepends stored items of unknown size to the input",
        "image": "free: image context compression only lowers image tokens (bound assumes none)",
        "include": "free: adds data to the response only (e.g. reasoning.encrypted_content, logprobs)",
        "max_output_tokens": _OUT_CAP + " (reasoning tokens included)",
        "max_tool_calls": "bounded: caps built-in tool calls; SpendGuard sends min(client value, what the "
        "budget covers) and prices calls × fee",
        "metadata": "free: stored with the response",
        "moderation": _MODERATION,
        "parallel_tool_calls": "free: tool-call shape only",
        "previous_response_id": _PREV_RESPONSE,
        "prompt": "refused: a stored prompt template of unknown size (it can also set model and tools)",
        "prompt_cache_key": "free: routing hint for the cache",
        "prompt_cache_options": _CACHE_OPTS_OPENAI + "; `prewarm` bills input with no output",
        "prompt_cache_retention": "bounded: deprecated alias; same rule as prompt_cache_options",
        "reasoning": "bounded: effort/summary stay inside max_output_tokens; `mode: pro` refused unless priced",
        "safety_identifier": "free: identifier",
        "user": "free: identifier",
        "service_tier": _SERVICE_TIER_OPENAI,
        "store": "free: stored responses are not billed (default true)",
        "stream_options": "free: obfuscation padding only",
        "temperature": _FREE_SAMPLING,
        "top_p": _FREE_SAMPLING,
        "top_logprobs": "free: response detail",
        "text": "bounded: a json_schema format counts as input; verbosity is free",
        "tool_choice": "free: selection only",
        "tools": "bounded: per tool type, below",
        "truncation": "free: `auto` only drops input; the bound on the full input stays an upper bound",
    },
    "openai.responses.tools": {
        "function": "bounded: definition counts as input tokens",
        "custom": "bounded: definition counts as input tokens",
        "namespace": "bounded: the wrapped definitions count as input tokens",
        "file_search": "bounded: per-call fee × max_tool_calls, retrieved chunks as input (≤ max_num_results "
        "chunks); SpendGuard sends max_tool_calls and max_num_results",
        "web_search": "bounded: per-call fee × max_tool_calls plus search content tokens as input; SpendGuard "
        "sends max_tool_calls; refused for a model without a fee entry",
        "web_search_2025_08_26": "bounded: as web_search",
        "web_search_preview": "bounded: per-call fee by search_context_size × max_tool_calls (older fee table)",
        "web_search_preview_2025_03_11": "bounded: as web_search_preview",
        "computer": "bounded: client-executed; definition and screenshots count as input",
        "computer_use_preview": "bounded: client-executed; definition and screenshots count as input "
        "(computer-use-preview model price)",
        "local_shell": "bounded: client-executed; outputs come back as input",
        "apply_patch": "bounded: client-executed; outputs come back as input",
        "shell": "bounded when `environment` is local (client-executed); a hosted container environment is "
        "refused unless its container fee is priced (verify)",
        "code_interpreter": "bounded: container-session fee (by memory limit) from the price table for an "
        "`auto` container, outputs as tokens; refused where the fee is unpriced",
        "image_generation": "bounded: per-image price by model/quality/size (+ partial images) × "
        "max_tool_calls; refused for an unpriced size/quality",
        "mcp": "refused: remote MCP tool results enter the context with no size cap",
        "programmatic_tool_calling": "refused: model-written code calls tools in a loop; no fee or token "
        "bound published (verify)",
        "tool_search": "refused when executed server-side (fee undocumented); client execution counts as "
        "input (verify)",
    },
    "openai.responses.nested": {
        "reasoning.effort": "free: reasoning tokens stay inside max_output_tokens",
        "reasoning.summary": "free: summary tokens are output, inside the cap",
        "reasoning.generate_summary": "free: deprecated alias of summary",
        "reasoning.context": "free: re-rendered reasoning is part of the input items already counted",
        "reasoning.mode": "bounded: `standard` as usual; `pro` refused unless the price table has it",
        "include[]=*": "free: adds data to the response only",
        "text.format": "bounded: a json_schema counts as input tokens",
        "text.verbosity": "free",
        "stream_options.include_obfuscation": "free",
        "background_options.completion_window": "bounded: `2h`/`8h` are discounts (standard price bounds)",
        "background_options.continuation_id": "free: scheduling hint",
        "prompt_cache_options.comparison_response_id": "free: cache diagnostics",
        "prompt_cache_options.mode": "bounded: explicit breakpoints write the cache: cache-write rate",
        "prompt_cache_options.prewarm": "bounded: bills the input (cache write), no output",
        "prompt_cache_options.ttl": "bounded: `30m` at the write rate; `12h` refused unless priced",
        "image.context_compression": "free: only lowers image tokens",
        "access_programs.cyber": "refused: see access_programs (verify)",
        "conversation.id": "refused: see conversation",
        "prompt.id": "refused: see prompt",
        "prompt.variables": "refused: see prompt",
        "prompt.version": "refused: see prompt",
        "moderation.model": _MODERATION,
        "moderation.policy": _MODERATION,
        "service_tier=auto": "bounded: the project default (may be priority): SpendGuard sends the tier it priced",
        "service_tier=default": "bounded: standard price",
        "service_tier=flex": "bounded: flex price (≈50% of standard)",
        "service_tier=priority": "bounded: priority price (≈2× standard)",
        "service_tier=fast": "bounded: billed as priority (the response reports priority)",
        "service_tier=scale": "refused: Scale Tier is prepaid capacity, not a per-token price",
        "service_tier=ultrafast": "refused unless priced (access-controlled tier, several × standard)",
    },
    "xai.chat": {
        "messages": _INPUT,
        "model": "bounded: selects the price row",
        "user": "free: identifier",
        "safety_identifier": "free: identifier",
        "n": "bounded: multiplies the output: WCEC = n × output cap",
        "max_tokens": _OUT_CAP,
        "seed": _FREE_SAMPLING,
        "stop": _FREE_SAMPLING,
        "temperature": _FREE_SAMPLING,
        "top_p": _FREE_SAMPLING,
        "frequency_penalty": _FREE_SAMPLING,
        "presence_penalty": _FREE_SAMPLING,
        "logprobs": "free: response detail",
        "top_logprobs": "free: response detail",
        "tools": "bounded: per tool type, below",
        "tool_choice": "free: selection only",
        "parallel_tool_calls": "free: tool-call shape only",
        "response_format": "bounded: a json_schema counts as input tokens",
        "reasoning_effort": "free: reasoning tokens are billed as output, inside the output cap",
        "search_parameters": "refused: Live Search ($25 per 1,000 sources, up to max_search_results=20 "
        "by default) is retired: xAI answers 410; agents use server-side tools instead",
        "previous_response_id": _PREV_RESPONSE,
        "store_messages": "free: storage is not billed",
        "use_encrypted_content": "free: response detail",
        "max_turns": "bounded: caps server-side agentic turns; SpendGuard sends it to bound tool calls",
        "include": "free: response detail",
        "agent_count": "refused: multi-agent runs multiply tokens by an undocumented factor (verify)",
        "service_tier": "bounded: priced by tier variant; refused where unpriced",
        "guidelines": "bounded: counts as input tokens (verify)",
    },
    "xai.chat.tools": {
        "function": "bounded: definition counts as input tokens",
        "web_search": "bounded: per successful call fee (≈$5 per 1,000) × max_turns cap, results as input",
        "x_search": "bounded: per successful call fee × max_turns cap, results as input",
        "code_execution": "bounded: per successful call fee × max_turns cap",
        "collections_search": "bounded: per call fee × max_turns, ≤ limit chunks as input",
        "attachment_search": "bounded: per call fee × max_turns, ≤ limit chunks as input (verify fee)",
        "image_generation": "bounded: per-image price; refused where unpriced",
        "mcp": "refused: remote MCP tool results enter the context with no size cap",
    },
    "xai.chat.nested": {
        "search_parameters.mode": "refused: see search_parameters (`off` would be free)",
        "search_parameters.sources": "refused: see search_parameters",
        "search_parameters.from_date": "free",
        "search_parameters.to_date": "free",
        "search_parameters.return_citations": "free",
        "search_parameters.max_search_results": "bounded: caps the source count (× $0.025) if Live Search "
        "ever returns",
    },
    "anthropic.messages": {
        "max_tokens": _OUT_CAP
        + " (thinking included); langchain-anthropic sends the model's maximum "
        "(128000) by default",
        "messages": _INPUT
        + " (≤1 token per UTF-8 byte bound, or count_tokens; images by Anthropic's rule; "
        "PDFs refused unless bounded)",
        "model": "bounded: selects the price row; an unpriced model is refused",
        "stream": "free: same tokens",
        "cache_control": "bounded: automatic breakpoint: the cached prefix is billed at the cache-write rate "
        "(1.25× for 5m, 2× for ttl 1h)",
        "container": "bounded with a priced code-execution tool (reuses its container); refused otherwise",
        "diagnostics": "free: cache-miss diagnostics",
        "inference_geo": "bounded: `us` = 1.1× on Opus 4.6 / Sonnet 4.6 and later (overrides file), `global` "
        "standard; absent = the workspace default, which may be `us`: SpendGuard sends what it "
        "priced",
        "metadata": "free: identifier",
        "output_config": "bounded: `effort` stays inside max_tokens (free); a `format` schema counts as input",
        "service_tier": "bounded: `standard_only` = standard price; `auto` (the default) may use Priority "
        "Tier capacity: SpendGuard sends `standard_only` unless a priority price is configured",
        "speed": "bounded: `fast` priced by the fast-mode multiplier (premium, e.g. 6× on Opus 4.6); refused "
        "for a model without a fast price; `standard` free",
        "stop_sequences": _FREE_SAMPLING,
        "system": _INPUT + " (cache_control blocks at the cache-write rate)",
        "thinking": "bounded: thinking tokens are output inside max_tokens (budget_tokens < max_tokens)",
        "tool_choice": "free: selection only",
        "tools": "bounded: per tool type, below",
        "user_profile_id": "free: sent as the `anthropic-user-profile-id` header (attribution)",
        "workspace_id": "free: sent as the `anthropic-workspace-id` header; its defaults (inference geo, "
        "tier) are overridden by the values SpendGuard sends",
        "temperature": _FREE_SAMPLING
        + " (no longer declared by the anthropic SDK, still sent by others)",
        "top_k": _FREE_SAMPLING
        + " (no longer declared by the anthropic SDK, still sent by others)",
        "top_p": _FREE_SAMPLING
        + " (no longer declared by the anthropic SDK, still sent by others)",
    },
    "anthropic.messages.beta": {
        "betas": "n/a: sent as the `anthropic-beta` header; see the beta table below",
        "billing_policy": "free: `bill_to: user_profile` moves the bill away from the organization",
        "compaction": "refused: a compaction request summarizes server-side; billing of the pass unverified "
        "(verify; then bounded as input + max_tokens)",
        "context_management": "free for `clear_*` edits (only remove input); compaction edits refused (verify)",
        "fallback_credit_token": "free: only lowers cache-creation cost on a retry",
        "fallbacks": "bounded: price at the most expensive listed model; `default` refused (model unknown)",
        "mcp_servers": "refused: remote MCP tool results enter the context with no size cap",
        "thread": "refused: server-held conversation state of unknown size is added to the input",
    },
    "anthropic.messages.tools": {
        "custom": "bounded: definition counts as input tokens",
        "web_search_20250305": "bounded: $10 per 1,000 searches × max_uses, results as input; SpendGuard "
        "sends max_uses (≤ what the budget covers)",
        "web_search_20260209": "bounded: as web_search_20250305 (max_uses)",
        "web_search_20260318": "bounded: as web_search_20250305 (max_uses)",
        "web_fetch_20250910": "bounded: no per-call fee; fetched content as input: SpendGuard sends max_uses "
        "and max_content_tokens",
        "web_fetch_20260209": "bounded: as web_fetch_20250910",
        "web_fetch_20260309": "bounded: as web_fetch_20250910",
        "web_fetch_20260318": "bounded: as web_fetch_20250910",
        "code_execution_20250522": "refused unless its fee is priced: container hours (5-minute minimum); "
        "then bounded by the request's wall-clock cap × hourly rate",
        "code_execution_20250825": "refused unless priced: as code_execution_20250522",
        "code_execution_20260120": "refused unless priced: as code_execution_20250522",
        "code_execution_20260521": "refused unless priced: as code_execution_20250522",
        "bash_20250124": "bounded: client-executed; fixed definition overhead counts as input",
        "bash_20241022": "bounded: client-executed; fixed definition overhead counts as input",
        "text_editor_20250124": "bounded: client-executed; definition counts as input",
        "text_editor_20250429": "bounded: client-executed; definition counts as input",
        "text_editor_20250728": "bounded: client-executed; definition counts as input",
        "text_editor_20241022": "bounded: client-executed; definition counts as input",
        "computer_20241022": "bounded: client-executed; definition and screenshots count as input",
        "computer_20250124": "bounded: client-executed; definition and screenshots count as input",
        "computer_20251124": "bounded: client-executed; definition and screenshots count as input",
        "memory_20250818": "bounded: client-executed; definition counts as input",
        "tool_search_tool_bm25_20251119": "bounded: loaded (deferred) definitions count as input",
        "tool_search_tool_bm25": "bounded: loaded (deferred) definitions count as input",
        "tool_search_tool_regex_20251119": "bounded: loaded (deferred) definitions count as input",
        "tool_search_tool_regex": "bounded: loaded (deferred) definitions count as input",
        "browser_toolset_20260801": "refused: server-side browser toolset, fee undocumented (verify)",
        "computer_toolset_20260801": "refused: toolset configuration with undocumented fee (verify)",
        "advisor_20260301": "bounded: each use calls `model` with ≤ max_tokens output: price max_uses × that "
        "model's (context + max_tokens); refused without max_uses or an unpriced model",
        "mcp_toolset": "refused: see mcp_servers",
    },
    "anthropic.messages.nested": {
        "thinking[type=enabled].budget_tokens": "bounded: inside max_tokens",
        "thinking[type=enabled].display": "free",
        "thinking[type=disabled]": "free",
        "thinking[type=between_tools]": "free: inside max_tokens",
        "thinking[type=adaptive].display": "free",
        "tool_choice[type=auto].disable_parallel_tool_use": "free",
        "tool_choice[type=any].disable_parallel_tool_use": "free",
        "tool_choice[type=tool].disable_parallel_tool_use": "free",
        "tool_choice[type=tool].name": "free",
        "tool_choice[type=none]": "free",
        "output_config.effort": "free: inside max_tokens",
        "output_config.format": "bounded: schema counts as input tokens",
        "cache_control.ttl": "bounded: `5m` write 1.25×, `1h` write 2× the input rate",
        "metadata.user_id": "free",
        "container.id": "bounded with a priced code-execution tool; refused otherwise",
        "container.skills": "refused: skills load content of unknown size and need code execution",
        "diagnostics.previous_message_id": "free",
        "service_tier=auto": "bounded: may be served at Priority Tier: SpendGuard sends standard_only "
        "unless a priority price is configured",
        "service_tier=standard_only": "bounded: standard price",
        "speed=fast": "bounded: fast-mode multiplier price; refused where unpriced",
        "speed=standard": "free",
    },
    "anthropic.count_tokens": {"*": "free: count_tokens is not billed"},
    "gemini.request": {
        "contents": _INPUT
        + " (text ≤1 token per UTF-8 byte, digits 1 each; media by modality rule; "
        "audio/video refused without a bound; or countTokens)",
        "systemInstruction": _INPUT,
        "generationConfig": "bounded: per key, below",
        "safetySettings": "free: filtering only",
        "tools": "bounded: per tool key, below",
        "toolConfig": "free: selection only",
        "labels": "free: billing labels",
        "cachedContent": "bounded: cached tokens billed at the cache rate: size from GET "
        "cachedContents/{name} usageMetadata; refused when unknown",
        "serviceTier": "bounded: flex ≈0.5×, priority +75–100% (downgraded to standard when over the "
        "priority limit, so the priority price bounds it); standard default",
        "continuationToken": "refused: continues server-held generation state of unknown size (verify)",
        "store": "free: storage flag",
    },
    "gemini.generationConfig": {
        "temperature": _FREE_SAMPLING,
        "topP": _FREE_SAMPLING,
        "topK": _FREE_SAMPLING,
        "seed": _FREE_SAMPLING,
        "stopSequences": _FREE_SAMPLING,
        "presencePenalty": _FREE_SAMPLING,
        "frequencyPenalty": _FREE_SAMPLING,
        "responseLogprobs": "free: response detail",
        "logprobs": "free: response detail",
        "responseMimeType": "free: output format",
        "candidateCount": "bounded: multiplies the output: WCEC = candidateCount × output cap",
        "maxOutputTokens": _OUT_CAP
        + "; thinking tokens are billed as output too (bound = maxOutputTokens "
        "+ thinking budget where thoughts are not inside it; verify per model)",
        "responseSchema": "bounded: schema counts as input tokens",
        "responseJsonSchema": "bounded: schema counts as input tokens",
        "responseModalities": "bounded: IMAGE/AUDIO output at the modality's price; refused where unpriced",
        "mediaResolution": "bounded: selects tokens per image / video frame; absent = bound at the highest",
        "speechConfig": "bounded: audio output at the audio rate; refused where unpriced",
        "thinkingConfig": "bounded: thinking tokens are output: the bound includes thinking_budget "
        "(-1 dynamic or thinking_level = the model's maximum)",
        "imageConfig": "bounded: image output priced per image size; refused for an unpriced size",
        "enableEnhancedCivicAnswers": "free (verify)",
        "audioTranscriptionConfig": "refused: transcription output billing undocumented (verify)",
    },
    "gemini.sdk_only": {"*": "n/a: never on the wire in Gemini API mode"},
    "gemini.tools": {
        "functionDeclarations": "bounded: declarations count as input tokens",
        "googleSearch": "bounded where priced per grounded prompt (one fee per request); Gemini 3 prices "
        "per search query with no request-side cap: refused unless an operator prices a maximum",
        "googleSearchRetrieval": "bounded: legacy grounding, one fee per grounded prompt",
        "googleMaps": "bounded: one grounding fee per prompt from the price table; refused where unpriced",
        "codeExecution": "bounded: no tool fee; intermediate code/results re-billed as tokens up to the "
        "documented iteration limit; refused where that limit is not documented (verify)",
        "urlContext": "refused: fetched pages count as input with no request-side cap (up to 20 URLs)",
        "fileSearch": "bounded: retrieved chunks count as input (cap with top_k) (verify)",
        "computerUse": "bounded: client-executed; screenshots come back as input",
        "mcpServers": "refused: remote MCP tool results enter the context with no size cap",
        "(retrieval)": "n/a: raises in Gemini API mode",
        "(enterprise_web_search)": "n/a: raises in Gemini API mode",
        "(parallel_ai_search)": "n/a: raises in Gemini API mode",
        "(exa_ai_search)": "n/a: raises in Gemini API mode",
    },
    "gemini.nested": {
        "generationConfig.thinkingConfig.include_thoughts": "free: returns thought summaries",
        "generationConfig.thinkingConfig.thinking_budget": "bounded: part of the output bound",
        "generationConfig.thinkingConfig.thinking_level": "bounded: bound at the model's maximum thinking",
        "generationConfig.imageConfig.imageSize": "bounded: selects the per-image price",
        "generationConfig.imageConfig.aspectRatio": "free",
        "tools[].googleSearch.timeRangeFilter": "free",
        "tools[].googleSearch.searchTypes": "bounded: an image search type may carry its own fee (verify)",
        "tools[].functionDeclarations[].name": _INPUT,
        "tools[].functionDeclarations[].description": _INPUT,
        "tools[].functionDeclarations[].parameters": _INPUT,
        "tools[].functionDeclarations[].parameters_json_schema": _INPUT,
        "tools[].functionDeclarations[].response": _INPUT,
        "tools[].functionDeclarations[].response_json_schema": _INPUT,
        "tools[].functionDeclarations[].behavior": "free: blocking vs non-blocking call",
    },
    "gemini.count_tokens": {"*": "free: countTokens is not billed"},
}

_BETA_FREE = "free: no price effect"
BETA_CLASSIFY: dict[str, str] = {
    "computer-use-2024-10-22": "bounded: enables computer tools (fixed definition overhead as input)",
    "computer-use-2025-01-24": "bounded: as computer-use-2024-10-22",
    "computer-use-2025-11-24": "bounded: as computer-use-2024-10-22",
    "output-128k-2025-02-19": "bounded: allows max_tokens up to 128k; the bound is the max_tokens sent",
    "output-300k-2026-03-24": "bounded: allows max_tokens up to 300k; the bound is the max_tokens sent",
    "mcp-client-2025-04-04": "refused: enables mcp_servers",
    "mcp-client-2025-11-20": "refused: enables mcp_servers",
    "mcp-client-2026-09-15": "refused: enables mcp_servers",
    "mcp-tunnels-2026-06-22": "refused: MCP",
    "dev-full-thinking-2025-05-14": "free: returns full thinking, same tokens",
    "interleaved-thinking-2025-05-14": "bounded: budget_tokens may exceed max_tokens across a turn: bound "
    "output by max(max_tokens, budget_tokens)",
    "code-execution-2025-05-22": "refused unless the code-execution fee is priced",
    "context-1m-2025-08-07": "bounded: >200k input tokens billed at the long-context tier (e.g. 2× input, "
    "1.5× output on Sonnet 4/4.5); refused for a model without that tier",
    "context-management-2025-06-27": "free for clear_* edits (they only remove input)",
    "model-context-window-exceeded-2025-08-26": "free: stop-reason behaviour",
    "fast-mode-2026-02-01": "bounded: with speed=fast, priced by the fast-mode multiplier",
    "user-profiles-2026-03-24": _BETA_FREE + " (attribution)",
    "user-profiles-2026-08-18": _BETA_FREE + " (attribution)",
    "user-profiles-2026-09-04": _BETA_FREE + " (attribution)",
    "user-profiles-billing-2026-10-01": "free: can only move the bill away from the organization",
    "advisor-tool-2026-03-01": "bounded: see advisor_20260301 (max_uses × advisor model price)",
    "managed-agents-2026-04-01": "refused: Managed Agents API, not a Messages request",
    "dreaming-2026-04-21": "refused: undocumented background work (verify)",
    "thinking-token-count-2026-05-13": "free: reporting",
    "server-side-fallback-2026-06-01": "bounded: see `fallbacks` (most expensive listed model)",
    "server-side-fallback-2026-07-01": "bounded: see `fallbacks` (most expensive listed model)",
    "fallback-credit-2026-06-01": "free: only lowers cache-creation cost",
    "fallback-credit-2026-07-01": "free: only lowers cache-creation cost",
    "agent-memory-2026-07-22": "refused: server-side memory adds input of unknown size (verify)",
    "mid-conversation-tool-changes-2026-07-01": _BETA_FREE,
    "compact-2026-01-12": "refused: see `compaction`",
    "compact-2026-09-04": "refused: see `compaction`",
    "structured-outputs-2025-11-13": "free: the schema is counted as input anyway",
    "task-budgets-2026-03-13": "free: the model paces itself; the bound is still max_tokens (verify)",
    "thinking-display-updates-2026-08-18": _BETA_FREE,
    "mid-conversation-output-config-2026-07-01": _BETA_FREE,
    "thinking-binding-controls-2026-08-01": _BETA_FREE,
    "mid-conversation-system-clear-at-2026-08-21": _BETA_FREE,
    "inline-tools-2026-09-15": "bounded: inline tool definitions count as input (verify)",
    "ce-plugins-2026-09-01": "refused: code-execution plugins (unpriced)",
    "message-threads-2026-08-12": "refused: see `thread`",
    "message-batches-2024-09-24": "free: batches endpoint, not proxied",
    "prompt-caching-2024-07-31": "bounded: cache writes at the cache-write rate",
    "pdfs-2024-09-25": "bounded: PDF pages count as input (text + page image); refused without a bound",
    "token-counting-2024-11-01": "free: count_tokens",
    "token-efficient-tools-2025-02-19": "free: fewer output tokens, inside the cap",
    "files-api-2025-04-14": "refused: `file_id` content of unknown size unless SpendGuard knows its tokens",
    "extended-cache-ttl-2025-04-11": "bounded: ttl 1h cache writes at 2×",
    "skills-2025-10-02": "refused: skills need code execution and load content of unknown size",
    "cache-diagnosis-2026-04-07": "free: diagnostics",
    "spend-limit-reads-2026-09-26": "free: admin/other endpoint",
    "telemetry-destinations-2026-08-11": "free: admin",
    "webhooks-2026-10-07": "free: admin/other endpoint",
    "admin-user-sign-out-2026-10-08": "free: admin",
    "analytics-usage-cost-2026-08-24": "free: admin",
    "experimental-claude-tag-2026-10-21": "refused: undocumented",
    "ce-user-management-2026-07-13": "free: admin",
    "ce-claude-code-managed-settings-2026-10-06": "free: admin",
    "efs-2026-10-01": "refused: undocumented (verify)",
    "google-managed-data-controls-2026-09-01": "free: admin",
}


FINDINGS = """\
## Findings from the recordings (hand-written; re-check after a version bump)

- **Clients send fields nobody typed.** openai-agents sends `include: []` on every Responses call;
  langchain-openai sends `stream: false` on every non-streamed call; the openai SDK's `.parse()`
  helpers send `stream: false`; `embeddings.create` sends `encoding_format: "base64"` unless told
  otherwise; google-genai sends `generationConfig: {}` from `chats` and from any call with a config.
  All free, and must be accepted.
- **Most streaming clients do not ask for usage.** Only a hand-written `stream_options={"include_usage":
  true}` sends it: langchain-openai (with a custom `base_url`), openai-agents (chat model), the openai
  `chat.completions.stream()` helper and litellm all stream chat completions *without*
  `stream_options`. SpendGuard must add `stream_options.include_usage=true` upstream itself (and strip
  the usage chunk if the client did not ask for it), never refuse its absence.
- **google-genai's default API version is `v1`, not `v1beta`**: `POST /v1/models/{model}:generateContent`
  (`:streamGenerateContent?alt=sse`, `:countTokens`); `http_options={"api_version": "v1beta"}` gives
  `/v1beta/...`. litellm's `gemini/` provider with an `api_base` calls `{api_base}/models/{model}:...`
  with no version segment at all. The Gemini adapter must route all three.
- **google-genai sends snake_case inside camelCase objects**: `generationConfig.thinkingConfig` carries
  `thinking_budget` / `include_thoughts`, `functionDeclarations[]` carry `parameters_json_schema` /
  `response_json_schema`, `responseSchema` carries `property_ordering`. A "camelCase only" rule, or a
  rule treating any snake_case key as a duplicate, would break the official client; only a key
  present in *both* spellings in the same object is a conflict.
- **anthropic 2.x authenticates with `Authorization: Bearer <api key>`**, not `x-api-key` (litellm
  still sends `x-api-key`). The proxy must accept the agent key from either header. The SDK also maps
  `user_profile_id` / `workspace_id` to the headers `anthropic-user-profile-id` /
  `anthropic-workspace-id`, and `betas` to `anthropic-beta`; for `cache_control.ttl: "1h"` it sends no
  `anthropic-beta` header (no recording carries one).
- **anthropic 2.x no longer declares `temperature`, `top_k`, `top_p`**, yet litellm, langchain and older
  SDKs send them (recorded via `extra_body`): classify as free, not unknown.
- **langchain-anthropic sends `max_tokens: 128000`** (the model profile's maximum) when the developer
  sets none: a strict WCEC hold on that is large; SpendGuard may lower it to what the budget covers.
- **No client sends `service_tier`, `inference_geo` or `speed` unprompted**: the account/workspace
  default applies, which is why SpendGuard must send the value it priced.
"""


def _cls(text: str | None) -> str:
    if text is None:
        return "**UNCLASSIFIED**"
    for word in ("free", "bounded", "refused", "n/a"):
        if text.startswith(word) and text[len(word) : len(word) + 1] in ("", ":", " ", ","):
            return f"**{word}**{text[len(word) :]}"
    return text


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _declared_top_level(sections: list[Section]) -> dict[str, set[str]]:
    by_key = {
        s.key: {f.name for f in s.fields if not f.note.startswith("not declared")} for s in sections
    }
    return {
        "openai.chat_completions": by_key.get("openai.chat", set()),
        "openai.responses": by_key.get("openai.responses", set()),
        "openai.embeddings": by_key.get("openai.embeddings", set()),
        "anthropic.messages": by_key.get("anthropic.messages", set())
        | by_key.get("anthropic.messages.beta", set()),
        "anthropic.count_tokens": by_key.get("anthropic.count_tokens", set()),
        "gemini.generate_content": by_key.get("gemini.request", set()),
        "gemini.stream_generate_content": by_key.get("gemini.request", set()),
        "gemini.count_tokens": by_key.get("gemini.count_tokens", set()),
    }


def write_fields() -> int:
    sections = extract_sections()
    recs = _recordings()
    lines = [
        "# Request fields: what the official SDKs declare, what clients send, proposed classification",
        "",
        "Generated by `scripts/record_client_bodies.py fields` (see its docstring) from the SDKs pinned in",
        "`VERSIONS.txt` and the recordings in this directory; do not edit by hand: the field lists are",
        "extracted from the installed SDK source, the classifications live in `CLASSIFY` / `BETA_CLASSIFY`",
        "in that script.",
        "",
        "Classes (DESIGN.md §10): **free** cannot change the bill; **bounded** changes it and the proxy can",
        "bound it (how is stated); **refused** cannot be bounded (400 `invalid_request` naming the field,",
        'unless `CAP_FORWARD_UNPRICED_FIELDS` forwards it). "(verify)" marks a proposal inferred from the',
        "SDK docstring alone. *Recorded by* lists the clients whose recorded bodies contain the field (a",
        "field recorded by a client is one that client really sends, so it must not be refused by mistake).",
        "",
        "Billing facts used (provider docs): OpenAI `service_tier` — `auto`/absent = the project's default",
        "tier (unless changed, `default`), `flex` ≈50% price, `priority`/`fast` premium (billed as",
        "priority), `ultrafast` access-controlled; Anthropic `service_tier` `auto` may use Priority Tier",
        '(capacity commitments only), `standard_only` never does; `inference_geo: "us"` = 1.1× on Opus 4.6 /',
        'Sonnet 4.6 and later, absent = workspace `default_inference_geo`; `speed: "fast"` = premium',
        "multiplier (6× standard Opus 4.6 rates); Gemini `service_tier` flex 50% / priority +75–100%",
        "(over the priority limit it is served as standard); xAI Live Search (`search_parameters`) was",
        "$25 per 1,000 sources and is retired (410); xAI server-side tools ≈$5 per 1,000 successful calls.",
        "",
        FINDINGS,
    ]
    unclassified = 0
    for s in sections:
        table = CLASSIFY.get(s.key, {})
        lines += [f"## {s.title}", ""]
        if s.intro:
            lines += [s.intro, ""]
        lines += ["| field | SDK type / fields | recorded by | proposed |", "|---|---|---|---|"]
        for f in s.fields:
            text = table.get(f.name, table.get("*"))
            if text is None and "=" in f.name:
                text = table.get(f.name.split("=", 1)[0] + "=*")
            if text is None and f.note.startswith("raises in Gemini API mode"):
                text = "n/a: the SDK raises for it in Gemini API mode (Vertex AI only)"
            if text is None:
                unclassified += 1
            rec = ", ".join(s.presence(f.name)) if s.presence else ""
            typ = f.type if len(f.type) <= 70 else f.type[:67] + "..."
            extra = [x for x in (("required" if f.required else ""), f.note) if x]
            typ = "; ".join([t for t in [typ] + extra if t])
            lines.append(f"| `{_md(f.name)}` | {_md(typ)} | {rec or '—'} | {_md(_cls(text))} |")
        lines.append("")

    from anthropic.types.anthropic_beta_param import AnthropicBetaParam

    betas = [str(v) for v in literal_values(AnthropicBetaParam)]
    seen_betas = {
        v.strip()
        for r in recs
        for v in r["headers"].get("anthropic-beta", "").split(",")
        if v.strip()
    }
    lines += [
        "## `anthropic-beta` header values the anthropic SDK knows (`AnthropicBetaParam`)",
        "",
        "An `anthropic-beta` value not in this table is refused (unknown).",
        "",
        "| value | recorded | proposed |",
        "|---|---|---|",
    ]
    for b in betas:
        text = BETA_CLASSIFY.get(b)
        unclassified += text is None
        lines.append(f"| `{b}` | {'yes' if b in seen_betas else '—'} | {_md(_cls(text))} |")
    lines.append("")

    declared = _declared_top_level(sections)
    lines += [
        "## Recorded top-level keys the SDK types do not declare",
        "",
        "| api | key | sent by (scenario) |",
        "|---|---|---|",
    ]
    found = False
    for r in recs:
        body = r.get("body") if isinstance(r.get("body"), dict) else {}
        for key in body:
            if r["api"] in declared and key not in declared[r["api"]]:
                found = True
                lines.append(f"| {r['api']} | `{key}` | {r['client']} ({r['scenario']}) |")
    if not found:
        lines.append("| — | — | — |")
    lines.append("")

    lines += [
        "## Recordings: paths and headers per client",
        "",
        "| client | api | paths | header names sent (values in the recordings) |",
        "|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for r in recs:
        paths, headers = groups.setdefault((r["client"], r["api"]), (set(), set()))
        q = "?" + "&".join(f"{k}={v}" for k, v in sorted(r["query"].items())) if r["query"] else ""
        paths.add(r["path"] + q)
        headers.update(r["headers"])
    for (client, api), (paths, headers) in sorted(groups.items()):
        lines.append(
            f"| {client} | {api} | {'<br>'.join(f'`{p}`' for p in sorted(paths))} | "
            f"{', '.join(f'`{h}`' for h in sorted(headers))} |"
        )
    lines.append("")
    (OUT / "FIELDS.md").write_text("\n".join(lines))
    print(f"wrote {(OUT / 'FIELDS.md').relative_to(ROOT)} ({unclassified} unclassified)")
    return 1 if unclassified else 0


def main() -> int:
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=["all", "record", "fields"], default="all")
    parser.add_argument("--client", action="append", help="record only this client (repeatable)")
    args = parser.parse_args()
    rc = 0
    if args.what in ("all", "record"):
        rc |= record(args.client)
    if args.what in ("all", "fields"):
        rc |= write_fields()
    return rc


if __name__ == "__main__":
    sys.exit(main())
