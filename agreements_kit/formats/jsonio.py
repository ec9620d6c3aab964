"""JSON bytes: canonical forms.

Legacy (format version 1) manifests and records are "sorted keys, two-space indent,
UTF-8, final newline"; this module is the one place those bytes are made.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def canonical(data: dict[str, Any]) -> bytes:
    """Records use the manifest's canonical JSON."""
    return canonical_json(data)
