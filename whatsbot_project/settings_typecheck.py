"""The settings mypy's Django plugin loads ([tool.django-stubs] in pyproject.toml): the real ones,
importable without an environment, so `mypy` runs as it is in `make test`, an editor or CI.
Nothing else uses this module."""

import os

os.environ.setdefault("SECRET_KEY", "type-checking-only")

from whatsbot_project.settings import *  # noqa: F403
