from __future__ import annotations

import asyncio


async def charges(pool, agent_id, expected=1):
    """Charge rows, waiting briefly: a stream settles just after the client read its end."""
    rows = []
    for _ in range(150):
        rows = await pool.fetch(
            "SELECT * FROM ledger_entries WHERE agent_id=$1 AND kind='charge' ORDER BY id",
            agent_id)
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.02)
    return rows


def chat_body(stream=False, **extra):
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}],
            "stream": stream, **extra}


def agent_headers(agent_id, run_id=None):
    headers = {"x-cynsta-agent-id": str(agent_id)}
    if run_id:
        headers["x-cynsta-run-id"] = str(run_id)
    return headers
