"""One table names the failure causes for the twin and the live season alike (#16)."""

from __future__ import annotations

from lightson.config.schema import FailuresFile
from lightson.domain.failures import CAUSES, CauseCategory, FailureCause, cause_label
from lightson.reports.program_report import _lost_by_label, shortfall_reason


def test_every_cause_has_one_label_category_and_file_key() -> None:
    assert set(CAUSES) == set(FailureCause)
    labels = [info.label for info in CAUSES.values()]
    assert len(set(labels)) == len(labels)
    # each cause's parameters are the program file's failures section of that name
    assert {info.file_key for info in CAUSES.values()} == set(FailuresFile.model_fields) - {"base"}
    assert CAUSES[FailureCause.FAULT].category is CauseCategory.EQUIPMENT
    assert CAUSES[FailureCause.COMMS].category is CauseCategory.COMMUNICATION
    owner = {c for c, info in CAUSES.items() if info.category is CauseCategory.OWNER}
    assert owner == {FailureCause.OPT_OUT, FailureCause.LATE_PLUG_IN, FailureCause.EARLY_DEPARTURE}


def test_the_live_report_names_shortfalls_by_the_same_table() -> None:
    assert shortfall_reason(0.0, 1.0, 60.0, opted_out=True) == cause_label(FailureCause.OPT_OUT)
    assert shortfall_reason(0.0, 1.0, 60.0, faulted=True) == "charger fault"
    assert shortfall_reason(0.0, 1.0, 60.0, silent=True) == "communication lost"
    lost = {"fault": 60.0, "late_plug_in": 25.0}
    assert _lost_by_label(lost) == {
        "charger fault (equipment)": 60.0,
        "plugged in late (owner)": 25.0,
    }
