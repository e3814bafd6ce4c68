"""A turn of the conversation as the model reads it: built by the selectors, sent by `ai`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant", "developer"]
    text: str
    images: tuple[str, ...] = ()  # data URLs built from downloaded bytes, never provider URLs
