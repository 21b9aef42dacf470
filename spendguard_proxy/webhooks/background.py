"""The delivery worker as an aiohttp ``cleanup_ctx``: every server process that has
``CAP_WEBHOOK_DELIVERY`` on (the default) runs one, sharing the queue with the others."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from spendguard_proxy.server.keys import POOL, SETTINGS
from spendguard_proxy.webhooks.secret_box import box_for
from spendguard_proxy.webhooks.worker import DeliveryWorker, delivery_session

WEBHOOK_WORKER = web.AppKey("webhook_worker", DeliveryWorker)


async def webhook_delivery(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.webhook_delivery:
        yield
        return
    if settings.webhook_secret_key is not None:
        box_for(settings)  # a malformed key stops the start, naming CAP_WEBHOOK_SECRET_KEY
    async with delivery_session(settings) as session:
        worker = DeliveryWorker(app[POOL], settings, session)
        app[WEBHOOK_WORKER] = worker
        task = asyncio.create_task(worker.run_forever(), name="webhook-delivery")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
