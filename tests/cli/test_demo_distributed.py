"""``lightson demo --distributed`` end to end on a short, fast story: PostgreSQL, NATS, two
gateways and two workers, all processes of the demo; the fleet discharges into the event
through both gateways, a gateway killed with SIGKILL hands its stations to the other, and
neither the end nor Ctrl-C nor a SIGKILL of the demo itself leaves a process behind."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lightson.cli.demo_distributed import sweep_leftovers
from process_support import command_line, descendants, listening_ports, port_free, survivors

SPEED = "720"  # a simulated hour every 5 s


@dataclass
class Demo:
    """A running ``lightson demo --distributed`` and the lines it printed so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def until(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The first printed line (past or to come) matching ``pattern``."""
        deadline = time.monotonic() + timeout_s
        for line in self.lines:
            if found := re.search(pattern, line):
                return found
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                message = f"no {pattern!r} in time:\n" + "\n".join(self.lines)
                raise AssertionError(message) from None
            if line is None:
                raise AssertionError(f"ended without {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found

    def finish(self, timeout_s: float) -> str:
        self.process.wait(timeout_s)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return "\n".join(self.lines)

    def pids(self) -> dict[str, int]:
        """The gateways' and workers' process ids, as the demo printed them."""
        self.until(r"worker-2: pid", 120)
        found = (re.search(r"^\s+(\S+): .*pid (\d+)", line) for line in self.lines)
        return {m.group(1): int(m.group(2)) for m in found if m}

    def services_folder(self) -> str:
        return self.until(r"PostgreSQL and NATS in (\S+)", 60).group(1)


@contextmanager
def demo(tmp_path: Path, hours: float) -> Iterator[Demo]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "lightson.cli", "demo", "--distributed"),
            *("--hours", str(hours), "--speed", SPEED, "--out", str(tmp_path)),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    running = Demo(process)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running._queue.put(line.rstrip("\n"))
        running._queue.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()  # the test failed: the assertions below name the orphans
            process.wait(30)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _processes_in(folder: str) -> list[str]:
    """Command lines of the live processes naming ``folder`` (PostgreSQL, nats-server)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _alive(int(proc.name)):
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if folder in command:
                found.append(command)
    return found


def _assert_nothing_left(pids: dict[str, int], folder: str) -> None:
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert _processes_in(folder) == []
    assert not Path(folder).exists()


def _event(out: str) -> tuple[int, int]:
    found = re.search(
        r"Event: (\d+) of the 100 emulated chargers discharged\. The vehicles gave ([\d,]+) kWh",
        out,
    )
    assert found is not None, out
    return int(found.group(1)), int(found.group(2).replace(",", ""))


def _through(out: str) -> tuple[int, int, int]:
    """Discharging stations through gateway 1, gateway 2, and through both."""
    gateway = r"through gateway \d \(ws://127\.0\.0\.1:\d+/ocpp\)"
    found = re.search(
        rf"Gateways: of the stations that discharged, (\d+) {gateway}, (\d+) {gateway}"
        r"(?:; (\d+) through both)?",
        out,
    )
    assert found is not None, out
    return int(found.group(1)), int(found.group(2)), int(found.group(3) or 0)


def test_the_distributed_demo_discharges_through_both_gateways(tmp_path: Path) -> None:
    with demo(tmp_path, 4.5) as running:
        folder, pids = running.services_folder(), running.pids()
        assert set(pids) == {"gateway-1", "gateway-2", "worker-1", "worker-2"}
        running.until(
            "62 sites on 2 workers, 100 chargers as emulated OCPP stations on 2 gateways", 120
        )
        out = running.finish(300)
    assert running.process.returncode == 0, out
    assert "ConnectedSolutions event" in out
    stations, kwh = _event(out)
    assert stations > 10 and kwh > 100, out
    first, second, _ = _through(out)
    assert first > 3 and second > 3, out
    _assert_nothing_left(pids, folder)
    # The roles logged their story: the workers shared the sites, the gateways stored.
    workers = [(tmp_path / f"worker-{n}.log").read_text() for n in (1, 2)]
    assert all("lease taken" in log for log in workers)


def test_a_gateway_killed_mid_event_hands_its_stations_to_the_other(tmp_path: Path) -> None:
    with demo(tmp_path, 5.5) as running:
        folder, pids = running.services_folder(), running.pids()
        running.until(r"^16:\d\d EDT", 300)  # an hour into the event
        os.kill(pids["gateway-1"], signal.SIGKILL)
        running.until(r"gateway-1 gone \(-9\)", 120)
        out = running.finish(300)
    assert running.process.returncode == 0, out
    _, kwh = _event(out)
    assert kwh > 100, out
    _, second, both = _through(out)
    # Stations that discharged through gateway 1 discharged through gateway 2 after the kill:
    # they reconnected there and the workers' setpoints reached them.
    assert both > 3 and second > both, out
    _assert_nothing_left(pids, folder)


def test_ctrl_c_stops_every_process_of_the_demo(tmp_path: Path) -> None:
    with demo(tmp_path, 12) as running:
        folder, pids = running.services_folder(), running.pids()
        assert _processes_in(folder)  # PostgreSQL and NATS run from there
        running.until("62 sites on 2 workers", 120)  # the fleet is connecting
        running.process.send_signal(signal.SIGINT)
        running.finish(120)
    assert running.process.returncode == 0
    _assert_nothing_left(pids, folder)


def test_a_demo_killed_with_sigkill_takes_every_process_with_it(tmp_path: Path) -> None:
    with demo(tmp_path, 12) as running:
        folder, pids = running.services_folder(), running.pids()  # all six are up
        children = descendants(running.process.pid)
        commands = [" ".join(command_line(p)) for p in children]
        assert set(pids.values()) <= set(children)
        assert sum("/postgres -D" in c for c in commands) == 1, commands  # the postmaster
        assert sum("nats-server" in c for c in commands) == 1, commands
        ports = listening_ports(children)
        assert len(ports) == 4, commands  # PostgreSQL's, NATS's, the two gateways'
        assert not any(port_free(p) for p in ports)
        os.kill(running.process.pid, signal.SIGKILL)  # no clean-up of the demo's runs
        running.process.wait(10)
        assert survivors(children, timeout_s=30) == []
        assert [p for p in ports if not port_free(p)] == []
    assert _processes_in(folder) == []
    assert Path(folder).exists()  # nobody was left to remove it: the next demo's sweep does
    assert (Path(folder) / "owner").read_text().split()[0] == str(running.process.pid)
    assert Path(folder) in sweep_leftovers(Path(folder).parent)
    assert not Path(folder).exists()


def test_the_sweep_removes_only_folders_whose_demo_is_gone(tmp_path: Path) -> None:
    started = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
    folders = {
        name: tmp_path / f"lightson-demo-{name}"
        for name in ("running", "gone", "reused-pid", "starting", "garbled")
    }
    for folder in folders.values():
        (folder / "pg").mkdir(parents=True)
    (folders["running"] / "owner").write_text(f"{os.getpid()} {started}\n")
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait(30)  # its pid names no process now (or, reused, one started later)
    (folders["gone"] / "owner").write_text(f"{dead.pid} {started}\n")
    (folders["reused-pid"] / "owner").write_text(f"{os.getpid()} {int(started) - 1}\n")
    (folders["garbled"] / "owner").write_text("not a pid\n")
    (tmp_path / "other-gone").mkdir()
    (tmp_path / "other-gone" / "owner").write_text(f"{dead.pid} {started}\n")
    assert sweep_leftovers(tmp_path) == [folders["gone"], folders["reused-pid"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lightson-demo-garbled",
        "lightson-demo-running",
        "lightson-demo-starting",
        "other-gone",
    ]


def test_keep_open_is_refused_with_distributed_in_one_line(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "lightson.cli", "demo", "--distributed", "--keep-open"),
            *("--out", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "--keep-open" in lines[0] and "--distributed" in lines[0], lines
