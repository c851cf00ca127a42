"""Event intake as a utility would use it: JSON bodies, field-named refusals, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lightson.domain.errors import ConfigError
from lightson.domain.time import SimClock
from lightson.services.events import EventService
from lightson.store import Store

BODY = {
    "event_id": "ng-2030-07-15",
    "program_id": "cs-ci-daily",
    "start": "2030-07-15T19:00:00Z",  # 15:00 in Boston
    "end": "2030-07-15T22:00:00Z",
    "sites": ["school-beverly"],
}


@pytest.fixture
def service(tmp_path: Path) -> Any:
    store = Store(f"sqlite:///{tmp_path / 'events.db'}")
    yield EventService(store, SimClock(datetime(2030, 7, 14, 20, tzinfo=UTC)))
    store.close()


def test_a_utility_posts_an_event_in_utc_and_it_is_kept(service: EventService) -> None:
    event = service.submit(BODY)
    assert event.notice_at == datetime(2030, 7, 14, 20, tzinfo=UTC)  # when it arrived
    assert service.submit(BODY) == event  # a retry is the same event
    again = service.book().events["ng-2030-07-15"]
    assert again.start == datetime(2030, 7, 15, 19, tzinfo=UTC) and again.sites == (
        "school-beverly",
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": "2030-07-15T15:00:00"}, "start"),  # no offset
        ({"end": None}, "end"),
        ({"event_id": "has space"}, "event_id"),
        ({"colour": "red"}, "colour"),
        ({"start": "2030-07-15T16:00:00Z", "end": "2030-07-15T18:00:00Z"}, "start"),  # 12:00 EDT
    ],
)
def test_bad_bodies_are_refused_with_the_field_named(
    service: EventService, change: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        service.submit(body)
    assert any(path == field for path, _ in caught.value.issues), caught.value.issues
    assert service.book().events == {}


def test_cancel_and_opt_out_are_stored(service: EventService) -> None:
    service.submit(BODY)
    service.opt_out("ng-2030-07-15", "school-beverly")
    assert service.book().events["ng-2030-07-15"].opt_outs == {"school-beverly"}
    service.cancel("ng-2030-07-15")
    assert service.book().events["ng-2030-07-15"].cancelled_at is not None


def test_an_event_posted_after_its_start_is_refused_by_its_start(service: EventService) -> None:
    with pytest.raises(ConfigError, match="start: is past"):
        service.submit({**BODY, "start": "2030-07-14T19:00:00Z", "end": "2030-07-14T21:00:00Z"})
