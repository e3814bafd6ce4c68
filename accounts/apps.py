from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Staff accounts and security"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import signals

        # Last in INSTALLED_APPS, so every app's permissions exist when the roles are reset.
        post_migrate.connect(signals.reset_roles, sender=self, dispatch_uid="accounts_reset_roles")
