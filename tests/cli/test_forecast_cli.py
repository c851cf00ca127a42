"""``lightson forecast score`` (#16): a table per forecaster, from the twin or a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from lightson.cli import main
from lightson.store import Store
from lightson.store import schema as db


def test_score_from_the_twin_prints_each_forecaster() -> None:
    result = CliRunner().invoke(
        main,
        ["forecast", "score", "example", "--site", "home-lowell", "--days", "10", "--weeks", "1"],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:4] == ["forecaster", "days", "MAE", "kW"]
    assert [line.split()[0] for line in lines[1:]] == ["profile", "recent-days", "learned"]
    assert all(line.split()[1] == "7" for line in lines[1:])


def test_score_from_the_meter_history_and_the_choice_is_required(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    store = Store(url)
    end = datetime(2026, 7, 20, 4, 0, tzinfo=UTC)  # local midnight
    rows = []
    for k in range(10 * 96):
        at = end - timedelta(days=10) + k * timedelta(minutes=15)
        load_kw = 5.0 if at.hour >= 22 or at.hour < 2 else 1.0
        row = {"site_id": "home-lowell", "at": at, "load_kw": load_kw, "received_at": end}
        rows.append((db.site_meter, row))
    store.write(rows).result(60)
    store.close()
    args = ["forecast", "score", "example", "--site", "home-lowell", "--weeks", "1"]
    result = CliRunner().invoke(main, [*args, "--db", url, "--end", "2026-07-20T00:00"])
    assert result.exit_code == 0, result.output
    scores = {line.split()[0]: float(line.split()[2]) for line in result.output.splitlines()[1:]}
    assert scores["recent-days"] == 0.0  # the same day every day: seasonal naive is exact
    assert scores["profile"] > 0.5
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code != 0 and "--db" in refused.output
