"""Reserve sizing: a higher reserve buys backup and costs demand-response money."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from lightson.cli import main
from lightson.domain.assets import LoadTier
from lightson.sim.reserve import ReservePoint, reserve_tradeoff, smallest_reserve, with_reserve


def test_with_reserve_changes_only_the_sites_v2x_vehicles(example_program) -> None:  # type: ignore[no-untyped-def]
    changed = with_reserve(example_program, "school-beverly", 0.5)
    assert [v.reserve_soc for v in changed.site("school-beverly").vehicles] == [0.5, 0.5]
    assert changed.site("home-lowell") == example_program.site("home-lowell")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        with_reserve(example_program, "school-beverly", 1.0)


def test_a_higher_reserve_carries_more_and_earns_less(example_program) -> None:  # type: ignore[no-untyped-def]
    tz = example_program.timezone
    low, high = reserve_tradeoff(
        example_program,
        "school-beverly",
        "v2x-mpc",
        datetime(2026, 7, 14, tzinfo=tz),
        96 * 4,
        [0.8, 0.1],
        LoadTier.CRITICAL,
        need_hours=8.0,
        max_hours=24.0,
    )
    assert (low.reserve_soc, high.reserve_soc) == (0.1, 0.8)  # sorted
    assert high.survival_probability >= low.survival_probability
    assert high.median_hours > low.median_hours
    assert high.dr_payment_usd < low.dr_payment_usd  # the 15 July event pays less
    assert high.net_cost_usd > low.net_cost_usd


def test_smallest_reserve_reaching_the_target() -> None:
    points = [
        ReservePoint(r, p, 0.0, 0.0, 0.0, 0.0)
        for r, p in ((0.0, 0.2), (0.2, 0.6), (0.4, 0.95), (0.6, 0.99))
    ]
    assert smallest_reserve(points, 0.9) == points[2]
    assert smallest_reserve(points, 0.999) is None


def test_resilience_reserves_writes_the_tradeoff(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "resilience",
            "--site",
            "school-beverly",
            "--start",
            "2026-07-14T00:00",
            "--days",
            "4",
            "--max-hours",
            "24",
            "--reserves",
            "0.2,0.6",
            "--need-hours",
            "8",
            "--probability",
            "0.5",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reserve-tradeoff.png").stat().st_size > 10_000
    lines = (tmp_path / "reserve.csv").read_text().splitlines()
    assert lines[0].startswith("reserve_soc,survival_probability") and len(lines) == 3
    assert "smallest reserve" in result.output or "no reserve tried" in result.output


@pytest.mark.parametrize(
    ("reserves", "message"), [("0.2,lots", "must be numbers"), ("0.2,1.5", "in [0, 1)")]
)
def test_bad_reserves_are_refused_by_name(tmp_path: Path, reserves: str, message: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "resilience",
            "--site",
            "school-beverly",
            "--days",
            "4",
            "--max-hours",
            "24",
            "--reserves",
            reserves,
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "--reserves: " in result.output and message in result.output
