"""Hosted mode reaches only public addresses, checked on the address connected to."""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
import pytest

from spendguard_proxy.errors import InvalidRequest
from spendguard_proxy.settings import Mode
from spendguard_proxy.webhooks import store
from spendguard_proxy.webhooks.secret_box import box_for
from spendguard_proxy.webhooks.targets import (
    PublicOnlyResolver,
    TargetRefused,
    check_url,
    is_public,
    public_only_socket,
    refusal_of,
)
from spendguard_proxy.webhooks.worker import DeliveryWorker, delivery_session
from tests.webhooks.conftest import emit, new_tenant_id, running_receiver

REFUSAL = "hosted webhooks only reach public addresses"


async def test_hosted_delivery_to_private_targets_is_refused_and_never_connects(
    wh_pool, wh_hosted_settings
):
    """Webhooks stored directly (creation would refuse the literal ones): the worker itself
    must refuse them — loopback v4 and v6, private, link-local cloud metadata, and a host
    name that resolves to loopback. Each is failed at once, not retried."""
    tenant = await new_tenant_id(wh_pool)
    async with running_receiver() as receiver:
        port = receiver.base_url.rsplit(":", 1)[1]
        urls = [f"http://127.0.0.1:{port}/", "http://10.0.0.1:9/",
                "http://169.254.169.254/latest/meta-data/", f"http://[::1]:{port}/",
                f"http://localhost:{port}/", f"http://[::ffff:127.0.0.1]:{port}/"]
        box = box_for(wh_hosted_settings)
        hooks = [await store.create_webhook(wh_pool, tenant, url, None, box, 20) for url in urls]
        await emit(wh_pool, tenant, "budget.exhausted", {"agent_id": "x"})
        async with delivery_session(wh_hosted_settings) as session:
            worker = DeliveryWorker(wh_pool, wh_hosted_settings, session)
            assert await worker.run_once() == len(urls)
            assert await worker.run_once() == 0  # failed for good: nothing due again
    assert receiver.requests == []
    rows = await wh_pool.fetch(
        "SELECT w.url, d.state, d.last_error, (SELECT count(*) FROM webhook_attempts a"
        " WHERE a.delivery_id = d.id) AS recorded FROM webhook_deliveries d"
        " JOIN webhooks w ON w.id = d.webhook_id WHERE w.tenant_id = $1", tenant)
    assert len(rows) == len(hooks)
    for row in rows:
        assert row["state"] == "failed", row
        assert REFUSAL in row["last_error"] and row["recorded"] == 1, row


async def test_a_sidecar_may_post_to_loopback(wh_pool, wh_settings):
    tenant = await new_tenant_id(wh_pool)
    async with running_receiver() as receiver:
        port = receiver.base_url.rsplit(":", 1)[1]
        box = box_for(wh_settings)
        await store.create_webhook(wh_pool, tenant, f"http://localhost:{port}/", None, box, 20)
        event = await emit(wh_pool, tenant, "call.cutoff", {"agent_id": "x"})
        async with delivery_session(wh_settings) as session:
            assert await DeliveryWorker(wh_pool, wh_settings, session).run_once() == 1
    assert receiver.delivered_ids() == [event]


ADDRESSES = [
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("240.0.0.1", False), ("255.255.255.255", False),
    ("::1", False), ("::", False), ("fe80::1", False), ("fc00::1", False), ("ff02::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("64:ff9b::a00:1", False),
    ("2002:7f00:1::1", False), ("2001::1", False),
    ("8.8.8.8", True), ("1.1.1.1", True), ("2606:4700:4700::1111", True),
    ("::ffff:8.8.8.8", True),
]


@pytest.mark.parametrize(("address", "public"), ADDRESSES)
def test_address_policy(address, public):
    assert is_public(ipaddress.ip_address(address)) is public


def test_the_socket_factory_refuses_before_connecting():
    with pytest.raises(TargetRefused, match=REFUSAL):
        public_only_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 80)))
    sock = public_only_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", 443)))
    sock.close()


class _Answers(aiohttp.abc.AbstractResolver):
    """A resolver that answers what the test says (the DNS under an attacker's control)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": a, "port": port, "family": family, "proto": 0,
                 "flags": 0} for a in self.answers]

    async def close(self) -> None:
        pass


async def test_a_name_with_any_private_address_is_refused_whole():
    resolver = PublicOnlyResolver()
    await resolver.close()
    resolver._inner = _Answers(["8.8.8.8", "127.0.0.1"])  # a rebinding-style answer
    with pytest.raises(TargetRefused, match="127.0.0.1"):
        await resolver.resolve("rebind.example", 443)
    resolver._inner = _Answers(["8.8.8.8", "2606:4700:4700::1111"])
    assert [r["host"] for r in await resolver.resolve("ok.example", 443)] == [
        "8.8.8.8", "2606:4700:4700::1111"]


def test_refusal_is_found_behind_aiohttp_errors():
    refused = TargetRefused("target x resolves to 10.0.0.1")
    wrapped = aiohttp.ClientConnectorDNSError(
        aiohttp.client_reqrep.ConnectionKey("x", 80, False, True, None, None, None), refused)
    assert refusal_of(wrapped) is refused
    assert refusal_of(aiohttp.ClientConnectionError("other")) is None


BAD_URLS = [
    ("ftp://example.com/", "must start with https://"),
    ("example.com/hook", "must start with https://"),
    ("https://user:pw@example.com/", "must not carry credentials"),
    ("https://token@example.com/", "must not carry credentials"),
    ("https:///path", "has no host name"),
    ("https://example.com:99999/", "not a valid URL"),
    ("https://example.com/a b", "whitespace"),
    ("https://example.com/#frag", "#fragment"),
    ("https://example.com/" + "a" * 2100, "longer than 2048"),
]

HOSTED_ONLY = [
    ("http://example.com/", "https:// in hosted mode"),
    ("https://127.0.0.1/", "not a public address"),
    ("https://[::1]/", "not a public address"),
    ("https://169.254.169.254/", "not a public address"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_urls_refused_in_every_mode(url, message, wh_settings, wh_hosted_settings):
    for s in (wh_settings, wh_hosted_settings):
        with pytest.raises(InvalidRequest, match=message.replace("/", ".")):
            check_url(url, s)


@pytest.mark.parametrize(("url", "message"), HOSTED_ONLY)
def test_urls_refused_in_hosted_mode_only(url, message, wh_settings, wh_hosted_settings):
    assert check_url(url, wh_settings) == url
    with pytest.raises(InvalidRequest, match=message.replace("/", ".")):
        check_url(url, wh_hosted_settings)


def test_hosted_may_allow_http(wh_hosted_settings):
    allowed = wh_hosted_settings.model_copy(update={"webhook_allow_http": True})
    assert allowed.mode is Mode.hosted
    assert check_url("http://example.com/hook", allowed) == "http://example.com/hook"
    with pytest.raises(InvalidRequest, match="not a public address"):
        check_url("http://10.0.0.1/hook", allowed)
