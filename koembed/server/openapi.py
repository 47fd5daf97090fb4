"""The OpenAPI schema of the service, as committed in ``docs/openapi.json``.

    python -m koembed.server.openapi docs/openapi.json   # rewrite it after changing a route or schema

``tests/test_serve_api.py`` fails when the committed file differs from what this produces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def schema() -> dict[str, Any]:
    from koembed.server.app import bare_app

    return bare_app().openapi()


def schema_text() -> str:
    return json.dumps(schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m koembed.server.openapi OUT.json", file=sys.stderr)
        return 2
    from koembed.atomic import atomic_write_text

    atomic_write_text(Path(args[0]), schema_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
