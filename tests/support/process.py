"""`kinema serve` and the other commands as subprocesses, run the way a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from tests.support.live import free_port
from tests.support.polling import wait_for

KINEMA = Path(sys.executable).with_name("kinema")


def service_env(data_dir: Path, database_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("KINEMA_")}
    return (
        env
        | {
            "KINEMA_DATA_DIR": str(data_dir),
            "KINEMA_DATABASE_URL": database_url,
            "KINEMA_PORT": str(port),
            "KINEMA_PUBLIC_URL": f"http://127.0.0.1:{port}",
            # Tests poll faster than the published limit allows.
            "KINEMA_RECORD_INFO_RATE_LIMIT": "1000/second",
            # Stopped at the end of a test, a worker hands back at once.
            "KINEMA_DRAIN_SECONDS": "0",
            "COLUMNS": "120",
            "NO_COLOR": "1",
        }
        | extra
    )


def kinema(*args: str, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KINEMA), *args], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


class Served:
    """A running `kinema serve`."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.env = dict(env)
        self.base_url = f"http://127.0.0.1:{env['KINEMA_PORT']}"
        self.log = log
        self._output = log.open("ab")
        self.process = subprocess.Popen(
            [str(KINEMA), "serve", *args], env=self.env, stdout=self._output, stderr=subprocess.STDOUT
        )

    def wait_ready(self) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"kinema serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                return httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, 60, "kinema serve to answer")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """As a crash would: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._output.close()


@contextmanager
def serve(
    data_dir: Path, database_url: str, *args: str, port: int | None = None, **extra: str
) -> Iterator[Served]:
    env = service_env(data_dir, database_url, port or free_port(), **extra)
    data_dir.mkdir(parents=True, exist_ok=True)
    served = Served(list(args), env, data_dir / "serve.log")
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()
