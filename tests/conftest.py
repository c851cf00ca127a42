from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def example_program():  # type: ignore[no-untyped-def]
    from lightson.config import load_program

    return load_program("example")
