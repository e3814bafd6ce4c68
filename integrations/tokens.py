"""API tokens: creation (the key shown once), lookup by hash, revocation."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.audit import record_security_event, target_of
from accounts.models import SecurityEvent
from integrations.models import ApiToken, Scope

KEY_PREFIX = "wbt_"


def hash_key(key: str) -> str:
    # A random 256-bit key needs no slow hash: nothing to guess, and a lookup per request.
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_token(*, name: str, user: User, scopes: list[str], created_by: Any) -> tuple[ApiToken, str]:
    """A new token of `user` and its key (kept nowhere: only its hash is stored). `created_by`
    is the staff member asking (None: the operator, from a shell). Raises PermissionDenied."""
    unknown = set(scopes) - set(Scope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    token = ApiToken(name=name, user=user, scopes=sorted(set(scopes)))
    return token, save_new_api_token(token=token, created_by=created_by)


def _may_create_for(*, actor: Any, owner: User) -> bool:
    """Staff who manage tokens create them for themselves; only an Administrator for someone
    else, since a token acts in its staff member's name."""
    if not actor.has_perm("integrations.add_apitoken"):
        return False
    return actor.pk == owner.pk or actor.has_perm("integrations.add_apitoken_for_others")


def save_new_api_token(*, token: ApiToken, created_by: Any) -> str:
    """Store an unsaved token (create_api_token, the admin's add form) and return its key, to
    show once; audited. Raises PermissionDenied when `created_by` may not create it."""
    if created_by is not None and not _may_create_for(actor=created_by, owner=token.user):
        record_security_event(
            action=SecurityEvent.Action.API_TOKEN_REFUSED, actor=created_by, target=target_of(token.user)
        )
        raise PermissionDenied("Only an Administrator may create an API token for another staff member.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token.prefix, token.key_hash = key[: len(KEY_PREFIX) + 4], hash_key(key)
    token.save()
    record_security_event(
        action=SecurityEvent.Action.API_TOKEN_CREATED,
        actor=created_by,
        target=target_of(token),
        detail={"for": target_of(token.user), "scopes": token.scopes},
    )
    return key


def get_active_token(key: str) -> ApiToken | None:
    """The unrevoked token of `key` whose staff member is still active staff."""
    if not key.startswith(KEY_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key), revoked_at__isnull=True).first()
    if token is None or not (token.user.is_active and token.user.is_staff):
        return None
    return token


def revoke_api_tokens(*, token_ids: list[int], revoked_by: Any) -> int:
    """Revoke the tokens still active among `token_ids` (refused from their next request); audited."""
    with transaction.atomic():
        tokens = list(ApiToken.objects.select_for_update().filter(pk__in=token_ids, revoked_at__isnull=True))
        ApiToken.objects.filter(pk__in=[token.pk for token in tokens]).update(revoked_at=timezone.now())
        for token in tokens:
            record_security_event(
                action=SecurityEvent.Action.API_TOKEN_REVOKED,
                actor=revoked_by,
                target=target_of(token),
                detail={"for": f"auth.user #{token.user_id}"},
            )
    return len(tokens)


def note_token_use(token: ApiToken) -> None:
    """last_used_at, written at most once a minute per token (not a write per request)."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
