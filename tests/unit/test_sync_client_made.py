"""The blocking SDK client is made from the asyncio one: the committed file is what the script makes,
and the check notices a hand edit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "make_sync_client.py"
SYNC_CLIENT = ROOT / "src" / "kinema" / "client" / "sync_client.py"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,
    )


def test_the_committed_blocking_client_is_the_one_made_from_the_async_client() -> None:
    done = _check()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_a_hand_edit_of_the_blocking_client_fails_the_check(tmp_path: Path) -> None:
    edited = SYNC_CLIENT.read_text(encoding="utf-8").replace("retries += 1", "retries += 2")
    target = tmp_path / "sync_client.py"
    target.write_text(edited, encoding="utf-8")

    done = _check("--target", str(target))

    assert done.returncode == 1
    assert "-                retries += 2\n" in done.stdout
    assert "+                retries += 1\n" in done.stdout
    assert "sync_client.py is out of date: run python scripts/make_sync_client.py" in done.stderr
    assert target.read_text(encoding="utf-8") == edited
