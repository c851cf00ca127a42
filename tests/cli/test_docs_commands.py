"""The commands docs/csms.md gives a newcomer run as written: its "Try it" block, in a fresh
folder, with only the port moved to a free one and ``emulate`` bounded in time. The stations
it registers connect, boot and send meter values that land in the database."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from lightson.store import Store
from lightson.store import schema as db
from net_support import free_port

DOCS = Path(__file__).parents[2] / "docs"


def _try_it_block() -> list[str]:
    text = (DOCS / "csms.md").read_text()
    section = text.split("## Try it", 1)[1]
    (block,) = re.findall(r"```sh\n(.*?)```", section.split("\n## ", 1)[0], flags=re.DOTALL)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_try_it_commands_of_docs_csms_run_as_written(tmp_path: Path) -> None:
    export, add, csms, emulate = _try_it_block()
    name, password = export.removeprefix("export ").split("=", 1)
    env = {**os.environ, name: password, "PYTHONUNBUFFERED": "1"}
    port = str(free_port())

    def command(line: str) -> list[str]:
        words = shlex.split(line.rstrip("&").replace("9000", port))
        assert words[0] == ".venv/bin/lightson", line
        return [sys.executable, "-m", "lightson.cli", *words[1:]]

    added = subprocess.run(
        command(add), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert added.returncode == 0, added.stderr
    assert csms.endswith("&")
    log = (tmp_path / "csms.log").open("w")
    server = subprocess.Popen(
        command(csms),
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "CSMS listening" in line, (tmp_path / "csms.log").read_text()[-3000:]
        # The docs' emulate takes the default --url, port 9000: moved with the server.
        url = f"ws://127.0.0.1:{port}/ocpp"
        emulated = subprocess.run(
            [*command(emulate), "--url", url, "--duration", "4"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert emulated.returncode == 0, emulated.stderr
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    store = Store(f"sqlite:///{tmp_path / 'lightson.db'}")  # the documented default database
    try:
        stations = {row["station_id"] for row in store.rows(db.meter_samples)}
    finally:
        store.close()
    assert stations == {"emu-0001", "emu-0002", "emu-0003"}
