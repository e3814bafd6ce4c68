"""Close the live-inbox sockets of a user who loses staff access; tell every open inbox when roles
or permissions change (the page shows only what its viewer may do)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
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


def permissions_changed(sender, action: str, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        live.staff_permissions_changed()


# A user's roles and own permissions, and a role's permissions (accounts/roles.py syncs them).
for relation in (get_user_model().groups, get_user_model().user_permissions, Group.permissions):
    m2m_changed.connect(
        permissions_changed, sender=relation.through, dispatch_uid=f"live_inbox_{relation.through._meta.label}"
    )
