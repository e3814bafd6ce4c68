"""README.md stays true: every setting read from the environment is in its settings table."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_setting_is_documented_in_the_readme():
    settings_source = (ROOT / "whatsbot_project" / "settings.py").read_text()
    names = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', settings_source))
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))

    assert names, "no settings found: the pattern is out of date"
    assert sorted(names - documented) == []


def test_the_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_screen = "\n".join(readme.splitlines()[:15])

    assert "make run" in first_screen
    assert "make test" in first_screen
