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
    token = ApiToken(name=name, user=user, scopes=_known_scopes(scopes))
    return token, save_new_api_token(token=token, created_by=created_by)


def _known_scopes(scopes: list[str]) -> list[str]:
    unknown = set(scopes) - set(Scope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    return sorted(set(scopes))


def may_manage_api_token(*, actor: Any, owner_id: int, action: str) -> bool:
    """Whether `actor` may `action` ("add", "change", "delete") a token of the staff member
    `owner_id`: staff who manage tokens do so for their own; only an Administrator for someone
    else's, since a token acts in its staff member's name (what it may do is done as them)."""
    if not actor.has_perm(f"integrations.{action}_apitoken"):
        return False
    return actor.pk == owner_id or actor.has_perm("integrations.add_apitoken_for_others")


def save_new_api_token(*, token: ApiToken, created_by: Any) -> str:
    """Store an unsaved token (create_api_token, the admin's add form) and return its key, to
    show once; audited. Raises PermissionDenied when `created_by` may not create it."""
    if created_by is not None and not may_manage_api_token(actor=created_by, owner_id=token.user_id, action="add"):
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


def save_changed_api_token(*, token: ApiToken, changed: list[str], changed_by: Any) -> None:
    """Store the edited name and scopes of a saved token (the admin's change form); audited with
    the fields changed, never the name. Raises PermissionDenied when `changed_by` may not change
    it, as save_new_api_token does for creating it: another's token is an Administrator's."""
    owner_id = ApiToken.objects.values_list("user_id", flat=True).get(pk=token.pk)  # as stored
    audited = {"for": f"auth.user #{owner_id}", "changed": sorted(changed)}
    if changed_by is not None and not may_manage_api_token(actor=changed_by, owner_id=owner_id, action="change"):
        record_security_event(
            action=SecurityEvent.Action.API_TOKEN_REFUSED, actor=changed_by, target=target_of(token), detail=audited
        )
        raise PermissionDenied("Only an Administrator may change another staff member's API token.")
    if not changed:
        return  # saved unchanged: nothing to store or audit
    token.scopes = _known_scopes(token.scopes)
    # Only these: a token does not change hands, and its key and dates are not edited.
    token.save(update_fields=["name", "scopes"])
    record_security_event(
        action=SecurityEvent.Action.API_TOKEN_CHANGED,
        actor=changed_by,
        target=target_of(token),
        detail={**audited, "scopes": token.scopes},
    )


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
