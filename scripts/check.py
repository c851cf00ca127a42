"""Every gate, in one command that people and CI both run: ruff (lint and format),
mypy (strict on src/),
import-linter layer contracts, pytest. Stops at the first failing gate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

SOURCES = [d for d in ("src", "tests", "bench", "scripts") if (ROOT / d).is_dir()]

GATES = [
    ("ruff", [str(BIN / "ruff"), "check", *SOURCES]),
    ("ruff format", [str(BIN / "ruff"), "format", "--check", *SOURCES]),
    ("mypy", [str(BIN / "mypy")]),
    ("import-linter", [str(BIN / "lint-imports")]),
    ("pytest", [str(BIN / "pytest"), "-q", *sys.argv[1:]]),
]


def main() -> int:
    for name, command in GATES:
        shown = " ".join([Path(command[0]).name, *command[1:]])
        print(f"== {name}: {shown}", flush=True)
        code = subprocess.call(command, cwd=ROOT)
        if code == 5 and name == "pytest":
            print("pytest collected no tests: that is a failure here", flush=True)
            return 1
        if code != 0:
            print(f"== {name} failed (exit {code})", flush=True)
            return code
    print("== all gates passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
