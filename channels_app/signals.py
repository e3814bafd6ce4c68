"""Close the live-inbox sockets of a user who loses staff access; tell a user's open inboxes when
their roles or permissions change (the page shows only what its viewer may do)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from channels_app import live


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="live_inbox_staff_saved")
def close_sockets_of_revoked_staff(sender, instance, created: bool, **kwargs) -> None:
    if not created and not (instance.is_active and instance.is_staff):
        live.staff_access_revoked(user_id=instance.pk)


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="live_inbox_staff_deleted")
def close_sockets_of_deleted_staff(sender, instance, **kwargs) -> None:
    live.staff_access_revoked(user_id=instance.pk)


def permissions_changed(sender, instance, action: str, reverse: bool, pk_set: set | None, **kwargs) -> None:
    """A user's roles or own permissions changed (either side of the relation): their open pages
    re-read what they may do. A role's own permissions change at a deploy (accounts/roles.py):
    pages see that at their periodic re-check."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    # From the user's side pk_set holds roles or permissions; from the other side, users (a clear
    # from that side names none: every page re-reads at its periodic check).
    user_ids = [instance.pk] if not reverse else list(pk_set or ())
    for user_id in user_ids:
        live.staff_permissions_changed(user_id=user_id)


for relation in (get_user_model().groups, get_user_model().user_permissions):
    m2m_changed.connect(
        permissions_changed, sender=relation.through, dispatch_uid=f"live_inbox_{relation.through._meta.label}"
    )
