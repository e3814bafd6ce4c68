"""DRF authentication, permission and throttling for API tokens (settings.REST_FRAMEWORK).

Staff in the browser keep their session (CSRF enforced); other systems send a token. A token
passes a view only when it holds the view's `required_scope`; a view that names none is for
sessions only.
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from accounts.access import StaffPermission, has_staff_permission
from integrations.models import ApiToken
from integrations.tokens import get_active_token, note_token_use


class ApiTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Send the key as: Authorization: Bearer <key>.")
        token = get_active_token(parts[1].decode("latin-1"))
        if token is None:
            raise AuthenticationFailed("Unknown or revoked token.")
        note_token_use(token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str | None:
        # A refused token is a 401 with a challenge; a caller who sent none (a page whose
        # session ended) keeps the session API's 403.
        return 'Bearer realm="api"' if get_authorization_header(request) else None


class StaffOrScopedToken(BasePermission):
    """A session: the view's `required_permission` (accounts/access.py). A token: the view's
    scope, and its staff member's permission too, read afresh (a role taken away stops the
    token as it stops the session). A token stands for the second factor."""

    message = "This token lacks the scope this operation needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiToken):
            required = getattr(view, "required_scope", None)
            permission = getattr(view, "required_permission", None)
            return (
                required is not None
                and required in request.auth.scopes
                and permission is not None
                and has_staff_permission(request.user, permission, is_verified=True)
            )
        return StaffPermission().has_permission(request, view)


class ApiTokenRateThrottle(SimpleRateThrottle):
    """API_TOKEN_RATE_LIMIT requests per token; sessions are not throttled."""

    scope = "api_token"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, ApiToken):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
