"""Close the live-inbox sockets of a user who loses staff access."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from channels_app import live


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="live_inbox_staff_saved")
def close_sockets_of_revoked_staff(sender, instance, created: bool, **kwargs) -> None:
    if not created and not (instance.is_active and instance.is_staff):
        live.staff_access_revoked(user_id=instance.pk)


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="live_inbox_staff_deleted")
def close_sockets_of_deleted_staff(sender, instance, **kwargs) -> None:
    live.staff_access_revoked(user_id=instance.pk)
