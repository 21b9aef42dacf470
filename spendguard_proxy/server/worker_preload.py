"""What `serve --workers N` loads once, in the forkserver every worker is forked from.

The tokenizer tables (~180 MB, held by bpe-openai's Rust code) and the server's modules are
loaded here before any worker exists; a forked worker then shares those pages with its
siblings copy-on-write instead of loading its own copy. ``gc.freeze`` moves the loaded objects
out of the collector's reach, so collections in the workers do not write to (and so copy) the
shared pages. The forkserver is a fresh interpreter with no event loop and no threads: safe to
fork from, unlike the parent.
"""

import gc

from spendguard_proxy import tokens
from spendguard_proxy.server import app  # noqa: F401 — imported for its modules, shared

tokens.preload()
gc.freeze()
