#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")
    from django.core.management import execute_from_command_line

    from whatsbot_project.startup import configuration_error

    if error := configuration_error():
        sys.exit(error)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
