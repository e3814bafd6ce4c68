"""Production safety of the settings, checked in fresh interpreters with a controlled environment."""

import os
import subprocess
import sys
from pathlib import Path

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


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Only what a shell needs: no setting leaks in from the test run's own environment.
    clean = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_check_deploy_has_no_warnings_with_the_documented_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
