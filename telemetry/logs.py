"""LOG_FORMAT=json: one JSON object per line, the same in web, worker, beat and commands.

A formatter only: personal data is masked before it, by the masking filter every handler
carries (whatsbot_project/logging.py). Only the fields below are written, never a record's
extras (Django's request logger attaches the whole request), so nothing unmasked slips in.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from telemetry import context

FIELDS = (
    "timestamp",
    "level",
    "logger",
    "message",
    "request_id",
    "conversation_id",
    "task_id",
    "exc_info",
    "stack_info",
)


class JsonFormatter(_JsonFormatter):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        super().__init__("{levelname}{name}{message}", style="{", **kwargs)
        # Python's warnings (a library's deprecation, WhiteNoise's missing directory) become log
        # records too: printed as they are, they would break one-object-per-line.
        logging.captureWarnings(True)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and record.exc_text:
            # The masking filter left a masked traceback in exc_text; the base class would
            # render exc_info again, unmasked.
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None})
        return super().format(record)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["request_id"] = context.request_id.get() or None
        log_data["conversation_id"] = context.conversation_id.get()
        log_data["task_id"] = context.task_id.get() or None

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {name: log_data[name] for name in FIELDS if log_data.get(name) is not None}
