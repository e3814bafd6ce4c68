"""Production safety of the settings, checked in fresh interpreters with a controlled environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The production environment README.md documents (values are placeholders of the right shape).
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k3Jx9vQ2mZp7Lr4Tn8Wc1Yb6Hd5Fg0Se-Ua_Vi3Oq7Kw9Ej2Rx4Tz6Ny8Mb1Pc",
    "ALLOWED_HOSTS": "bot.example.com",
    "PUBLIC_BASE_URL": "https://bot.example.com",
    "DATABASE_URL": "sqlite:////tmp/whatsbot-deploy-check.sqlite3",
    "WHATSAPP_APP_SECRET": "app-secret",
    "OPENAI_API_KEY": "sk-placeholder",
}


def start(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only what a shell needs: no setting leaks in from the test run's own environment, nor from
    # a development .env in the checkout.
    clean = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**clean, "ENV_FILE": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return start(["manage.py", *args], env)


NO_SECRET_KEY = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
MISSING_SECRET_KEY = "whatsbot cannot start: SECRET_KEY is not set and DEBUG is off. In production set SECRET_KEY"


@pytest.mark.slow
def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = manage("check", env=NO_SECRET_KEY)

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "migrate"],
        ["-m", "daphne", "-p", "0", "whatsbot_project.asgi:application"],
        ["-m", "celery", "-A", "whatsbot_project", "worker", "--pool", "threads"],
        ["-m", "celery", "-A", "whatsbot_project", "beat", "--schedule", "/tmp/whatsbot-unused-beat-schedule"],
    ],
    ids=["manage.py", "daphne", "celery worker", "celery beat"],
)
def test_a_missing_secret_key_is_one_line_saying_what_to_set(command):
    result = start(command, NO_SECRET_KEY)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(MISSING_SECRET_KEY)
    assert "secrets.token_urlsafe(50)" in result.stderr and "make .env" in result.stderr


@pytest.mark.slow
def test_gunicorn_says_what_to_set_and_stops_before_starting_workers():
    command = ["-m", "gunicorn", "whatsbot_project.wsgi:application", "--bind", "127.0.0.1:0", "--workers", "4"]

    result = start(command, NO_SECRET_KEY)  # gunicorn.conf.py, in the working directory

    assert result.returncode == 1
    own_lines = [line for line in result.stderr.splitlines() if not line.startswith("[")]  # not gunicorn's log
    assert own_lines == [result.stderr.splitlines()[-1]]
    assert own_lines[0].startswith(MISSING_SECRET_KEY)
    assert "Booting worker" not in result.stderr


@pytest.mark.slow
def test_a_worker_with_more_slots_than_its_pools_are_sized_for_stops_saying_what_to_set():
    command = ["-m", "celery", "-A", "whatsbot_project", "worker", "--pool", "threads", "--concurrency", "300"]

    result = start(command, {**PRODUCTION_ENV, "WORKER_CONCURRENCY": "200"})

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("whatsbot cannot start: the worker has 300 slots")
    assert "set WORKER_CONCURRENCY=300" in result.stderr
    assert "ready." not in result.stdout + result.stderr  # stopped before it took any task


def test_a_worker_without_concurrency_runs_the_slots_its_pools_are_sized_for(settings):
    from whatsbot_project.celery import app

    assert app.conf.worker_concurrency == settings.WORKER_CONCURRENCY == 200


# Every setting that hardens the deployment; README's "Production" section names each one.
SECURITY_SETTINGS = [
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_PRELOAD",
    "TRUSTED_PROXY_COUNT",
    "STAFF_TWO_FACTOR_REQUIRED",
    "STAFF_SESSION_IDLE_MINUTES",
    "SESSION_COOKIE_AGE_SECONDS",
    "LOGIN_FAILURE_LIMIT",
    "LOGIN_COOLOFF_MINUTES",
    "PASSWORD_MIN_LENGTH",
    "PASSWORD_BREACH_CHECK",
    "OTP_TOTP_ISSUER",
    "SECURITY_AUDIT_RETENTION_DAYS",
    "LIVE_ACCESS_RECHECK_SECONDS",
    "WEBHOOK_MAX_BODY_BYTES",
    "WHATSAPP_APP_SECRET",
    "TWILIO_AUTH_TOKEN",
]


@pytest.mark.slow
def test_check_deploy_is_clean_with_the_documented_production_settings():
    env = {**PRODUCTION_ENV, "CSRF_TRUSTED_ORIGINS": "https://bot.example.com", "TRUSTED_PROXY_COUNT": "1"}

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_readme_production_section_names_every_security_setting():
    readme = (ROOT / "README.md").read_text()
    production = readme.split("\n## Production\n", 1)[1].split("\n### Ingest throughput\n", 1)[0]

    assert [name for name in SECURITY_SETTINGS if f"`{name}`" not in production] == []
