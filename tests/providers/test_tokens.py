from __future__ import annotations

import base64
import struct
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendguard_proxy import tokens
from spendguard_proxy.providers import images
from spendguard_proxy.providers.estimate import estimate_input
from spendguard_proxy.providers.registry import get_adapter

SAMPLES = {
    "english": "The quick brown fox jumps over the lazy dog. " * 20,
    "cjk": "日本語のテキストです。中文文本在这里。한국어 텍스트입니다。" * 20,
    "emoji": "👩‍👩‍👧‍👦🏳️‍🌈🇯🇵😀🤖✨🧪 " * 20,
    "code": "def f(x):\n    return {k: v ** 2 for k, v in x.items() if v is not None}\n" * 20,
    "mixed": "Ünïcödé ∑∫√ ⟨ψ|φ⟩ — «quotes» 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 " * 20,
}
ADAPTER_MODELS = [
    ("openai_chat", "gpt-4o"),
    ("openai_chat", "gpt-4"),
    ("grok_chat", "grok-4"),
    ("anthropic_messages", "claude-opus-4-7"),
    ("gemini", "gemini-2.5-pro"),
]


def _body(adapter: str, model: str, text: str) -> dict:
    if adapter == "gemini":
        return {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def _real_counts(text: str, adapter: str = "", model: str = "") -> int:
    """OpenAI bills its model's own encoding; other tokenizers we can only bound by both."""
    if adapter.startswith("openai"):
        return tokens.bpe_count(tokens.openai_encoding_name(model), text)
    return max(tokens.bpe_count("o200k_base", text), tokens.bpe_count("cl100k_base", text))


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize(("adapter", "model"), ADAPTER_MODELS)
def test_estimate_never_below_the_tokenizers(sample: str, adapter: str, model: str) -> None:
    text = SAMPLES[sample]
    pre = get_adapter(adapter).preflight(_body(adapter, model, text), model=model)
    assert pre.input_tokens >= _real_counts(text, adapter, model)
    assert pre.input_tokens <= len(text.encode()) + 64  # and never silly


@settings(max_examples=80, deadline=None, database=None)
@given(st.text(min_size=1, max_size=400), st.sampled_from(ADAPTER_MODELS))
def test_estimate_covers_random_unicode(text: str, adapter_model: tuple[str, str]) -> None:
    adapter, model = adapter_model
    pre = get_adapter(adapter).preflight(_body(adapter, model, text), model=model)
    assert pre.input_tokens >= _real_counts(text, adapter, model)


def test_other_providers_get_the_byte_bound() -> None:
    text = SAMPLES["english"]
    assert tokens.count_text(text, "openai", "gpt-4o") == tokens.bpe_count("o200k_base", text)
    for provider in ("anthropic", "gemini", "grok"):
        assert tokens.count_text(text, provider) == len(text.encode())
    emoji = SAMPLES["emoji"]
    assert tokens.count_text(emoji, "anthropic") == len(emoji.encode())
    # NFKC (Claude's published tokenizer normalizes) can lengthen a text: U+FDFA is 3 bytes,
    # its NFKC form 33; the bound takes the longer.
    assert tokens.count_text("\ufdfa", "anthropic") == 33
    assert tokens.count_text("x\ud800", "gemini") == 4  # a lone surrogate: 3 bytes


def test_cl100k_for_older_openai_models() -> None:
    assert tokens.openai_encoding_name("gpt-4-0613") == "cl100k_base"
    assert tokens.openai_encoding_name("gpt-3.5-turbo") == "cl100k_base"
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini", "gpt-5", "ft:gpt-4o:x"):
        assert tokens.openai_encoding_name(model) == "o200k_base"


def test_huge_text_is_counted_by_bytes() -> None:
    text = "word " * 60_000  # 300 KB
    assert tokens.count_text(text, "openai", "gpt-4o") == len(text)


def test_tool_schemas_count() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "lookup_weather",
            "description": "x" * 400,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    base = get_adapter("openai_chat").preflight({"model": "gpt-4o", "messages": []}).input_tokens
    with_tool = (
        get_adapter("openai_chat")
        .preflight({"model": "gpt-4o", "messages": [], "tools": [tool]})
        .input_tokens
    )
    assert with_tool - base >= tokens.bpe_count("o200k_base", "x" * 400) + 10


# ---------------------------------------------------------------- images and documents


def _png(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )


def _jpeg(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def test_image_sizes_from_headers() -> None:
    assert images.size_from_bytes(_png(640, 480)) == (640, 480)
    assert images.size_from_bytes(_jpeg(1024, 768)) == (1024, 768)
    assert images.size_from_bytes(b"GIF89a" + struct.pack("<HH", 20, 10)) == (20, 10)
    vp8x = (
        b"RIFF\x00\x00\x00\x00WEBPVP8X"
        + b"\x00" * 8
        + (1919).to_bytes(3, "little")
        + (1079).to_bytes(3, "little")
    )
    assert images.size_from_bytes(vp8x) == (1920, 1080)
    assert images.size_from_base64(base64.b64encode(_jpeg(300, 200)).decode()) == (300, 200)
    assert images.size_from_bytes(b"not an image") is None


def test_image_rules_cover_the_published_examples() -> None:
    # The full tables per model family are in test_bounds.py.
    assert images.openai_image_tokens("gpt-4o", (1024, 1024), "high") == 765
    assert images.openai_image_tokens("gpt-4o", (2048, 4096), None) == 1105
    assert images.openai_image_tokens("gpt-4o", None, "low") == 85
    assert images.openai_image_tokens("gpt-4.1", (1024, 1024), None) == 765
    assert images.openai_image_tokens("gpt-4.1-mini", (1800, 2400), None) == 2489  # 1536 * 1.62
    assert images.openai_image_tokens("gpt-4o-mini", None, None) == 2833 + 8 * 5667
    assert images.anthropic_image_tokens("claude-sonnet-4-5", (1092, 1092)) == 1590
    assert images.anthropic_image_tokens("claude-sonnet-4-5", (6000, 4000)) <= 1600
    assert images.anthropic_image_tokens("claude-opus-4-7", None) == 5000
    assert images.gemini_image_tokens("gemini-2.0-flash", (300, 300)) == 258
    assert images.gemini_image_tokens("gemini-2.5-pro", (1536, 768)) == 6 * 258  # 512-px unit
    assert images.gemini_image_tokens("gemini-3-pro-preview", (300, 300)) == 1120


def test_inline_images_and_documents_are_priced_not_tokenized_as_text() -> None:
    png = base64.b64encode(_png(512, 512) + b"\x00" * 300_000).decode()
    chat = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{png}", "detail": "low"},
                    },
                ],
            }
        ],
    }
    pre = get_adapter("openai_chat").preflight(chat)
    assert 102 <= pre.input_tokens < 300 and not pre.input_unbounded
    pdf = b"%PDF-1.4\n" + b"<< /Type /Page >>\n" * 3 + b"<< /Type /Pages /Count 3 >>"
    claude = {
        "model": "claude-sonnet-4-6",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": base64.b64encode(pdf).decode(),
                        },
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                ],
            }
        ],
    }
    pre = get_adapter("anthropic_messages").preflight(claude)
    assert pre.input_tokens >= 3 * 4600 + 1600
    referenced = {
        "model": "claude-sonnet-4-6",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "document", "source": {"type": "file", "file_id": "file_1"}}],
            }
        ],
    }
    assert get_adapter("anthropic_messages").preflight(referenced).input_unbounded
    gemini = {
        "contents": [
            {
                "parts": [
                    {
                        "inlineData": {
                            "mimeType": "image/png",
                            "data": base64.b64encode(_png(100, 100)).decode(),
                        }
                    },
                    {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://d"}},
                ]
            }
        ]
    }
    pre = get_adapter("gemini").preflight(gemini, model="gemini-2.0-flash")
    assert pre.input_tokens >= 258 and pre.input_unbounded


def test_deeply_nested_json_does_not_recurse() -> None:
    node: object = "leaf"
    for _ in range(5000):
        node = [node]
    assert estimate_input({"messages": node}, provider="openai", model="gpt-4o").tokens > 5000


# ---------------------------------------------------------------- speed


def _mean_s(fn, runs: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - started) / runs


def test_one_kilobyte_chat_body_is_well_under_a_millisecond() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Please summarise the following text. " * 25},
        ],
    }
    openai_s = _mean_s(lambda: get_adapter("openai_chat").preflight(body), 300)
    claude = {**body, "model": "claude-sonnet-4-6"}
    claude_s = _mean_s(lambda: get_adapter("anthropic_messages").preflight(claude), 300)
    assert openai_s < 0.0005 and claude_s < 0.0005, (openai_s, claude_s)
