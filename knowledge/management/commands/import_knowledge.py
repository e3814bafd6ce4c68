"""manage.py import_knowledge PATH…: files and folders of Markdown, text, PDF and HTML into articles."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from knowledge.parsers import UnsupportedFile, is_supported
from knowledge.services import import_document, reindex_all
from knowledge.text import STEMMERS


class Command(BaseCommand):
    help = (
        "Import files into the knowledge base: each Markdown, text, PDF or HTML file becomes one article "
        "(folders are walked). Importing a file again updates its article; a Markdown front matter may set "
        "title, slug, language, tags and url. The knowledge base holds no personal data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="*", type=Path, help="Files or folders.")
        parser.add_argument(
            "--language", choices=sorted(STEMMERS), help="Language of the files (default KNOWLEDGE_DEFAULT_LANGUAGE)."
        )
        parser.add_argument("--tag", action="append", default=[], dest="tags", help="Tag every article (repeatable).")
        parser.add_argument(
            "--reindex",
            action="store_true",
            help="First rebuild the passages of every article and recount the terms (after a restore or an upgrade).",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar (it shows only on a terminal anyway)."
        )

    def handle(
        self,
        *args: str,
        paths: list[Path],
        language: str | None,
        tags: list[str],
        reindex: bool,
        no_progress: bool,
        **options: object,
    ) -> None:
        if not paths and not reindex:
            raise CommandError("Give files or folders to import (or --reindex).")
        hide = True if no_progress else None  # None: shown on a terminal only
        if reindex:
            with tqdm(desc="Re-indexing", unit="articles", disable=hide, file=sys.stderr) as bar:

                def advance(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                passages = reindex_all(progress=advance)
            self.stdout.write(f"Re-indexed: {passages} passages.")
        files = sorted(self._files(paths))
        imported = passages = 0
        skipped: list[str] = []
        for path in tqdm(files, desc="Importing", unit="files", disable=hide, file=sys.stderr):
            try:
                article = import_document(
                    name=path.name, data=path.read_bytes(), language=language, tags=tags, source=str(path)
                )
            except (UnsupportedFile, UnicodeDecodeError, OSError) as exc:
                skipped.append(f"{path}: {exc}")
                continue
            imported += 1
            passages += article.chunks.count()
        for reason in skipped:
            self.stderr.write(f"Skipped {reason}")
        if paths:
            self.stdout.write(
                self.style.SUCCESS(f"Imported {imported} files into {passages} passages; {len(skipped)} skipped.")
            )

    def _files(self, paths: list[Path]) -> Iterator[Path]:
        for path in paths:
            if path.is_dir():
                yield from (child for child in path.rglob("*") if child.is_file() and is_supported(child.name))
            elif path.is_file():
                yield path
            else:
                raise CommandError(f"{path} does not exist.")
