"""API tokens: creation (the key shown once), lookup by hash, revocation."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import User
from django.utils import timezone

from integrations.models import ApiToken, Scope

KEY_PREFIX = "wbt_"


def hash_key(key: str) -> str:
    # A random 256-bit key needs no slow hash: nothing to guess, and a lookup per request.
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_token(*, name: str, user: User, scopes: list[str]) -> tuple[ApiToken, str]:
    """A new token and its key (kept nowhere: only its hash is stored)."""
    unknown = set(scopes) - set(Scope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    token = ApiToken(name=name, user=user, scopes=sorted(set(scopes)))
    key = issue_key(token)
    token.save()
    return token, key


def issue_key(token: ApiToken) -> str:
    """Give an unsaved token (the admin's add form) its key; the key to show once."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token.prefix, token.key_hash = key[: len(KEY_PREFIX) + 4], hash_key(key)
    return key


def get_active_token(key: str) -> ApiToken | None:
    """The unrevoked token of `key` whose staff member is still active staff."""
    if not key.startswith(KEY_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key), revoked_at__isnull=True).first()
    if token is None or not (token.user.is_active and token.user.is_staff):
        return None
    return token


def revoke_api_tokens(*, token_ids: list[int]) -> int:
    return ApiToken.objects.filter(pk__in=token_ids, revoked_at__isnull=True).update(revoked_at=timezone.now())


def note_token_use(token: ApiToken) -> None:
    """last_used_at, written at most once a minute per token (not a write per request)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
