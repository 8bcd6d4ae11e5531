"""Make the SDK's blocking client from its asyncio client.

``src/kinema/client/async_client.py`` is the one source of both clients. This script rewrites it,
rule by rule, into ``sync_client.py``, then has ruff drop the imports the rewrite left unused and
format the result, so that what it writes is what lint expects. ``--check`` writes nothing and
fails, showing the difference, while the committed file is not what the script makes.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "kinema" / "client" / "async_client.py"
TARGET = ROOT / "src" / "kinema" / "client" / "sync_client.py"

SYNC_DOCSTRING = '''"""The blocking client: every call of the market-jobs API, and waiting for a task to end.

Made from ``async_client.py`` by ``scripts/make_sync_client.py``: edit that file, not this one.
"""'''

#: (pattern, replacement), applied in this order to the whole source. Each must match somewhere,
#: so that a rule the source no longer needs is noticed and removed.
RULES: tuple[tuple[str, str], ...] = (
    # The markers, while the lines are still as written.
    (r"(?m)^.*  # async only\n", ""),
    (r"(?m)^( *)\S.*  # sync: (.*)$", r"\1\2"),
    (r'(?s)\A""".*?"""', SYNC_DOCSTRING),
    # The code.
    (r"\basync (def|with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\basyncio\.to_thread\(([\w.]+), ", r"\1("),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\bAwaitable\[([\w.]+)\]", r"\1"),
    (r"\bAsync([A-Z]\w*)", r"\1"),
    (r"\b__a(enter|exit)__\b", r"__\1__"),
    (r"\ba(close|read|iter_lines|iter_bytes)\b", r"\1"),
    # The docstrings.
    (r"\bAn asyncio client\b", "A client"),
    (r"\bASGITransport\b", "WSGITransport"),
    (r" \(``sleep``\s+as a coroutine function\)", ""),
)


def rewrite(source: str) -> str:
    """The asyncio source as blocking code, before ruff tidies it."""
    for pattern, replacement in RULES:
        source, count = re.subn(pattern, replacement, source)
        if count == 0:
            raise SystemExit(f"the rule {pattern!r} matches nothing in {SOURCE.name}: remove it")
    return source


def tidy(code: str) -> str:
    """Drop unused imports, sort the rest and format, with the project's ruff settings."""
    name = str(TARGET.relative_to(ROOT))
    fixed = _ruff(["check", "--fix-only", "--select", "F401,I", "--stdin-filename", name, "-"], code)
    return _ruff(["format", "--stdin-filename", name, "-"], fixed)


def _ruff(args: list[str], code: str) -> str:
    command = [sys.executable, "-m", "ruff", *args]
    done = subprocess.run(command, input=code, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ruff {args[0]} failed on the rewritten client:\n{done.stderr}")
    return done.stdout


def make() -> str:
    """The blocking client's module, as it must be committed."""
    return tidy(rewrite(SOURCE.read_text(encoding="utf-8")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make sync_client.py from async_client.py.")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail while the target is out of date"
    )
    parser.add_argument("--target", type=Path, default=TARGET, help="where the blocking client is")
    options = parser.parse_args(argv)
    made = make()
    if not options.check:
        options.target.write_text(made, encoding="utf-8")
        return 0
    current = options.target.read_text(encoding="utf-8") if options.target.exists() else ""
    if current == made:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        made.splitlines(keepends=True),
        fromfile=f"{options.target} (committed)",
        tofile=f"{options.target} (made from {SOURCE.name})",
    )
    sys.stdout.writelines(diff)
    print(f"\n{options.target.name} is out of date: run python scripts/make_sync_client.py", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
