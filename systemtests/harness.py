"""The whole system on this machine, for the fault suite (systemtests/) and the end-to-end bench
(bench/e2e.py): one implementation of each piece both need.

- Fake OpenAI (`POST /v1/responses`), Graph API and Twilio REST API in one aiohttp process
  (`python -m systemtests.harness --fakes PORT`), with latency and injected faults: a share of
  model calls answered 500/429 (some 429s with Retry-After), a share of provider sends answered
  5xx, and status webhooks posted before the send is answered. Like Meta and Twilio, the fakes
  post signed `sent`/`delivered` status webhooks and retry them while the app answers non-2xx.
  Every call is recorded with its time.monotonic() (one clock for all processes on Linux).
- Customers: signed Meta webhooks (Twilio form posts for a share), each carrying a token the
  fake model echoes, so a reply that reaches a fake provider is matched to its message.
- Our own PostgreSQL cluster (`initdb` in a temporary directory) and `redis-server`, on spare
  ports, stoppable and restartable; never the machine's shared ones.
- The production processes (gunicorn, a Celery worker with a thread pool, Celery beat),
  configured only by environment variables, each in its own session so it can be killed whole.

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from aiohttp import ClientSession

ROOT = Path(__file__).resolve().parent.parent
META_FIXTURE = ROOT / "conversations" / "tests" / "fixtures" / "meta" / "text.json"
TWILIO_FIXTURE = ROOT / "conversations" / "tests" / "fixtures" / "twilio" / "whatsapp_text.json"
RESULTS_FILE = ROOT / "bench" / "RESULTS.md"
# The database of migrated_postgres_template's clusters.
TEMPLATE_DATABASE = "whatsbot"

APP_SECRET = "e2e-meta-app-secret"
ACCESS_TOKEN = "e2e-graph-token"
PHONE_NUMBER_ID = "110000000000001"  # the business number of the Meta fixture
TWILIO_SID = "AC" + "e2e0" * 8
TWILIO_TOKEN = "e2e-twilio-auth-token"
TWILIO_BUSINESS = "whatsapp:+15550001234"
TOKEN = re.compile(r"\be2e[a-z]*\d+\b")


# --------------------------------------------------------------------------------------------
# Fake OpenAI, Graph API and Twilio REST API: a process of their own, so their work does not
# distort the load generator's clock. Read and steered through /_bench/events and /_bench/config.

FAKE_DEFAULTS: dict[str, Any] = {
    "model_latency": 0.8,
    "provider_latency": 0.05,
    "status_share": 1.0,
    "status_delays": [0.2, 1.0],
    # Faults, off unless a scenario turns them on.
    "model_failure_share": 0.0,
    "model_failure_codes": [500, 429],
    "retry_after_share": 0.5,  # of the 429s: with `Retry-After: 1`
    "provider_failure_share": 0.0,
    "provider_failure_codes": [500, 502, 503],
    "statuses_first": False,  # post sent+delivered, then answer the send
    # Meta retries a non-2xx webhook for days, Twilio a failed connection: the fakes for this long.
    "status_retry_seconds": 120.0,
}


def schema_instance(schema: dict, defs: dict) -> Any:
    """The emptiest valid value of a JSON schema (null where allowed): an extraction that found nothing."""
    if "$ref" in schema:
        return schema_instance(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = schema[key]
            if any(option.get("type") == "null" for option in options):
                return None
            return schema_instance(options[0], defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        if "null" in kind:
            return None
        kind = kind[0]
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: schema_instance(value, defs) for name, value in properties.items()}
    return {"array": [], "string": "", "integer": 0, "number": 0, "boolean": False}.get(kind)


def openai_response(text: str, model: str, number: int) -> dict:
    return {
        "id": f"resp_e2e{number}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": f"msg_e2e{number}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 400,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 430,
        },
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def newest_user_token(items: list) -> str:
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            match = TOKEN.search(str(content or ""))
            return match.group() if match else ""
    return ""


def twilio_signature(url: str, params: dict[str, str]) -> str:
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def meta_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def digits(address: str) -> str:
    """A customer's number however a provider writes it (`+1555…`, `whatsapp:+1555…`, `1555…`)."""
    return "".join(character for character in address if character.isdigit())


def serve_fakes(port: int, seed: int) -> None:
    from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

    events: list[dict] = []
    config = json.loads(json.dumps(FAKE_DEFAULTS))
    numbers = iter(range(1, 10**9))
    chance = random.Random(seed)
    in_flight: Counter[str] = Counter()  # model calls and sends being answered right now
    twilio_created: list[dict] = []  # Twilio's message resources, for the Messages list (lookups)
    pending: set[asyncio.Task] = set()
    session: dict[str, ClientSession] = {}

    def later(delay: float, coroutine: Coroutine) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            await coroutine

        task = asyncio.create_task(run())
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def post_status(url: str, body: bytes, headers: dict[str, str], to: str) -> None:
        # Status webhooks go to the app under test only, never anywhere a payload might point.
        if urlsplit(url).hostname != "127.0.0.1":
            return
        if "client" not in session:
            session["client"] = ClientSession(
                connector=TCPConnector(force_close=True, limit=64), timeout=ClientTimeout(total=30)
            )
        deadline = time.monotonic() + config["status_retry_seconds"]
        pause = 0.5
        while True:
            started = time.monotonic()
            try:
                async with session["client"].post(url, data=body, headers=headers) as response:
                    await response.read()
                    code = response.status
            except Exception:
                code = 0
            elapsed = (time.monotonic() - started) * 1000
            events.append({"kind": "status", "t": time.monotonic(), "ms": elapsed, "code": code, "to": to})
            if 200 <= code < 300 or time.monotonic() + pause > deadline:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 8.0)

    async def send_statuses(posts: list[tuple[str, bytes, dict[str, str]]], recipient: str) -> None:
        """`sent` then `delivered`: awaited before the send is answered when `statuses_first`
        (a status that beats the sender's own commit), else later, like the real providers."""
        if chance.random() >= config["status_share"]:
            return
        if config["statuses_first"]:
            for url, body, headers in posts:
                await post_status(url, body, headers, digits(recipient))
            return
        for delay, (url, body, headers) in zip(config["status_delays"], posts, strict=False):
            later(delay, post_status(url, body, headers, digits(recipient)))

    def fault(target: str, shares: str, codes: str) -> tuple[int, dict[str, str]] | None:
        """An injected failure (status, headers) for this call, or None."""
        if chance.random() >= config[shares]:
            return None
        status = chance.choice(config[codes])
        headers = {"Retry-After": "1"} if status == 429 and chance.random() < config["retry_after_share"] else {}
        events.append({"kind": "fault", "target": target, "code": status, "t": time.monotonic()})
        return status, headers

    async def hold(kind: str, seconds: float) -> None:
        """The provider's latency, counted as in flight meanwhile (what a killed worker leaves)."""
        in_flight[kind] += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            in_flight[kind] -= 1

    async def responses(request: web.Request) -> web.Response:
        body = await request.json()
        injected = fault("model", "model_failure_share", "model_failure_codes")
        if injected:
            status, headers = injected
            kind, code = ("server_error", None) if status >= 500 else ("requests", "rate_limit_exceeded")
            error = {"message": "Injected fault", "type": kind, "param": None, "code": code}
            return web.json_response({"error": error}, status=status, headers=headers)
        number = next(numbers)
        text_format = (body.get("text") or {}).get("format") or {}
        token = ""
        if text_format.get("type") == "json_schema":
            purpose = "structured"
            schema = text_format.get("schema") or {}
            text = json.dumps(schema_instance(schema, schema.get("$defs", {})))
        elif isinstance(body.get("input"), list):
            purpose = "reply"
            token = newest_user_token(body["input"])
            text = f"Thanks for writing ({token or 'no token'}). We are open 9:00-17:00, Monday to Saturday."
        else:
            purpose = "other"  # summaries: a string input and no schema
            text = "The customer asked about opening hours; we answered."
        events.append({"kind": "model", "purpose": purpose, "token": token, "t": time.monotonic()})
        await hold("model", config["model_latency"])
        return web.json_response(openai_response(text, body.get("model", "gpt-e2e"), number))

    async def conversations(request: web.Request) -> web.Response:
        # OPENAI_USE_CONVERSATIONS mode: enough of the Conversations API to run.
        events.append({"kind": "model", "purpose": "conversations", "token": "", "t": time.monotonic()})
        await asyncio.sleep(config["provider_latency"])
        if request.path.endswith("/items"):
            return web.json_response({"object": "list", "data": [], "first_id": "", "last_id": "", "has_more": False})
        return web.json_response({"id": f"conv_e2e{next(numbers)}", "object": "conversation", "created_at": 0})

    def record_send(provider: str, text: str, recipient: str, arrived: float) -> None:
        # Recorded once the provider has taken the message, even if the sender hung up meanwhile
        # (aiohttp does not cancel a handler whose client went away): the customer gets it.
        match = TOKEN.search(text)
        events.append(
            {
                "kind": "send",
                "provider": provider,
                "token": match.group() if match else "",
                "to": digits(recipient),
                "t_in": arrived,
                "t": time.monotonic(),
            }
        )

    async def graph(request: web.Request) -> web.Response:
        body = await request.json()
        injected = fault("meta", "provider_failure_share", "provider_failure_codes")
        if injected:
            status, headers = injected
            error = {"message": "(#131000) Something went wrong", "type": "OAuthException", "code": 131000}
            return web.json_response({"error": error}, status=status, headers=headers)
        if body.get("status") == "read":  # read receipt + typing indicator
            events.append({"kind": "read", "t": time.monotonic()})
            await asyncio.sleep(config["provider_latency"])
            return web.json_response({"success": True})
        arrived = time.monotonic()
        await hold("send", config["provider_latency"])
        wamid = f"wamid.E2EOUT{next(numbers):09d}"
        recipient = str(body.get("to") or body.get("recipient") or "")
        record_send("meta", str((body.get("text") or {}).get("body", "")), recipient, arrived)
        posts = []
        for state in ("sent", "delivered"):
            status_body = meta_status_body(wamid, state, recipient, str(body.get("biz_opaque_callback_data", "")))
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(status_body)}
            posts.append((config["webhook_base"] + "/webhooks/meta/", status_body, headers))
        await send_statuses(posts, recipient)
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": recipient, "wa_id": recipient.lstrip("+")}],
                "messages": [{"id": wamid}],
            }
        )

    async def twilio(request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        injected = fault("twilio", "provider_failure_share", "provider_failure_codes")
        if injected:
            status, headers = injected
            error = {"code": 20000 + status, "message": "Injected fault", "status": status}
            return web.json_response(error, status=status, headers=headers)
        arrived = time.monotonic()
        await hold("send", config["provider_latency"])
        sid = "SM" + hashlib.md5(f"out{next(numbers)}".encode()).hexdigest()
        record_send("twilio", form.get("Body", ""), form.get("To", ""), arrived)
        created = {
            "sid": sid, "account_sid": TWILIO_SID, "status": "queued", "to": form.get("To"),
            "from": form.get("From"), "body": form.get("Body"), "num_segments": "1", "direction": "outbound-api",
            "date_created": email.utils.format_datetime(datetime.now(UTC)),
        }  # fmt: skip
        twilio_created.append(created)
        callback = form.get("StatusCallback", "")
        if callback:
            posts = []
            for state in ("sent", "delivered"):
                params = {
                    "MessageSid": sid, "SmsSid": sid, "MessageStatus": state, "SmsStatus": state,
                    "AccountSid": TWILIO_SID, "From": form.get("From", ""), "To": form.get("To", ""),
                    "ApiVersion": "2010-04-01", "ChannelPrefix": "whatsapp",
                }  # fmt: skip
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": twilio_signature(callback, params),
                }
                posts.append((callback, urlencode(params).encode(), headers))
            await send_statuses(posts, form.get("To", ""))
        return web.json_response(created, status=201)

    async def twilio_list(request: web.Request) -> web.Response:
        """The Messages list filtered by To and From, newest first: how the app looks up a send
        whose outcome it does not know (one page; the app reads at most one)."""
        to, sender = request.query.get("To", ""), request.query.get("From", "")
        size = int(request.query.get("PageSize", "50"))
        found = [m for m in reversed(twilio_created) if m["to"] == to and m["from"] == sender][:size]
        page = {
            "messages": found, "page": 0, "page_size": size, "start": 0, "end": max(0, len(found) - 1),
            "uri": request.path_qs, "first_page_uri": request.path_qs, "next_page_uri": None, "previous_page_uri": None,
        }  # fmt: skip
        return web.json_response(page)

    async def bench_config(request: web.Request) -> web.Response:
        changes = await request.json()
        if changes.pop("reset", False):
            events.clear()
        if changes.pop("defaults", False):
            config.update(json.loads(json.dumps(FAKE_DEFAULTS)))
        config.update(changes)
        return web.json_response(config)

    async def bench_events(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.json_response({"events": events[since:], "total": len(events), "in_flight": dict(in_flight)})

    async def close_client(app: web.Application) -> None:
        if "client" in session:
            await session["client"].close()

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/conversations", conversations)
    app.router.add_post("/v1/conversations/{conversation}/items", conversations)
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", twilio)
    app.router.add_get("/2010-04-01/Accounts/{sid}/Messages.json", twilio_list)
    app.router.add_post("/{version}/{phone_number_id}/messages", graph)
    app.router.add_post("/_bench/config", bench_config)
    app.router.add_get("/_bench/events", bench_events)
    app.on_cleanup.append(close_client)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def meta_status_body(wamid: str, status: str, recipient: str, client_ref: str) -> bytes:
    state: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient.lstrip("+"),
    }
    if client_ref:
        state["biz_opaque_callback_data"] = client_ref
    if status == "sent":
        state["pricing"] = {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "service",
        }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001234", "phone_number_id": PHONE_NUMBER_ID},
        "statuses": [state],
    }
    change = {"value": value, "field": "messages"}
    envelope = {"object": "whatsapp_business_account", "entry": [{"id": "120000000000001", "changes": [change]}]}
    return json.dumps(envelope, separators=(",", ":")).encode()


def start_fakes(logs: Path, seed: int) -> tuple[subprocess.Popen, int]:
    """The fake providers in a process (and session) of their own; (process, port)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "systemtests.harness", "--fakes", str(port), "--seed", str(seed)],
        cwd=ROOT, stdout=open(logs / "fakes.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, process, 30, "the fake providers")
    except BaseException:
        stop_process(process)
        raise
    return process, port


class Events:
    """The fake providers' record, fetched incrementally (aiohttp session of the caller)."""

    def __init__(self, fake_port: int) -> None:
        self.url = f"http://127.0.0.1:{fake_port}"
        self.items: list[dict] = []
        self.in_flight: dict[str, int] = {}

    async def fetch(self, session: ClientSession) -> int:
        async with session.get(f"{self.url}/_bench/events", params={"since": str(len(self.items))}) as response:
            data = await response.json()
        self.items.extend(data["events"])
        self.in_flight = data.get("in_flight", {})
        return len(data["events"])

    async def configure(self, session: ClientSession, **changes: Any) -> None:
        async with session.post(f"{self.url}/_bench/config", json=changes) as response:
            await response.read()
        if changes.get("reset"):
            self.items = []


# --------------------------------------------------------------------------------------------
# Customers: signed webhooks, built before a load starts so signing costs nothing during it.


@dataclass
class Message:
    token: str
    customer: int
    seq: int  # the customer's n-th message in this load
    path: str
    body: bytes
    headers: dict[str, str]
    phone: str = ""  # digits only: how the fake providers record a reply's recipient
    provider_id: str = ""  # the wamid or MessageSid
    sent: float | None = None  # when the customer sent it (first delivery; scheduled time in open loop)
    acks: list[float] = field(default_factory=list)  # ms, one per delivery
    codes: list[int] = field(default_factory=list)


class Customers:
    """Builds realistic signed deliveries: Meta `text` fixture bodies (or Twilio form posts)."""

    def __init__(self, load_code: int, twilio_share: float, public_base: str, seed: int) -> None:
        self.load_code, self.twilio_share, self.public_base = load_code, twilio_share, public_base
        self.meta_template = json.loads(META_FIXTURE.read_bytes())
        self.twilio_template = json.loads(TWILIO_FIXTURE.read_bytes())
        self.chance = random.Random(seed)
        self.uses_twilio: dict[int, bool] = {}
        self.seqs: Counter[int] = Counter()

    def message(self, token: str, customer: int) -> Message:
        phone = f"1555{self.load_code}{customer:06d}"
        if customer not in self.uses_twilio:
            self.uses_twilio[customer] = self.chance.random() < self.twilio_share
        seq = self.seqs[customer]
        self.seqs[customer] += 1
        text = f"Hi! Are you open on Saturday afternoon? ({token})"
        if self.uses_twilio[customer]:
            params = dict(self.twilio_template)
            sid = "SM" + hashlib.md5(token.encode()).hexdigest()
            params.update(
                MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, AccountSid=TWILIO_SID, To=TWILIO_BUSINESS,
                From=f"whatsapp:+{phone}", WaId=phone, ProfileName=f"Customer {customer}", Body=text,
            )  # fmt: skip
            params.pop("ChannelMetadata", None)
            path = "/webhooks/twilio/"
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature(self.public_base + path, params),
            }
            return Message(token, customer, seq, path, urlencode(params).encode(), headers, phone, sid)
        envelope = json.loads(json.dumps(self.meta_template))
        value = envelope["entry"][0]["changes"][0]["value"]
        contact, message = value["contacts"][0], value["messages"][0]
        user_id = f"US.E2E{self.load_code}{customer:06d}"
        contact.update(wa_id=phone, user_id=user_id, profile={"name": f"Customer {customer}"})
        message.update(id=f"wamid.E2E{token}", timestamp=str(int(time.time())), text={"body": text})
        message.update({"from": phone, "from_user_id": user_id})
        body = json.dumps(envelope, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)}
        return Message(token, customer, seq, "/webhooks/meta/", body, headers, phone, message["id"])


async def http_post(port: int, path: str, body: bytes, headers: dict[str, str], timeout: float = 30) -> int:
    """One request on its own connection (gunicorn's sync workers close every connection);
    0 when there was no answer."""

    async def exchange() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            head += f"Content-Length: {len(body)}\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
            writer.write(head.encode() + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            return status
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError):
        return 0


async def deliver(port: int, message: Message, started: float) -> None:
    code = await http_post(port, message.path, message.body, message.headers)
    message.acks.append((time.monotonic() - started) * 1000)
    message.codes.append(code)


# --------------------------------------------------------------------------------------------
# Ports, processes, our own PostgreSQL and Redis.


def free_port() -> int:
    """A port nobody listens on, for a server about to start (the one copy: tests, benches).

    Chosen below the kernel's ephemeral range where it can be: outgoing connections take their
    local ports from that range, so a port probed there can be taken by any test's client
    before the server binds it (a flaky "address in use")."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 1024
    # SystemRandom: a seeded `random` (hypothesis, a test's own seed) would give every xdist
    # worker the same ports in the same order.
    below = range(10000, ephemeral_low)
    candidates = [*random.SystemRandom().sample(below, min(50, len(below))), 0]
    for candidate in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def wait_for_port(port: int, process: subprocess.Popen | None, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {seconds:.0f} s")


def stop_process(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM to the process's session (graceful), SIGKILL to whatever is left after `grace`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the session
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def load_average() -> float:
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def postgres_binaries() -> Path | None:
    """The directory of initdb/pg_ctl: on PATH (Debian links them into /usr/local/bin), else the
    newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    return versions[-1].parent if versions else None


class LocalPostgres:
    """A PostgreSQL cluster of our own in a temporary directory, on a spare port, trust auth on
    127.0.0.1 and a socket in that directory. fsync is off: a crash of the machine would lose the
    cluster, which the suite throws away anyway; a crash of PostgreSQL alone loses nothing
    committed (the OS still has the pages). PostgreSQL refuses to run as root: as root the
    cluster belongs to the `postgres` user."""

    def __init__(self, directory: Path, template: Path | None = None) -> None:
        """A new cluster (`initdb`), or a copy of `template`, the data directory of a stopped one."""
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("initdb not found (apt-get install postgresql)")
        self.bin, self.directory, self.port = binaries, directory, free_port()
        self.data = directory / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(directory, self.user)
        if template is None:
            self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
            return
        shutil.copytree(template, self.data, symlinks=True)
        if self.user:
            for path in [self.data, *self.data.rglob("*")]:
                shutil.chown(path, self.user)

    @property
    def admin_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [str(self.bin / program), *args], user=self.user, cwd=self.directory, check=True, timeout=timeout,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        log = str(self.directory / "postgres.log")
        self.run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "120", "start", timeout=150)

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects everyone and shuts down cleanly; `immediate` is a crash (recovery at start)."""
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", timeout=90)

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


def migrated_postgres_template(home: Path, log: Path) -> Path:
    """The data directory of a stopped cluster whose database `TEMPLATE_DATABASE` is migrated
    (LocalPostgres copies it), made in `home` by the first caller; the others (the other xdist
    workers of a run) wait for it. initdb and migrate cost each cluster some 4 s of CPU (its
    server's included) and more of wall; a copy costs a tenth of a second."""
    import fcntl

    template = home / "postgres-template"
    with open(home / "postgres-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if template.exists():
            return template
        # Not under `home` while it runs: as root the cluster belongs to `postgres`, which may
        # not enter pytest's directories.
        scratch = Path(tempfile.mkdtemp(prefix="whatsbot-pg-template-"))
        try:
            postgres = LocalPostgres(scratch)
            postgres.start()
            try:
                database_url = postgres.create_database(TEMPLATE_DATABASE)
                env = app_environment(
                    database_url=database_url, redis_url="", web_port=0, fake_port=0, scratch=scratch, extra={}
                )
                migrate(ROOT, sys.executable, env, log)
            finally:
                postgres.stop("fast")
            shutil.move(postgres.data, home / "postgres-template.partial")
            os.rename(home / "postgres-template.partial", template)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return template


def run_directory(basetemp: Path) -> Path:
    """The directory of this pytest run, shared by its xdist workers (each has its own basetemp in
    it); without xdist the basetemp itself."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


class LocalRedis:
    """A `redis-server` of our own on a spare port, in memory only: stopped, it restarts empty."""

    def __init__(self, directory: Path) -> None:
        if not shutil.which("redis-server"):
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        self.directory, self.port = directory, free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.starts += 1
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdout=open(self.directory / f"redis-{self.starts}.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_for_port(self.port, self.process, 30, "redis-server")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


# --------------------------------------------------------------------------------------------
# The app's processes, as production runs them (docker-compose.yml's web, worker and beat).


def app_environment(
    *, database_url: str, redis_url: str, web_port: int, fake_port: int, scratch: Path, extra: dict[str, str]
) -> dict[str, str]:
    fake = f"http://127.0.0.1:{fake_port}"
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        DEBUG="false", SECRET_KEY="e2e-bench-secret-key-" + "x" * 40, SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1", PUBLIC_BASE_URL=f"http://127.0.0.1:{web_port}",
        DATABASE_URL=database_url, REDIS_URL=redis_url, MEDIA_ROOT=str(scratch / "media"),
        WHATSAPP_APP_SECRET=APP_SECRET, WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN, WHATSAPP_VERIFY_TOKEN="e2e-verify",
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID, WHATSAPP_GRAPH_URL=fake,
        TWILIO_ACCOUNT_SID=TWILIO_SID, TWILIO_AUTH_TOKEN=TWILIO_TOKEN, TWILIO_API_URL=fake,
        OPENAI_API_KEY="sk-e2e-bench", OPENAI_BASE_URL=f"{fake}/v1", BURST_WINDOW_SECONDS="0",
        # A developer's .env must not configure the bench (trees that read ENV_FILE; older ones
        # read .env, where these explicit values still win).
        ENV_FILE="",
    )  # fmt: skip
    env.update(extra)
    return env


def migrate(checkout: Path, python: str, env: dict[str, str], log: Path) -> None:
    with open(log, "w") as output:
        subprocess.run(
            [python, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=checkout, env=env, stdout=output, stderr=subprocess.STDOUT, check=True, timeout=600,
        )  # fmt: skip


@dataclass
class Stack:
    """gunicorn, a Celery worker and Celery beat of one checkout, each in its own session: a
    role can be killed whole (SIGKILL to the session) and started again."""

    checkout: Path
    python: str
    name: str
    port: int
    env: dict[str, str]
    logs: Path
    web_workers: int = 4
    # The worker as docker-compose.yml runs it: gevent, 200 slots, 20 pooled connections.
    concurrency: int = 200
    pool: str = "gevent"
    worker_processes: int = 1  # roles "worker", "worker2", … (one pool each, as compose's replicas)
    # The workers' CPU priority (nice): what a deployment gives them under the web tier's.
    worker_nice: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)
    # Held while a role is killed or started: a supervisor must not restart it meanwhile.
    lock: threading.RLock = field(default_factory=threading.RLock)

    def command(self, role: str) -> list[str]:
        python = self.python
        if role.startswith("worker"):
            return ["nice", "-n", str(self.worker_nice), python, "-m", "celery", "-A", "whatsbot_project", "worker",
                    "--pool", self.pool, "--concurrency", str(self.concurrency), "--loglevel", "INFO",
                    "--hostname", f"{role}@%h"]  # fmt: skip
        return {
            "web": [python, "-m", "gunicorn", "whatsbot_project.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                    "--workers", str(self.web_workers), "--access-logfile", "-", "--no-control-socket"],
            "beat": [python, "-m", "celery", "-A", "whatsbot_project", "beat", "--loglevel", "INFO",
                     "--schedule", str(self.logs / f"celerybeat-{self.name}")],
        }[role]  # fmt: skip

    def log(self, role: str) -> Path:
        """The log of the role's latest start (one file per start, so `ready` is this start's)."""
        suffix = f"-{self.starts[role]}" if self.starts[role] > 1 else ""
        return self.logs / f"{self.name}-{role}{suffix}.log"

    def start(self, role: str, extra_env: dict[str, str] | None = None) -> None:
        with self.lock:
            self.starts[role] += 1
            env = {**self.env, **(extra_env or {})}
            if role.startswith("worker"):
                # Its pools' size, as compose. `--concurrency` too: the bench also runs older trees.
                env.setdefault("WORKER_CONCURRENCY", str(self.concurrency))
                if self.pool == "gevent":
                    env.setdefault("DATABASE_POOL_SIZE", "20")
            with open(self.log(role), "w") as log:
                self.processes[role] = subprocess.Popen(
                    self.command(role), cwd=self.checkout, env=env,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip

    def wait_ready(self, role: str, seconds: float = 90) -> None:
        if role == "web":
            wait_for_port(self.port, self.processes["web"], seconds, "gunicorn")
        elif role.startswith("worker"):
            deadline = time.monotonic() + seconds
            while " ready." not in self.log(role).read_text(errors="replace"):
                if self.processes[role].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the celery worker did not become ready (see {self.log(role)})")
                time.sleep(0.2)

    @property
    def worker_roles(self) -> list[str]:
        return ["worker"] + [f"worker{number}" for number in range(2, self.worker_processes + 1)]

    def kill_and_restart(self, role: str) -> None:
        """SIGKILL to the role's whole session (no shutdown, no acknowledgement, nothing
        finished), then a new process at once, as a supervisor would start one."""
        with self.lock:
            process = self.processes[role]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            self.start(role)

    def restart_exited(self) -> list[tuple[str, int]]:
        """Start again every role whose process exited, like docker's `restart: unless-stopped`
        (docker-compose.yml); the (role, exit code) of each."""
        restarted = []
        with self.lock:
            for role, process in list(self.processes.items()):
                if process.poll() is not None:
                    restarted.append((role, process.returncode))
                    self.start(role)
        return restarted

    def stop(self) -> None:
        """SIGTERM to each session (graceful: gunicorn and celery finish what they hold), SIGKILL
        to whatever is left after a few seconds."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for role, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {role} still running 10 s after SIGTERM: killed")
            stop_process(process, grace=0)

    def alive(self) -> bool:
        return all(process.poll() is None for process in self.processes.values())


def start_stack(stack: Stack, extra_env: dict[str, dict[str, str]] | None = None) -> Stack:
    """Start web, worker and beat and wait until they serve; everything stopped if one fails."""
    try:
        for role in ("web", *stack.worker_roles, "beat"):
            stack.start(role, (extra_env or {}).get(role))
        stack.wait_ready("web", 60)
        for role in stack.worker_roles:
            stack.wait_ready(role, 90)
    except BaseException:
        stack.stop()
        raise
    return stack


# --------------------------------------------------------------------------------------------
# bench/RESULTS.md


def write_results_section(block: str, *, section: str, marker: str) -> None:
    """Put `block` into RESULTS.md between this marker's comments, under `section` (added at
    the end the first time); the rest of the file is left as it is."""
    begin, end = f"<!-- {marker} results: begin -->", f"<!-- {marker} results: end -->"
    text = RESULTS_FILE.read_text()
    generated = f"{begin}\n{block.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + generated + rest.split(end, 1)[1]
    elif section in text:
        head, rest = text.split(section, 1)
        text = head + section + "\n\n" + generated + "\n" + rest
    else:
        text = text.rstrip() + f"\n\n{section}\n\n{generated}\n"
    RESULTS_FILE.write_text(text)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Serve the fake OpenAI, Graph API and Twilio REST API.")
    parser.add_argument("--fakes", type=int, required=True, help="port")
    parser.add_argument("--seed", type=int, default=12)
    arguments = parser.parse_args()
    serve_fakes(arguments.fakes, arguments.seed)
