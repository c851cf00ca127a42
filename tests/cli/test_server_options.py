"""Options of `lightson csms` and `lightson serve` reach what they configure: the offline limit,
the API's limits and docs; a too short offline limit is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lightson.cli import main
from lightson.cli import ocpp as ocpp_cli
from lightson.csms.server import CsmsSettings


class _StoppedError(Exception):
    pass


def test_csms_takes_the_offline_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[CsmsSettings] = []

    class Recording:
        def __init__(self, store: Any, clock: Any, settings: CsmsSettings) -> None:
            seen.append(settings)

        async def __aenter__(self) -> None:
            raise _StoppedError

        async def __aexit__(self, *_: object) -> None:
            return None

    monkeypatch.setattr(ocpp_cli, "CsmsServer", Recording)
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    result = CliRunner().invoke(
        main, ["csms", "--db", database, "--port", "0", "--offline-close-after", "1800"]
    )
    assert isinstance(result.exception, _StoppedError)
    assert [s.offline_close_after_s for s in seen] == [1800]
    assert CsmsSettings().offline_close_after_s == 900  # 15 minutes unless told


@pytest.mark.parametrize("command", ["csms", "serve"])
def test_a_limit_under_a_minute_is_refused_naming_the_option(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--offline-close-after", "5"])
    assert result.exit_code == 2
    assert "--offline-close-after" in result.output


def test_serve_passes_its_api_options_to_the_operations_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightson.cli import serve as serve_cli

    seen: list[dict[str, Any]] = []

    def recording(*_: Any, **options: Any) -> None:
        seen.append(options)
        raise _StoppedError

    monkeypatch.setattr(serve_cli, "OperationsServer", recording)
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    arguments = ["serve", "--db", database, "--utility-min-sites", "3", "--api-docs"]
    result = CliRunner().invoke(main, [*arguments, "--max-body-kb", "64"])
    assert isinstance(result.exception, _StoppedError)
    (options,) = seen
    assert (options["utility_min_sites"], options["api_docs"]) == (3, True)
    assert options["max_body_bytes"] == 64 * 1024
    result = CliRunner().invoke(main, ["serve", "--db", database])
    assert (seen[1]["utility_min_sites"], seen[1]["api_docs"]) == (5, False)
