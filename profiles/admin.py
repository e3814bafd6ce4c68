from django.contrib import admin

from profiles.admin_actions import GdprActionsMixin
from profiles.models import ClientProfile


@admin.register(ClientProfile)
class ClientProfileAdmin(GdprActionsMixin, admin.ModelAdmin):
    list_display = ("__str__", "provider", "created_at")
