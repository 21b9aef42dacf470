"""Budget policies, groups and tenant ceilings from the CLI (DESIGN §7, §11): subprocesses on
the real database, and over HTTP against real servers (sidecar and hosted)."""

from __future__ import annotations

import asyncio
import io
import uuid

import pytest
from rich.console import Console

from spendguard_proxy import groups, ledger, tenants
from spendguard_proxy.cli import group_cmds, render, tenant_cmds
from spendguard_proxy.settings import Mode
from tests.cli.test_cli import _cli, _json
from tests.conftest import running_proxy

POLICY_OFF = {"period": "none", "period_resets_at": None, "rpm_limit": None,
              "tpm_limit": None, "allowed_models": None, "alert_thresholds_pct": None,
              "group_id": None}


def _policy(budget: dict) -> dict:
    return {field: budget[field] for field in POLICY_OFF}


def _new_agent(dsn, *env_args, env_extra=None) -> str:
    created = _json(_cli(dsn, "agent", "create", "--json", *env_args, env_extra=env_extra))
    return created["agent_id"]


def _new_group(dsn, *args, env_extra=None) -> dict:
    return _json(_cli(dsn, "group", "create", "--name", "team", "--limit-cents", "900",
                      *args, "--json", env_extra=env_extra))


def test_the_flag_tables_are_the_ledgers_fields():
    assert tenant_cmds.POLICY_FIELDS == ledger.POLICY_FIELDS
    assert group_cmds.GROUP_FIELDS == groups.GROUP_FIELDS


def test_each_policy_flag_is_set_shown_kept_and_cleared(dsn):
    agent = _new_agent(dsn)
    group = _new_group(dsn)["group_id"]
    base = ("budget", "set", "--agent", agent, "--limit", "500", "--json")
    assert _policy(_json(_cli(dsn, *base))) == POLICY_OFF

    steps = [  # (flags, the fields they change)
        (("--period", "daily"), {"period": "daily"}),
        (("--rpm-limit", "60"), {"rpm_limit": 60}),
        (("--tpm-limit", "90000"), {"tpm_limit": 90000}),
        (("--allow-model", "gpt-5*", "--allow-model", "claude-*"),
         {"allowed_models": ["gpt-5*", "claude-*"]}),
        (("--alert-at", "80", "--alert-at", "50", "--alert-at", "100"),
         {"alert_thresholds_pct": [50, 80, 100]}),
        (("--group", group), {"group_id": group}),
    ]
    expected = dict(POLICY_OFF)
    for flags, changed in steps:
        expected.update(changed)
        got = _policy(_json(_cli(dsn, *base, *flags)))
        assert got.pop("period_resets_at") is not None  # a daily period has its next reset
        assert got == {k: v for k, v in expected.items() if k != "period_resets_at"}, flags

    shown = _json(_cli(dsn, "budget", "get", "--agent", agent, "--json"))
    assert {k: shown[k] for k in ("period", "rpm_limit", "tpm_limit", "allowed_models",
                                  "alert_thresholds_pct", "group_id")} == {
        k: expected[k] for k in ("period", "rpm_limit", "tpm_limit", "allowed_models",
                                 "alert_thresholds_pct", "group_id")}
    assert "period_spent_cents" in shown
    # A set without policy flags keeps them all (only the flags given change).
    assert _policy(_json(_cli(dsn, *base))) == _policy(shown)
    # One more pattern replaces the list, it is not added to it.
    kept = _json(_cli(dsn, *base, "--allow-model", "o3"))
    assert kept["allowed_models"] == ["o3"]

    cleared = _json(_cli(dsn, *base, "--period", "none", "--no-rpm-limit", "--no-tpm-limit",
                         "--all-models", "--no-alerts", "--no-group"))
    assert _policy(cleared) == POLICY_OFF
    assert agent not in _json(_cli(dsn, "group", "get", group, "--json"))["agent_ids"]


def test_the_table_shows_the_policies(dsn):
    agent = _new_agent(dsn)
    _cli(dsn, "budget", "set", "--agent", agent, "--limit", "500", "--allow-model", "gpt-5*",
         "--alert-at", "50")
    shown = _cli(dsn, "budget", "get", "--agent", agent, env_extra={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    lines = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in shown.stdout.splitlines() if line.count("│") == 3}
    assert lines["allowed_models"] == "gpt-5*" and lines["alert_thresholds_pct"] == "50%"
    assert lines["rpm_limit"] == "no limit" and lines["group_id"] == "none"
    assert lines["remaining_cents"] == "500" and lines["period_resets_at"] == "never"


@pytest.fixture(scope="module")
async def agent_with_budget(pool):
    agent = await ledger.create_agent(pool, ledger.LOCAL_TENANT_ID, "bad-input")
    await ledger.set_budget(pool, ledger.LOCAL_TENANT_ID, uuid.UUID(agent["agent_id"]),
                            hard_limit_cents=100)
    return agent["agent_id"]


MISSING = "00000000-0000-4000-8000-00000000dead"
BAD_INPUTS = [  # (arguments after `budget set --agent A --limit 100`, exit status, message)
    (("--rpm-limit", "0"), 1, "rpm_limit: Input should be greater than or equal to 1"),
    (("--tpm-limit", "many"), 2, "argument --tpm-limit: must be an integer, got 'many'"),
    (("--period", "yearly"), 2, "argument --period: invalid choice: 'yearly'"),
    (("--alert-at", "0"), 1, "alert_thresholds_pct.0: Input should be greater than or equal"),
    (("--alert-at", "101"), 1, "alert_thresholds_pct.0: Input should be less than or equal"),
    (("--allow-model", "gpt 5"), 1, "allowed_models.0: String should match pattern"),
    (("--group", "team-a"), 1, "group_id: Input should be a valid UUID"),
    (("--group", MISSING), 1, f"Group not found: {MISSING} (in "),
    (("--rpm-limit", "5", "--no-rpm-limit"), 2,
     "argument --no-rpm-limit: not allowed with argument --rpm-limit"),
    (("--allow-model", "o3", "--all-models"), 2,
     "argument --all-models: not allowed with argument --allow-model"),
    (("--group", MISSING, "--no-group"), 2, "not allowed with argument --group"),
]
BAD_COMMANDS = [  # (whole command line, exit status, message)
    (("group", "create", "--name", "g", "--limit-cents", "0"), 1,
     "hard_limit_cents: Input should be greater than or equal to 1"),
    (("group", "create", "--limit-cents", "5"), 2, "the following arguments are required: --name"),
    (("group", "create", "--name", " ", "--limit-cents", "5"), 1, "name: String should have"),
    (("group", "set", MISSING), 1, "Nothing to change: give --name, --limit-cents"),
    (("group", "set", MISSING, "--alert-at", "50", "--no-alerts"), 2, "not allowed with"),
    (("group", "get", "team-a"), 1, "Invalid group id: 'team-a' is not a UUID"),
    (("group", "get", MISSING), 1, f"Group not found: {MISSING} (in "),
    (("group", "delete", MISSING), 1, f"Group not found: {MISSING} (in "),
    (("tenant", "create", "--name", "t", "--monthly-ceiling-cents", "0"), 1,
     ("--monthly-ceiling-cents must be between 1 and 1000000000000, got 0; "
      "--no-monthly-ceiling removes the ceiling")),
    (("tenant", "set", MISSING, "--monthly-ceiling-cents", "5"), 1,
     f"Tenant not found: {MISSING} (in "),
    (("tenant", "set", MISSING), 2,
     "one of the arguments --monthly-ceiling-cents --no-monthly-ceiling is required"),
    (("tenant", "set", "acme", "--no-monthly-ceiling"), 1, "Invalid tenant id: 'acme'"),
]


def _assert_one_line_error(result, code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    if code == 1:  # ours: exactly one line
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    else:  # argparse's: the usage, then one line naming the flag
        assert "error: " in result.stderr.splitlines()[-1]
    assert message in result.stderr.splitlines()[-1], result.stderr


@pytest.mark.parametrize(("flags", "code", "message"), BAD_INPUTS)
def test_bad_policy_flags_are_one_line(dsn, agent_with_budget, flags, code, message):
    result = _cli(dsn, "budget", "set", "--agent", agent_with_budget, "--limit", "100", *flags)
    _assert_one_line_error(result, code, message)
    if code == 1 and "not found" not in message:
        # The same words as the API's 400 (tests/api covers the API's own answers).
        assert result.stderr.startswith("error: Invalid request body: ")


@pytest.mark.parametrize(("args", "code", "message"), BAD_COMMANDS)
def test_bad_group_and_tenant_commands_are_one_line(dsn, args, code, message):
    _assert_one_line_error(_cli(dsn, *args), code, message)


def test_a_refused_change_changes_nothing(dsn, agent_with_budget):
    before = _json(_cli(dsn, "budget", "get", "--agent", agent_with_budget, "--json"))
    assert _cli(dsn, "budget", "set", "--agent", agent_with_budget, "--limit", "7",
                "--rpm-limit", "5", "--group", MISSING).returncode == 1
    after = _json(_cli(dsn, "budget", "get", "--agent", agent_with_budget, "--json"))
    assert after == before


def test_group_round_trip(dsn):
    created = _new_group(dsn, "--topup-cents", "300", "--period", "weekly", "--alert-at", "90")
    gid = created["group_id"]
    assert (created["name"], created["hard_limit_cents"], created["remaining_cents"],
            created["period"], created["alert_thresholds_pct"], created["agent_ids"]) == (
        "team", 900, 300, "weekly", [90], [])
    assert gid in [g["group_id"] for g in _json(_cli(dsn, "group", "list", "--json"))["groups"]]
    assert _json(_cli(dsn, "group", "get", gid, "--json")) == created

    changed = _json(_cli(dsn, "group", "set", gid, "--name", "team-b", "--limit-cents", "2000",
                         "--topup-cents", "1000", "--no-alerts", "--json"))
    assert (changed["name"], changed["hard_limit_cents"], changed["remaining_cents"],
            changed["alert_thresholds_pct"], changed["period"]) == (
        "team-b", 2000, 1300, None, "weekly")
    renamed_only = _json(_cli(dsn, "group", "set", gid, "--name", "team-c", "--json"))
    assert {**renamed_only, "name": "team-b"} == changed  # only the flag given changed

    agent = _new_agent(dsn)
    joined = _json(_cli(dsn, "budget", "set", "--agent", agent, "--limit", "100", "--group",
                        gid, "--json"))
    assert joined["group_id"] == gid
    assert _json(_cli(dsn, "group", "get", gid, "--json"))["agent_ids"] == [agent]
    table = _cli(dsn, "group", "list", env_extra={"COLUMNS": "250"}).stdout
    assert gid in table and "team-c" in table

    deleted = _json(_cli(dsn, "group", "delete", gid, "--json"))
    assert deleted == {"group_id": gid, "deleted": True}
    assert _json(_cli(dsn, "budget", "get", "--agent", agent, "--json"))["group_id"] is None
    gone = _cli(dsn, "group", "get", gid)
    assert gone.returncode == 1 and f"Group not found: {gid}" in gone.stderr
    assert _cli(dsn, "group", "delete", gid, "--json").returncode == 1


async def test_over_http_the_json_is_the_databases(dsn, proxy_url):
    def cli(*args, http: bool):
        extra = {"CAP_BASE_URL": proxy_url} if http else None
        return asyncio.to_thread(_cli, dsn, *args, env_extra=extra)

    answers = {}
    for http in (False, True):
        agent = _json(await cli("agent", "create", "--json", http=http))["agent_id"]
        group = _json(await cli("group", "create", "--name", "g", "--limit-cents", "50",
                                "--alert-at", "75", "--json", http=http))
        budget = _json(await cli("budget", "set", "--agent", agent, "--limit", "20",
                                 "--rpm-limit", "9", "--allow-model", "gpt-5*", "--group",
                                 group["group_id"], "--json", http=http))
        patched = _json(await cli("group", "set", group["group_id"], "--period", "monthly",
                                  "--json", http=http))
        cleared = _json(await cli("budget", "set", "--agent", agent, "--limit", "20",
                                  "--no-rpm-limit", "--all-models", "--json", http=http))
        answers[http] = [_anonymous(x) for x in (group, budget, patched, cleared)]
    assert answers[False] == answers[True]
    assert answers[True][1]["rpm_limit"] == 9 and answers[True][3]["rpm_limit"] is None
    assert answers[True][2]["period"] == "monthly"


def _anonymous(obj: dict) -> dict:
    """The object without what differs between two runs: ids and times."""
    return {k: v for k, v in obj.items()
            if not k.endswith(("_id", "_ids", "_at")) and k != "agent_ids"}


@pytest.fixture(scope="module")
async def hosted_url(settings, dsn):
    hosted = settings.model_copy(update={"mode": Mode.hosted, "key_cache_ttl_s": 0.3})
    async with running_proxy(hosted, dsn) as url:
        yield url


async def _tenant_key(pool) -> str:
    tenant = await tenants.create_tenant(pool, f"cli-{uuid.uuid4().hex[:8]}")
    key = await tenants.create_key(pool, uuid.UUID(tenant["tenant_id"]), list(tenants.SCOPES))
    return key["api_key"]


async def test_another_tenants_group_is_not_found(dsn, pool, hosted_url):
    key_a, key_b = await _tenant_key(pool), await _tenant_key(pool)

    def cli(*args, key: str, http: bool = True):
        extra = {"CAP_MODE": "hosted", "CAP_API_KEY": key}
        if http:
            extra["CAP_BASE_URL"] = hosted_url
        return asyncio.to_thread(_cli, dsn, *args, env_extra=extra)

    group = _json(await cli("group", "create", "--name", "a", "--limit-cents", "10", "--json",
                            key=key_a))
    gid = group["group_id"]
    # Through the hosted API and on the database with the tenant's key: the same object.
    over_http = _json(await cli("group", "get", gid, "--json", key=key_a))
    assert over_http == _json(await cli("group", "get", gid, "--json", key=key_a, http=False))
    assert _json(await cli("group", "list", "--json", key=key_b)) == {"groups": []}

    agent_b = _json(await cli("agent", "create", "--json", key=key_b))["agent_id"]
    for http in (True, False):
        for args in (("group", "get", gid), ("group", "set", gid, "--name", "stolen"),
                     ("group", "delete", gid),
                     ("budget", "set", "--agent", agent_b, "--limit", "5", "--group", gid)):
            result = await cli(*args, key=key_b, http=http)
            assert result.returncode == 1, (args, http)
            assert f"Group not found: {gid}" in result.stderr, (args, http, result.stderr)
            assert result.stderr.count("\n") == 1
    assert _json(await cli("group", "get", gid, "--json", key=key_a)) == over_http


async def test_tenant_ceiling_create_set_and_list(dsn, pool):
    def cli(*args):
        return asyncio.to_thread(_cli, dsn, *args, env_extra={"COLUMNS": "250"})

    made = _json(await cli("tenant", "create", "--name", "capped", "--monthly-ceiling-cents",
                           "5000", "--json"))
    assert (made["name"], made["monthly_ceiling_cents"], made["month_spent_microcents"]) == (
        "capped", 5000, 0)
    tid = made["tenant_id"]
    plain = _json(await cli("tenant", "create", "--name", "free", "--json"))
    assert plain["monthly_ceiling_cents"] is None

    raised = _json(await cli("tenant", "set", tid, "--monthly-ceiling-cents", "7000", "--json"))
    assert raised["monthly_ceiling_cents"] == 7000 and raised["tenant_id"] == tid
    listed = {t["tenant_id"]: t for t in _json(await cli("tenant", "list", "--json"))}
    assert listed[tid]["monthly_ceiling_cents"] == 7000
    assert listed[plain["tenant_id"]]["monthly_ceiling_cents"] is None
    table = (await cli("tenant", "list")).stdout
    row = next(line for line in table.splitlines() if tid in line)
    assert [cell.strip() for cell in row.split("│")[2:5]] == ["capped", "7000", "0"]

    removed = _json(await cli("tenant", "set", tid, "--no-monthly-ceiling", "--json"))
    assert removed["monthly_ceiling_cents"] is None
    stored = await pool.fetchval(
        "SELECT monthly_ceiling_microcents FROM tenants WHERE id = $1", uuid.UUID(tid))
    assert stored is None


def _render(show, *args) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    show(console, *args)
    return console.file.getvalue()


def test_renderings_say_what_an_absent_policy_means():
    budget = {"agent_id": "a", "hard_limit_cents": 5, **POLICY_OFF, "period": "weekly",
              "period_resets_at": "2026-01-05T00:00:00Z", "tpm_limit": 1000,
              "alert_thresholds_pct": [50, 100]}
    text = _render(render.budget, budget)
    assert "│ rpm_limit            │ no limit" in text
    assert "│ tpm_limit            │ 1000" in text
    assert "│ allowed_models       │ all models" in text
    assert "│ alert_thresholds_pct │ 50%, 100%" in text
    assert "│ period_resets_at     │ 2026-01-05T00:00:00Z" in text

    group = {"group_id": "g1", "name": "n", "hard_limit_cents": 9, "available_cents": 4,
             "period": "none", "alert_thresholds_pct": None, "agent_ids": ["a", "b"]}
    text = _render(render.groups, [group])
    assert _cells(text, "g1") == ["g1", "n", "9", "4", "none", "none", "2"]
    assert "│ agent_ids            │ a, b" in _render(render.group, group)

    text = _render(render.tenants, [
        {"tenant_id": "t1", "name": "x", "monthly_ceiling_cents": 10,
         "month_spent_microcents": 1_500_000, "created_at": "2026-11-29T19:00:00.5Z"},
        {"tenant_id": "t2", "name": "y", "monthly_ceiling_cents": None,
         "month_spent_microcents": None, "created_at": "2026-11-29T19:00:00.5Z"}])
    assert _cells(text, "t1") == ["t1", "x", "10", "1.5", "2026-11-29 19:00:00"]
    assert _cells(text, "t2") == ["t2", "y", "none", "", "2026-11-29 19:00:00"]


def _cells(table: str, first: str) -> list[str]:
    row = next(line for line in table.splitlines() if line.startswith(f"│ {first} "))
    return [cell.strip() for cell in row.split("│")[1:-1]]
