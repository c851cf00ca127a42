"""Every documented command runs as written (#17): the shell blocks of README.md and docs/*.md
run, in order, in a fresh folder per page, through bash, with ``.venv/bin/lightson`` being
this checkout's ``lightson``, and each must exit 0 within its time bound.

A block that cannot run here says so in the docs, on the line before its fence, in a comment
a reader does not see and this test understands:

- ``<!-- docs-test: skip: REASON -->``: not run (it needs a certificate, PostgreSQL, the
  internet, or hours of simulation); the reason must be given.
- ``<!-- docs-test: until-stopped: TEXT -->``: its last command serves until Ctrl-C, as the
  docs say: the test waits for TEXT in its output, then sends Ctrl-C (SIGINT), and the block
  must then end cleanly, without a traceback.

The blocks run in a network namespace of their own (``unshare -rn``) when the machine allows
it: the documented ports (8000, 9000) are then free whatever else runs, and no command can
reach the internet. Without it the blocks that open ports are skipped.

And the commands docs/csms.md gives a newcomer land their readings in the database."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lightson.store import Store
from lightson.store import schema as db

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- docs-test: (skip|until-stopped): (.+?) -->")
FENCE = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.DOTALL | re.MULTILINE)
BLOCK_TIMEOUT_S = 420  # the slowest documented block (a simulated week of 62 sites) on 2 cores
READY_TIMEOUT_S = 180


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    text: str
    mode: str  # "run", "skip" or "until-stopped"
    note: str  # the skip's reason or the ready text

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before.strip())
        mode, note = (marker.group(1), marker.group(2)) if marker else ("run", "")
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(path.name, line, match.group(1), mode, note))
    return found


def _namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


NAMESPACE = _namespace_works()


def _folder(tmp_path: Path) -> Path:
    """A fresh folder with ``.venv/bin/lightson`` this checkout's command."""
    shim = tmp_path / ".venv" / "bin" / "lightson"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m lightson.cli "$@"\n')
    shim.chmod(0o755)
    return tmp_path


def _command(block: Block) -> list[str]:
    script = f"set -e\n{block.text}"
    if not NAMESPACE:
        return ["bash", "-c", script]
    return ["unshare", "-rn", "bash", "-c", f"ip link set lo up 2>/dev/null || true\n{script}"]


def _environment() -> dict[str, str]:
    source = str(ROOT / "src")
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
    keep = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTSON_")}
    return {**keep, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def _opens_ports(block: Block) -> bool:
    return bool(re.search(r"lightson (csms|serve|demo)\b", block.text))


def _run(block: Block, folder: Path) -> None:
    if _opens_ports(block) and not NAMESPACE:
        pytest.skip("the documented ports need a network namespace of their own (unshare -rn)")
    log = folder / "block.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            _command(block),
            cwd=folder,
            env=_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if block.mode == "until-stopped":
                _wait_for(block.note, log, process)
                os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as the docs say
            code = process.wait(BLOCK_TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):  # what a block left running
                os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert "Traceback" not in output, f"{block.name}\n{output[-4000:]}"
    if block.mode == "run":
        assert code == 0, f"{block.name} exited {code}\n{output[-4000:]}"


def _wait_for(text: str, log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while text not in log.read_text():
        assert process.poll() is None, f"ended before '{text}':\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no '{text}' in time:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)


def test_every_marker_is_understood_and_every_skip_says_why() -> None:
    for page in PAGES:
        text = page.read_text()
        assert text.count("docs-test:") == len(MARKER.findall(text)), page.name
        for block in blocks_of(page):
            assert block.mode == "run" or block.note.strip(), block.name


def test_the_marker_is_read_from_the_line_before_the_fence(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```sh\necho one\n```\n\n<!-- docs-test: skip: needs a VTN -->\n```sh\necho two\n```\n"
        "<!-- docs-test: until-stopped: listening -->\n```bash\nserve\n```\n```python\nx\n```\n"
    )
    assert [(b.line, b.mode, b.note, b.text) for b in blocks_of(page)] == [
        (1, "run", "", "echo one\n"),
        (6, "skip", "needs a VTN", "echo two\n"),
        (10, "until-stopped", "listening", "serve\n"),
    ]


def test_a_failing_block_fails_the_test(tmp_path: Path) -> None:
    block = Block("page.md", 1, ".venv/bin/lightson validate no-such-program.yaml\n", "run", "")
    with pytest.raises(AssertionError, match=r"page\.md:1 exited 2"):
        _run(block, _folder(tmp_path))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_shell_blocks_of_a_page_run_as_written(page: Path, tmp_path: Path) -> None:
    runnable = [b for b in blocks_of(page) if b.mode != "skip"]
    if not runnable:
        pytest.skip(f"{page.name} has no block that runs offline")
    folder = _folder(tmp_path)
    for block in runnable:
        _run(block, folder)
    if page.name == "csms.md":  # its stations connected, booted and sent meter values
        store = Store(f"sqlite:///{folder / 'lightson.db'}")  # the documented default database
        try:
            stations = {row["station_id"] for row in store.rows(db.meter_samples)}
        finally:
            store.close()
        assert stations == {"emu-0001", "emu-0002", "emu-0003"}
