#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import gc
import os
import sys


def main() -> None:
    # Loading Django and the app makes some 200 000 objects (that the cyclic garbage collector
    # tracks) that live as long as the process, and the collector scanned them over and over while
    # they were made: some 0.4 s of CPU, 40 % of a command's start. It is off until the app is
    # loaded; those objects are then frozen (left out of every later collection) and the
    # command's own garbage is collected.
    gc.disable()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "whatsbot_project.settings")
    import django
    from django.core.management import execute_from_command_line

    from whatsbot_project.startup import configuration_error

    if error := configuration_error():
        sys.exit(error)
    django.setup()  # execute_from_command_line's own call then finds the apps loaded
    gc.freeze()
    gc.enable()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
