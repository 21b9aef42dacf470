"""Token counts that must not fall below what a provider bills.

OpenAI models are counted with their own byte-level BPE (o200k or cl100k, from PyPI
``bpe-openai``, which works offline). Anthropic, Gemini and xAI tokenize differently and
publish no offline tokenizer, so their text is counted as ``max(o200k, cl100k)`` times a
per-provider margin, never above the UTF-8 byte length (every byte-level BPE, and
SentencePiece with byte fallback, spends at most one token per byte).

Margins (numerator, denominator), chosen from the providers' published comparisons:
Claude's tokenizer uses ~1.0-1.2x o200k's count for English and code, and Opus 4.7's new
tokenizer "up to 1.35x" the previous one, so 3/2; Grok's (131k vocabulary) is close to
cl100k, 5/4; Gemini's 256k SentencePiece vocabulary is at most cl100k's count for most
text, 6/5 for CJK and emoji corner cases. OpenAI is exact, 1/1.

Texts longer than ``EXACT_MAX_BYTES`` are counted by bytes: the BPE runs at ~8-10 MB/s
and holds the GIL (a thread would not help), so an exact count of a 1 MB prompt would
block the event loop for ~100-200 ms.

Streamed output is counted by ``OutputTally``: unscaled (so a provider that honours
max_tokens never appears to exceed it) with the margin applied only to its ``upper`` figure.
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bpe_openai.tokenizer import Encoding

EXACT_MAX_BYTES = 128 * 1024

# numerator, denominator of the margin applied to max(o200k, cl100k) per pricing provider
_MARGINS: dict[str, tuple[int, int]] = {
    "openai": (1, 1),
    "grok": (5, 4),
    "anthropic": (3, 2),
    "gemini": (6, 5),
}
_UNKNOWN_MARGIN = (3, 2)

# Older OpenAI models use cl100k; everything from gpt-4o on (4o, 4.1, 4.5, o-series,
# gpt-5, gpt-oss, codex) uses o200k, and so will unknown future ones.
_CL100K_MODELS = re.compile(r"^(gpt-3\.5|gpt-4(?!o|\.1|\.5)|text-embedding|davinci|babbage)")


@functools.cache
def _encoding(name: str) -> Encoding:
    # Imported lazily: loading the ranks takes ~0.1 s. bpe-openai 0.1.4 reads its data with
    # importlib.resources.open_binary, deprecated since 3.11: under `-W error` (our tests)
    # that warning would make the import itself fail.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding(name)


def preload() -> None:
    """Load both encodings now (at start-up) instead of on the first request."""
    _encoding("o200k_base")
    _encoding("cl100k_base")


def openai_encoding_name(model: str) -> str:
    bare = model.removeprefix("ft:").removeprefix("openai/")
    return "cl100k_base" if _CL100K_MODELS.match(bare) else "o200k_base"


def bpe_count(encoding: str, text: str) -> int:
    try:
        return len(_encoding(encoding).encode_ordinary(text))
    except ValueError:  # refuses >1M characters or >200k tokens; bytes stay an upper bound
        return len(text.encode("utf-8", "surrogatepass"))


def margin(provider: str) -> tuple[int, int]:
    return _MARGINS.get(provider, _UNKNOWN_MARGIN)


def count_text(text: str, provider: str, model: str = "") -> int:
    """Tokens the provider's tokenizer will need for ``text``, rounded up, never less."""
    if not text:
        return 0
    n_bytes = len(text.encode("utf-8", "surrogatepass"))
    if n_bytes > EXACT_MAX_BYTES:
        return n_bytes
    if provider == "openai":
        return bpe_count(openai_encoding_name(model), text)
    raw = max(bpe_count("o200k_base", text), bpe_count("cl100k_base", text))
    num, den = margin(provider)
    return min(n_bytes, -(-raw * num // den))


# Characters of context kept per channel: BPE pre-tokenization never merges across more
# than a word, so counting (tail + delta) - (tail) sums to the count of the whole text
# however the provider cut it into deltas (tokenizing each delta alone inflates the count
# by up to 2x for short deltas).
_TAIL_CHARS = 24


class OutputTally:
    """Running count of generated text in a stream, independent of how it was cut up.

    ``tokens`` is the unscaled count -- exact for OpenAI models, ``max(o200k, cl100k)`` for
    other providers -- or the provider's own running figure when higher: a provider that
    honours max_tokens does not push it past max_tokens, so it is what a cutoff compares.
    ``upper`` applies the provider's tokenizer margin: what the provider may bill at most.
    Text arrives on channels (a choice, a content block, an output item): each keeps its
    own context so interleaved streams are not merged.
    """

    __slots__ = ("_den", "_encodings", "_num", "_raw", "_reported", "_tails")

    def __init__(self, provider: str, model: str = "") -> None:
        if provider == "openai":
            self._encodings: tuple[str, ...] = (openai_encoding_name(model),)
        else:
            self._encodings = ("o200k_base", "cl100k_base")
        self._num, self._den = margin(provider)
        self._raw = [0] * len(self._encodings)
        self._tails: dict[object, tuple[str, list[int]]] = {}
        self._reported = 0

    def add_text(self, text: str, channel: object = None) -> None:
        if not text:
            return
        tail, tail_counts = self._tails.get(channel, ("", [0] * len(self._encodings)))
        combined = tail + text
        new_tail = combined[-_TAIL_CHARS:]
        new_counts = []
        for i, encoding in enumerate(self._encodings):
            self._raw[i] += bpe_count(encoding, combined) - tail_counts[i]
            new_counts.append(bpe_count(encoding, new_tail))
        self._tails[channel] = (new_tail, new_counts)

    def add_reported(self, tokens: int) -> None:
        """The provider's own running figure: the count never goes below it."""
        self._reported = max(self._reported, tokens)

    @property
    def counted(self) -> int:
        return max(0, *self._raw)

    @property
    def tokens(self) -> int:
        return max(self.counted, self._reported)

    @property
    def upper(self) -> int:
        return max(self._reported, -(-self.counted * self._num // self._den))
