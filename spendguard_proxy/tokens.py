"""Token counts that must not fall below what a provider bills.

OpenAI models are counted exactly with their own byte-level BPE (o200k or cl100k, from PyPI
``bpe-openai``, which works offline). Anthropic (Claude 3+), Gemini and xAI publish no offline
tokenizer, so their text gets a bound that holds by construction, ``byte_bound``:

* every byte-level BPE token (Claude, Grok, GPT) is a non-empty byte string, and every
  SentencePiece token (Gemini/Gemma, byte fallback) is a non-empty piece or a single byte, so a
  text never needs more tokens than its UTF-8 bytes -- after the tokenizer's normalizer.
  Claude's published tokenizer (the ``tokenizer.json`` of the anthropic SDK <= 0.38) applies
  NFKC, which can lengthen a text (U+FDFA is 3 bytes, its NFKC form 33): the bound is the
  longer of the text and its NFKC form.
* No character class is tightened below one token per byte: no provider publishes a rule that
  proves fewer (Gemini's tokenizer, like Gemma's, spends one token per digit -- exactly one per
  byte). Measured against the real tokenizers we can install (tests/providers/test_bounds.py):
  the bound is 3-3.6x the true count on English prose, 3.4-4.1x on code, 3-5x on CJK, 1.6-3.7x
  on emoji, 1.0x (Gemma) to 3x on digits. Where that is too coarse for a budget, the relay asks
  Anthropic's/Gemini's free count endpoint for the exact figure (server/exact_count.py).

OpenAI texts longer than ``EXACT_MAX_BYTES`` are counted by bytes too: the BPE runs at ~8-10
MB/s and holds the GIL (a thread would not help), so an exact count of a 1 MB prompt would
block the event loop for ~100-200 ms.

Streamed output is counted by ``OutputTally`` with the BPEs (an estimate to compare against
max_tokens, not a bound): unscaled, with a per-provider margin applied only to its ``upper``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bpe_openai.tokenizer import Encoding

EXACT_MAX_BYTES = 128 * 1024

# numerator, denominator of the margin OutputTally.upper applies to max(o200k, cl100k): Claude's
# tokenizer uses up to ~1.35x o200k's count, Grok's is close to cl100k, Gemini's at most cl100k's
# for most text. Output only: input text of these providers is bounded by byte_bound.
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


def byte_bound(text: str) -> int:
    """Most tokens any byte-level BPE or byte-fallback SentencePiece tokenizer can make of
    ``text``: its UTF-8 length, or that of its NFKC form when that is longer."""
    n_bytes = len(text.encode("utf-8", "surrogatepass"))
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return n_bytes
    normalized = unicodedata.normalize("NFKC", text)
    return max(n_bytes, len(normalized.encode("utf-8", "surrogatepass")))


def count_text(text: str, provider: str, model: str = "") -> int:
    """Tokens the provider's tokenizer will need for ``text``, never fewer: exact for OpenAI
    models (up to EXACT_MAX_BYTES), ``byte_bound`` otherwise."""
    if not text:
        return 0
    if provider != "openai":
        return byte_bound(text)
    n_bytes = len(text.encode("utf-8", "surrogatepass"))
    if n_bytes > EXACT_MAX_BYTES:
        return byte_bound(text)
    return bpe_count(openai_encoding_name(model), text)


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
