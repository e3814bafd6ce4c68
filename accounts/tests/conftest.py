import pytest


@pytest.fixture(autouse=True)
def plain_static_files(settings):
    # The manifest storage needs `collectstatic`; pages under test link the source files.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
