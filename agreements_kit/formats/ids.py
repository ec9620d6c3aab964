"""Identifiers that name files and folders: agreement ids.

An id becomes a folder name in the archive, so it is checked in one place: letters,
digits, '-' and '_', 3 to 64 characters, starting with a letter or digit (no '..', no
'/', nothing a shell or a file system reads specially). ``log`` is reserved: the
archive's transparency log lives in ``signed/log/``.
"""

from __future__ import annotations

import re

ID_RE = re.compile(r"^(?!log\Z)[A-Za-z0-9][A-Za-z0-9_-]{2,63}\Z")  # \Z: "$" would allow a final newline
# A language code as specs, manifests, intake tickets and translation folders (clauses/translations/es) name
# one: a primary language subtag ("es"), one rule for all of them.
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}\Z")


def primary_language(tag: str | None) -> str:
    """A language tag's primary subtag (``es-MX``, ``ES`` -> ``es``); '' for none: the one rule by which a
    tag finds its texts (disclosure, intent statement, page words, receipt)."""
    return (tag or "").replace("_", "-").split("-")[0].lower()
