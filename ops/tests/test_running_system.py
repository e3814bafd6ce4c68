"""The operating surface of the real processes (systemtests/harness.py): gunicorn with two
workers, a Celery worker and beat, our own PostgreSQL and redis-server on spare ports, the fake
providers. One run, in steps, because starting it costs most of the time:

1. metrics: webhooks spread over both gunicorn workers are counted once each in `/metrics`,
   summed from the files of several processes (Prometheus multiprocess mode), with the Celery
   worker's counters (model calls, sends) in the same scrape, and none of the counts a process
   of an earlier run left in the directory;
2. logs (LOG_FORMAT=json): every line of web, worker and beat parses as JSON; the request id a
   webhook was answered with is on the worker's lines for that message; no customer number or
   message text appears anywhere;
3. readiness: `/readyz/` turns 503 naming `broker` while our Redis is stopped, `database` while
   our PostgreSQL is stopped, `worker` (and `recording`) while the worker is stopped and a
   message waits, and 200 again after each recovery (the waiting message answered);
4. stopping (SIGTERM, as docker stops a container): every line the worker and beat printed up
   to their exit, Celery's own "Warm shutdown" included, is one JSON object.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from systemtests.harness import (
    ROOT,
    TEMPLATE_DATABASE,
    Customers,
    LocalPostgres,
    LocalRedis,
    Stack,
    app_environment,
    free_port,
    migrated_postgres_template,
    postgres_binaries,
    run_directory,
    start_fakes,
    start_stack,
    stop_process,
)
from telemetry.multiprocess import HOST

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SETTINGS = {
    "LOG_FORMAT": "json",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "WORKER_HEARTBEAT_STALE_SECONDS": "5",
    "READY_WORKER_HEARTBEAT_SECONDS": "4",
    "READY_RECORDING_SECONDS": "2",
    "READY_REPLY_SECONDS": "30",
    "SWEEP_INTERVAL_SECONDS": "2",
    "SWEEP_REQUEUE_AFTER_SECONDS": "5",
    "CONN_MAX_AGE": "0",
}


@dataclass
class Running:
    postgres: LocalPostgres
    redis: LocalRedis
    stack: Stack
    metrics_dir: Path
    logs: Path
    customers: Customers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.stack.port}"

    def readiness(self) -> tuple[int, set[str]]:
        try:
            response = requests.get(f"{self.url}/readyz/", timeout=10)
        except requests.RequestException:
            return 0, set()
        return response.status_code, {check["name"] for check in response.json()["checks"] if not check["ok"]}

    def deliver(self, token: str, customer: int) -> requests.Response:
        message = self.customers.message(token, customer)
        return requests.post(self.url + message.path, data=message.body, headers=message.headers, timeout=30)

    def scrape(self) -> dict[tuple[str, frozenset], float]:
        response = requests.get(f"{self.url}/metrics", timeout=10)
        assert response.status_code == 200
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


class QuietStack(Stack):
    """The harness's processes, with Celery's start banners off (`celery --quiet`), as
    docker-compose.yml runs them: with LOG_FORMAT=json every line is a log record."""

    def command(self, role: str) -> list[str]:
        command = super().command(role)
        if role in ("worker", "beat"):
            command.insert(command.index("-A"), "--quiet")
        return command


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.25)


@pytest.fixture
def running(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if postgres_binaries() is None or not shutil.which("redis-server"):
        pytest.skip("needs PostgreSQL's initdb/pg_ctl and redis-server")
    with contextlib.ExitStack() as cleanup:
        scratch = tmp_path  # logs kept by pytest for a look after a failure
        logs = scratch / "logs"
        logs.mkdir()
        # A directory of its own (as root the cluster belongs to `postgres`): systemtests/conftest.py.
        cluster = Path(tempfile.mkdtemp(prefix="whatsbot-ops-pg-"))
        cleanup.callback(shutil.rmtree, cluster, ignore_errors=True)
        template = migrated_postgres_template(run_directory(tmp_path_factory.getbasetemp()), logs / "migrate.log")
        postgres = LocalPostgres(cluster, template=template)
        postgres.start()
        cleanup.callback(lambda: postgres.stop("immediate") if postgres.is_running() else None)
        redis = LocalRedis(logs)
        redis.start()
        cleanup.callback(redis.stop)
        fakes, fake_port = start_fakes(logs, seed=17)
        cleanup.callback(stop_process, fakes)
        port = free_port()
        # No status webhooks from the fake Graph API: only the customers' webhooks are counted. The
        # model answers at once (the bench's 0.8 s only made the 16 replies wait on 4 slots).
        fake_config = {"webhook_base": f"http://127.0.0.1:{port}", "status_share": 0.0, "model_latency": 0.0}
        requests.post(f"http://127.0.0.1:{fake_port}/_bench/config", json=fake_config, timeout=10)
        metrics_dir = scratch / "metrics"
        metrics_dir.mkdir()
        leave_a_file_of_an_earlier_run(metrics_dir)
        env = app_environment(
            database_url=postgres.url(TEMPLATE_DATABASE), redis_url=redis.url, web_port=port, fake_port=fake_port,
            scratch=scratch, extra={**SETTINGS, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        )  # fmt: skip
        stack = QuietStack(ROOT, sys.executable, "ops", port, env, logs, web_workers=2, concurrency=4)
        start_stack(stack)
        cleanup.callback(stack.stop)
        customers = Customers(load_code=17, twilio_share=0.0, public_base=f"http://127.0.0.1:{port}", seed=17)
        yield Running(postgres, redis, stack, metrics_dir, logs, customers)


def test_the_running_system_reports_metrics_logs_and_readiness(running: Running) -> None:
    wait_for(lambda: running.readiness() == (200, set()), 60, "ready after start")
    request_ids = check_metrics_are_summed_across_processes(running)
    check_every_log_line_is_json_with_the_request_id_and_no_personal_data(running, request_ids)
    check_readiness_follows_redis_postgres_and_the_worker(running)
    check_worker_and_beat_stop_in_json(running)


EARLIER_RUN = f"counter_{HOST}-1.db"


def leave_a_file_of_an_earlier_run(directory: Path) -> None:
    """A gunicorn worker of this host's previous run counted 1000 webhooks."""
    values = MmapedDict(str(directory / EARLIER_RUN))
    labels = ["meta", "accepted"]
    key = mmap_key("whatsbot_webhooks", "whatsbot_webhooks_total", ["provider", "outcome"], labels, "Earlier run.")
    values.write_value(key, 1000.0, 0.0)
    values.close()


def check_metrics_are_summed_across_processes(running: Running) -> dict[str, str]:
    count = 16
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: (n, running.deliver(f"e2eops{n}", n)), range(count)))
    assert [response.status_code for _, response in answers] == [200] * count
    sent = ("whatsbot_sends_total", frozenset({"channel": "meta_whatsapp", "status": "sent", "error_code": ""}.items()))
    wait_for(lambda: running.scrape().get(sent) == count, 60, f"every reply sent and counted (logs: {running.logs})")

    samples = running.scrape()
    accepted = ("whatsbot_webhooks_total", frozenset({"provider": "meta", "outcome": "accepted"}.items()))
    assert samples[accepted] == count  # not the earlier run's 1000 on top
    assert not (running.metrics_dir / EARLIER_RUN).exists()  # removed before gunicorn's workers started
    assert samples[("whatsbot_webhook_ack_seconds_count", frozenset({"provider": "meta"}.items()))] == count
    assert samples[("whatsbot_recording_lag_seconds_count", frozenset())] == count
    assert samples[("whatsbot_reply_latency_seconds_count", frozenset({"channel": "meta_whatsapp"}.items()))] == count
    model = frozenset({"model": "gpt-5-mini", "purpose": "reply", "outcome": "ok"}.items())
    assert samples[("whatsbot_model_calls_total", model)] == count
    # The webhook counts come from more than one gunicorn worker's file, and add up.
    per_process = webhook_counts_per_file(running.metrics_dir)
    assert len(per_process) >= 2, per_process
    assert sum(per_process.values()) == count
    return {response.headers["X-Request-ID"]: f"e2eops{n}" for n, response in answers}


def webhook_counts_per_file(directory: Path) -> dict[str, float]:
    counts = {}
    for path in directory.glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "whatsbot_webhooks_total" and labels.get("outcome") == "accepted" and value:
                counts[path.name] = counts.get(path.name, 0) + value
    return counts


def check_every_log_line_is_json_with_the_request_id_and_no_personal_data(
    running: Running, request_ids: dict[str, str]
) -> None:
    lines: dict[str, list[dict]] = {}
    for role in ("web", "worker", "beat"):
        text = running.stack.log(role).read_text()
        assert text.strip(), role
        for line in text.splitlines():
            try:
                lines.setdefault(role, []).append(json.loads(line))
            except ValueError:
                pytest.fail(f"{role} wrote a line that is not JSON: {line[:200]}")
        for number in range(16):
            assert f"1555170000{number:02d}" not in text, role
        assert "Are you open on Saturday" not in text, role
    worker_ids = {line.get("request_id") for line in lines["worker"]}
    assert set(request_ids) <= worker_ids
    # The recorder's line and the send task's line of one message carry its request id.
    one = next(iter(request_ids))
    messages = [line["message"] for line in lines["worker"] if line.get("request_id") == one]
    assert any(message.startswith("Recorded inbound") for message in messages), messages
    assert any(message.startswith("Sent message") for message in messages), messages
    assert all(line.get("task_id") for line in lines["worker"] if line["message"].startswith("Sent message"))


def check_readiness_follows_redis_postgres_and_the_worker(running: Running) -> None:
    running.redis.stop()
    wait_for(lambda: "broker" in running.readiness()[1], 30, "broker named while Redis is down")
    assert running.readiness()[0] == 503
    running.redis.start()
    wait_for(lambda: running.readiness() == (200, set()), 60, "ready again after Redis is back")

    running.postgres.stop("fast")
    wait_for(lambda: "database" in running.readiness()[1], 30, "database named while PostgreSQL is down")
    assert running.readiness()[0] == 503
    running.postgres.start()
    wait_for(lambda: running.readiness() == (200, set()), 60, "ready again after PostgreSQL is back")

    stop_process(running.stack.processes["worker"])
    assert running.deliver("e2eopswaiting", 99).status_code == 200
    wait_for(lambda: {"worker", "recording"} <= running.readiness()[1], 30, "worker and recording named")
    running.stack.start("worker")
    running.stack.wait_ready("worker")
    wait_for(lambda: running.readiness() == (200, set()), 60, "ready again once the worker answered")


def check_worker_and_beat_stop_in_json(running: Running) -> None:
    processes = {role: running.stack.processes[role] for role in ("worker", "beat")}
    with ThreadPoolExecutor(max_workers=2) as pool:  # both at once: neither waits on the other
        list(pool.map(stop_process, processes.values()))
    assert {role: process.returncode for role, process in processes.items()} == {"worker": 0, "beat": 0}
    # The first worker's log went through a stop too (step 3), the second's just now.
    worker_logs = sorted(running.logs.glob("ops-worker*.log"))
    assert len(worker_logs) == 2, worker_logs
    for log in [*worker_logs, running.stack.log("beat")]:
        records = []
        for line in log.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"{log.name} wrote a line that is not JSON: {line[:200]}")
        if "worker" in log.name:
            assert any("Warm shutdown" in record["message"] for record in records), log.name
