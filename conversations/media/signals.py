"""A deleted Attachment takes its file with it (erasure cascades from profile to message to file).

Bulk `QuerySet.delete()` and cascades still send post_delete per row while a receiver is
connected, so no erased customer's photo or voice note is left behind in storage.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from conversations.models import Attachment


@receiver(post_delete, sender=Attachment, dispatch_uid="delete_attachment_file")
def delete_attachment_file(sender, instance: Attachment, **kwargs) -> None:
    if instance.file:
        storage, name = instance.file.storage, instance.file.name
        # Only once the deletion is committed: a rolled-back erase keeps the file.
        transaction.on_commit(lambda: storage.delete(name))
