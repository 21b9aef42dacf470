"""Run client code in its own Python process, with a clean environment.

The loop stays free while the child runs, so the proxy under test (on this loop) answers it.
Used for the documentation's snippets (run as a reader runs them) and for litellm, whose import
changes process-wide state (module globals, ``os.environ``, an imported ``litellm`` that other
tests would then find) that must not leak into the rest of the suite.
"""

from __future__ import annotations

import asyncio
import os
import sys

RUN_TIMEOUT_S = 60
# What the developer's environment might hold that would send a call elsewhere or hide a bug.
_SCRUBBED = ("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "XAI_", "CAP_", "SPENDGUARD_",
             "LITELLM_", "LANGCHAIN_", "LANGSMITH_")


async def run_python(code: str, env: dict[str, str], *args: str,
                     warnings_as_errors: bool = True) -> str:
    """``python -c code args…``; its stdout. Fails the test with its stderr on a non-zero exit."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    # litellm would fetch its model map from GitHub at import: no network in the tests.
    child_env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
    flags = ["-I", *(["-W", "error"] if warnings_as_errors else [])]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *flags, "-c", code, *args, env=child_env, cwd="/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode()
