"""The fault suite (issue 12): the real processes, broken while customers write.

Each scenario sends signed webhooks from customers of its own (one message each), breaks one
thing while they flow, and counts from what the fake providers accepted:

- lost: a message acknowledged with 2xx that got no reply accepted by a fake provider;
- duplicated: a message that got more than one reply;
- 5xx: answers of ours ≥ 500, to the customers' webhooks and to the providers' status webhooks;
- recovery: from the fault's end (process restarted, server up, provider healthy again, or the
  last webhook acknowledged for faults without an end) to the last reply accepted.

Like Meta, a customer's delivery that is not answered 2xx comes again (here every second, for up
to two minutes), so a non-2xx is honest while nothing could be stored. A reply is matched to its
message by the customer's number (each customer writes once); the apology the app sends when the
model stays unavailable counts as a reply, and is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from aiohttp import ClientSession

from systemtests.conftest import FUZZ_EXAMPLES, FUZZ_TEST, Fuzzing, Row, System
from systemtests.harness import ROOT, Customers, Events, Message, deliver

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

RECOVERY_BUDGET_S = 30.0
ANSWER_CAP_S = 60.0  # after the fault's end; what is unanswered by then is lost
QUIET_S = 14.0  # no new reply for longer than the sweep's stale age + interval: duplicates had their chance
REDELIVER_FOR_S = 120.0  # how long a customer's delivery is retried after non-2xx answers


@dataclass
class Scenario:
    name: str
    code: int  # customers' numbers are 1555<code><n>: no two scenarios share a customer
    messages: int
    rate: float  # messages per second
    twilio_share: float = 0.0
    fakes: dict[str, Any] = field(default_factory=dict)  # fake settings while it runs
    heal: dict[str, Any] = field(default_factory=dict)  # fake settings at the fault's end
    server_errors_allowed: bool = False


@dataclass
class Run:
    """What a running scenario knows: the system, its fakes' record, its messages."""

    system: System
    events: Events
    session: ClientSession
    messages: list[Message]
    started: float
    notes: list[str] = field(default_factory=list)

    async def refresh(self) -> None:
        await self.events.fetch(self.session)

    async def wait_for(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {seconds:.0f} s")
            await asyncio.sleep(0.1)
            await self.refresh()

    def replies(self) -> list[dict]:
        """What the fake providers accepted for this scenario's customers."""
        phones = {message.phone for message in self.messages}
        return [event for event in self.events.items if event["kind"] == "send" and event["to"] in phones]

    async def wait_for_replies(self, fault_ended: float) -> None:
        """Until every acknowledged message is answered and no reply came for QUIET_S (so a
        late duplicate has had its chance), or ANSWER_CAP_S after the fault's end."""
        acknowledged = {message.phone for message in self.messages if is_acknowledged(message)}
        last_change, seen = time.monotonic(), 0
        while time.monotonic() < fault_ended + ANSWER_CAP_S:
            await self.refresh()
            replies = self.replies()
            if len(replies) != seen:
                last_change, seen = time.monotonic(), len(replies)
            if acknowledged <= {reply["to"] for reply in replies} and time.monotonic() - last_change > QUIET_S:
                return
            await asyncio.sleep(0.5)


Fault = Callable[[Run], Awaitable[float]]  # breaks something, mends it, returns when it ended


async def deliver_like_a_provider(port: int, message: Message, due: float) -> float | None:
    """Deliver at `due`, again every second while the answer is not 2xx (bounded); when it was
    acknowledged, or None."""
    await asyncio.sleep(max(0.0, due - time.monotonic()))
    message.sent = due
    while True:
        await deliver(port, message, time.monotonic())
        if 200 <= message.codes[-1] < 300:
            return time.monotonic()
        if time.monotonic() > due + REDELIVER_FOR_S:
            return None
        await asyncio.sleep(1.0)


async def play(system: System, scenario: Scenario, fault: Fault) -> tuple[Row, Run]:
    customers = Customers(scenario.code, scenario.twilio_share, f"http://127.0.0.1:{system.web_port}", scenario.code)
    messages = [customers.message(f"e2efault{scenario.code}{n:04d}", n) for n in range(scenario.messages)]
    print(f"\n{scenario.name}: {len(messages)} messages at {scenario.rate:g}/s", flush=True)
    async with ClientSession() as session:
        events = Events(system.fake_port)
        webhook_base = f"http://127.0.0.1:{system.web_port}"
        await events.configure(session, reset=True, defaults=True, webhook_base=webhook_base, **scenario.fakes)
        run = Run(system, events, session, messages, time.monotonic())
        traffic = asyncio.gather(
            *(
                deliver_like_a_provider(system.web_port, message, run.started + index / scenario.rate)
                for index, message in enumerate(messages)
            )
        )
        try:
            fault_ended = await fault(run)
            acknowledged_at = await traffic
        finally:
            traffic.cancel()
            await events.configure(session, **scenario.heal)
        # Recovery counts from when everything was back and every customer had been answered 2xx.
        fault_ended = max([fault_ended, *(moment for moment in acknowledged_at if moment is not None)])
        await run.wait_for_replies(fault_ended)
        await run.refresh()
    return count(scenario, run, fault_ended), run


def count(scenario: Scenario, run: Run, fault_ended: float) -> Row:
    replies = run.replies()
    per_phone = Counter(reply["to"] for reply in replies)
    acknowledged = [m for m in run.messages if is_acknowledged(m)]
    lost = [m.token for m in acknowledged if not per_phone[m.phone]]
    duplicated = [m.token for m in run.messages if per_phone[m.phone] > 1]
    phones = {m.phone for m in run.messages}
    webhook_5xx = sum(code >= 500 for m in run.messages for code in m.codes)
    status_5xx = sum(1 for e in run.events.items if e["kind"] == "status" and e["to"] in phones and e["code"] >= 500)
    no_answer = sum(code == 0 for m in run.messages for code in m.codes)
    last_reply = max((reply["t"] for reply in replies), default=fault_ended)
    apologies = sum(1 for reply in replies if not reply["token"])
    faults = Counter(e["target"] for e in run.events.items if e["kind"] == "fault")
    restarts = [
        f"{role} exited ({code}), restarted" for t, role, code in run.system.supervisor.restarts if t >= run.started
    ]
    details = [
        *run.notes,
        *restarts,
        f"{len(acknowledged)}/{len(run.messages)} acknowledged",
        f"{sum(len(m.codes) for m in run.messages)} webhook deliveries ({webhook_5xx} 5xx, {no_answer} unanswered)",
        f"{status_5xx} status webhooks answered 5xx",
        f"{len(replies)} replies ({apologies} apologies)",
    ]
    if faults:
        details.append("injected: " + ", ".join(f"{n} {target}" for target, n in sorted(faults.items())))
    if lost:
        details.append(f"lost: {', '.join(lost[:5])}{' …' if len(lost) > 5 else ''}")
    if duplicated:
        details.append(f"duplicated: {', '.join(duplicated[:5])}{' …' if len(duplicated) > 5 else ''}")
    row = Row(scenario.name, len(run.messages), len(lost), len(duplicated), webhook_5xx + status_5xx)
    row.recovery_s = math.inf if lost else max(0.0, last_reply - fault_ended)
    row.details = "; ".join(details)
    row.unacknowledged = len(run.messages) - len(acknowledged)
    return row


def is_acknowledged(message: Message) -> bool:
    return any(200 <= code < 300 for code in message.codes)


Check = Callable[[Run, Row], list[str]]  # a scenario's own check: problems found (details may grow)


def check_scenario(system: System, scenario: Scenario, fault: Fault, check: Check | None = None) -> None:
    """Play the scenario, record its row (also when it breaks down), then assert: the table
    shows failures as they are."""
    logged_before = {path: path.stat().st_size for path in system.logs.glob("*.log")}
    try:
        row, run = asyncio.run(play(system, scenario, fault))
    except Exception as exc:
        system.rows.append(Row(scenario.name, scenario.messages, details=f"broke down: {exc}"))
        raise
    problems = check(run, row) if check else []
    system.rows.append(row)
    if row.lost:
        problems.append(f"{row.lost} lost")
    if row.duplicated:
        problems.append(f"{row.duplicated} duplicated")
    if row.server_errors and not scenario.server_errors_allowed:
        problems.append(f"{row.server_errors} answers 5xx")
    if row.recovery_s is not None and row.recovery_s > RECOVERY_BUDGET_S:
        problems.append(f"recovery {row.recovery_s:.1f} s > {RECOVERY_BUDGET_S:.0f} s")
    if row.unacknowledged:
        problems.append(f"{row.unacknowledged} never acknowledged in {REDELIVER_FOR_S:.0f} s of redeliveries")
    row.passed = not problems
    print(f"  {'pass' if row.passed else 'FAIL'}: {row.details}", flush=True)
    if problems:  # CI keeps only this output: what the worker and beat said meanwhile
        print(notable_log_lines(system.logs, since=logged_before), flush=True)
    assert not problems, f"{scenario.name}: {', '.join(problems)} ({row.details}); logs in {system.logs}"


NOTABLE = re.compile(r" (WARNING|ERROR|CRITICAL) | gone | abandoned")


def logged_since(logs: Path, *, since: dict[Path, int], pattern: re.Pattern[str]) -> list[str]:
    """The worker's and beat's log lines matching `pattern` logged since `since` (log sizes)."""
    lines = []
    for path in sorted([*logs.glob("*worker*.log"), *logs.glob("*beat*.log")]):
        with open(path, errors="replace") as log:
            log.seek(since.get(path, 0))
            lines += [f"{path.name}: {line.rstrip()[:300]}" for line in log if pattern.search(line)]
    return lines


def notable_log_lines(logs: Path, *, since: dict[Path, int], limit: int = 80) -> str:
    """The worker's and beat's warnings and errors logged since `since`, at most `limit`."""
    lines = logged_since(logs, since=since, pattern=NOTABLE)
    shown = lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])
    if not lines:
        return "no worker or beat warnings meanwhile"
    return "\n".join(["worker and beat warnings meanwhile:", *shown])


# --------------------------------------------------------------------------------------------
# Faults.


async def run_in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


def kill_worker_during(kind: str, at_least: int) -> Fault:
    """SIGKILL the worker once `at_least` model calls or sends are in flight at the fakes, then
    start a new one at once, as a supervisor would; the fault ends when it is ready."""

    async def fault(run: Run) -> float:
        stack = run.system.stack
        await run.wait_for(lambda: run.events.in_flight.get(kind, 0) >= at_least, 60, f"{at_least} {kind} in flight")
        in_flight = run.events.in_flight.get(kind, 0)
        await run_in_thread(stack.kill_and_restart, "worker")
        run.notes.append(f"worker killed with {in_flight} {kind} calls in flight")
        await run_in_thread(stack.wait_ready, "worker")
        return time.monotonic()

    return fault


def kill_worker_in_a_surge(at_least_queued: int) -> Fault:
    """SIGKILL the worker once `at_least_queued` tasks wait in the broker (more customers write
    than it answers at once), then start a new one at once; the fault ends when it is ready.
    What the dead worker had taken is in no queue now, while the periodic sweep takes a waiting
    message for one waiting its turn there (services/sweep.py, trust_broker)."""

    async def fault(run: Run) -> float:
        stack = run.system.stack
        broker = redis.Redis.from_url(run.system.redis.url)

        def queued() -> int:  # Kombu keeps each queue as a Redis list
            return sum(broker.llen(key) for key in broker.scan_iter() if broker.type(key) == b"list")

        await run.wait_for(lambda: queued() >= at_least_queued, 60, f"{at_least_queued} tasks queued")
        waiting, in_flight = queued(), run.events.in_flight.get("model", 0)
        await run_in_thread(stack.kill_and_restart, "worker")
        run.notes.append(f"worker killed with {waiting} tasks queued and {in_flight} model calls in flight")
        await run_in_thread(stack.wait_ready, "worker")
        return time.monotonic()

    return fault


def stop_server_during(server: str, after: float, down_for: float) -> Fault:
    """Stop our Redis or PostgreSQL `after` seconds into the traffic, start it again after
    `down_for`; the fault ends when it accepts connections again."""

    async def fault(run: Run) -> float:
        system = run.system
        await asyncio.sleep(max(0.0, run.started + after - time.monotonic()))
        try:
            if server == "redis":
                await run_in_thread(system.redis.stop)
            else:
                # A crash, not a shutdown: connections cut, in-flight transactions lost, recovery at start.
                await run_in_thread(system.postgres.stop, "immediate")
            run.notes.append(f"{server} down {down_for:g} s from {after:g} s into the traffic")
            await asyncio.sleep(down_for)
        finally:
            if server == "redis":
                await run_in_thread(system.redis.start)  # empty: no dump, no append-only file
            elif not system.postgres.is_running():
                await run_in_thread(system.postgres.start)
        return time.monotonic()

    return fault


async def no_fault_end(run: Run) -> float:
    """For faults that last the whole scenario: they end with the traffic (see `play`)."""
    return run.started


# --------------------------------------------------------------------------------------------
# Scenarios.


def test_a_worker_killed_during_model_calls_loses_and_repeats_no_reply(system: System) -> None:
    scenario = Scenario("worker SIGKILL mid-model-call", 11, 30, 5, fakes={"model_latency": 2.0})
    check_scenario(system, scenario, kill_worker_during("model", at_least=6))


def test_a_worker_killed_during_sends_loses_and_repeats_no_reply(system: System) -> None:
    slow_sends = {"model_latency": 0.3, "provider_latency": 3.0}
    scenario = Scenario("worker SIGKILL mid-send", 12, 30, 5, twilio_share=0.3, fakes=slow_sends)
    check_scenario(system, scenario, kill_worker_during("send", at_least=5))


def test_redis_stopped_and_restarted_empty_loses_and_repeats_no_reply(system: System) -> None:
    scenario = Scenario("Redis stopped, restarted empty", 13, 50, 4)
    check_scenario(system, scenario, stop_server_during("redis", after=3, down_for=5))


def test_postgresql_down_answers_non_2xx_and_never_2xx_without_a_row(system: System) -> None:
    def every_acknowledged_delivery_has_its_row(run: Run, row: Row) -> list[str]:
        with psycopg.connect(system.database_url) as connection:
            stored = {
                key for (key,) in connection.execute("SELECT provider_message_id FROM conversations_processedmessage")
            }
        # The dedup row stores the SHA-256 of the provider's id (ProcessedMessage.key_for).
        acknowledged = [m for m in run.messages if is_acknowledged(m)]
        missing = [m.token for m in acknowledged if hashlib.sha256(m.provider_id.encode()).hexdigest() not in stored]
        row.details += f"; {len(missing)} acknowledged without a row"
        return [f"{len(missing)} acknowledged without a row"] if missing else []

    scenario = Scenario("PostgreSQL down during webhooks", 14, 50, 4, server_errors_allowed=True)
    check_scenario(
        system, scenario, stop_server_during("postgres", after=3, down_for=5), every_acknowledged_delivery_has_its_row
    )


def test_openai_failing_30_percent_with_500_and_429_loses_and_repeats_no_reply(system: System) -> None:
    failing = {"model_failure_share": 0.3, "model_failure_codes": [500, 429], "retry_after_share": 0.5}
    scenario = Scenario("OpenAI 30 % 500/429", 15, 60, 4, fakes=failing, heal={"model_failure_share": 0.0})
    check_scenario(system, scenario, no_fault_end)


def test_graph_and_twilio_failing_30_percent_with_5xx_lose_and_repeat_no_reply(system: System) -> None:
    failing = {"provider_failure_share": 0.3, "provider_failure_codes": [500, 502, 503]}
    healed = {"provider_failure_share": 0.0}
    scenario = Scenario("Graph/Twilio 30 % 5xx", 16, 60, 4, twilio_share=0.5, fakes=failing, heal=healed)
    check_scenario(system, scenario, no_fault_end)


def test_a_status_before_its_send_commits_leaves_every_reply_delivered(system: System) -> None:
    def every_reply_ends_delivered(run: Run, row: Row) -> list[str]:
        with psycopg.connect(system.database_url) as connection:
            states: dict[str, int] = dict(
                connection.execute(
                    "SELECT reply.status, count(*) FROM conversations_message reply "
                    "JOIN conversations_message customer ON reply.in_reply_to_id = customer.id "
                    "WHERE reply.author = 'bot' AND customer.text LIKE %s GROUP BY reply.status",
                    [f"%(e2efault{scenario.code}%"],
                ).fetchall()
            )
        row.details += f"; replies by status: {states}"
        return [] if set(states) == {"delivered"} else [f"replies not all delivered: {states}"]

    scenario = Scenario("status before its send commits", 17, 40, 4, twilio_share=0.5, fakes={"statuses_first": True})
    check_scenario(system, scenario, no_fault_end, every_reply_ends_delivered)


def test_a_worker_killed_in_a_surge_loses_and_repeats_no_reply(system: System) -> None:
    # Last of the scenarios: the restarted worker's backlog of copies must not shape the others.
    # 150 messages a second for under three seconds: more than the pool's 200 slots hold at once
    # (each message holds one through the burst window and the model call), so tasks queue in
    # Redis. Short, so that the recovery measures the fault, not the backlog's draining.
    scenario = Scenario("worker SIGKILL in a surge (tasks queued)", 18, 400, 150, fakes={"model_latency": 2.0})
    logged_before = {path: path.stat().st_size for path in system.logs.glob("*.log")}

    def every_task_acknowledged(run: Run, row: Row) -> list[str]:
        # Many tasks end together here: an acknowledgement that fails is logged CRITICAL ("Couldn't
        # ack") and the task handed out again later.
        critical = logged_since(system.logs, since=logged_before, pattern=re.compile(" CRITICAL "))
        row.details += f"; {len(critical)} CRITICAL log lines" + (f", first: {critical[0][:160]}" if critical else "")
        return [f"{len(critical)} CRITICAL log lines"] if critical else []

    check_scenario(system, scenario, kill_worker_in_a_surge(at_least_queued=10), every_task_acknowledged)


@pytest.mark.timeout(1500)
def test_ten_thousand_fuzzed_signed_bodies_get_no_5xx_and_every_2xx_is_recorded(
    system: System, fuzzing: Fuzzing | None
) -> None:
    if fuzzing is None:
        pytest.skip(f"{FUZZ_TEST.relative_to(ROOT)} is not in this tree")
    try:
        code = fuzzing.process.wait(timeout=1400)
    except subprocess.TimeoutExpired:
        code = None
    output = fuzzing.log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
    row = Row(f"{2 * FUZZ_EXAMPLES:,} fuzzed signed bodies".replace(",", " "), 2 * FUZZ_EXAMPLES)
    row.passed = code == 0
    row.lost, row.server_errors = (0, 0) if row.passed else (None, None)  # the fuzz test asserts both
    row.duplicated = None  # no replies involved: parsing and recording only
    row.details = (
        f"{FUZZ_TEST.name} (hypothesis, Django's test client, PostgreSQL), niced beside the scenarios: "
        f"{output[-1].strip('= ')} after {time.monotonic() - fuzzing.started:.0f} s"
    )
    system.rows.append(row)
    assert row.passed, "\n".join(output[-80:])
