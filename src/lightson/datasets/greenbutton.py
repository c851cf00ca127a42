"""Reading a utility's Green Button interval data: the energy the premises drew, interval by
interval (``read_green_button``).

Two formats:

- **ESPI XML** (NAESB REQ.21, the Green Button "Download My Data" XML): an Atom feed whose
  entries hold ``espi:ReadingType`` (``uom`` 72 = Wh, ``powerOfTenMultiplier``,
  ``flowDirection`` 1 = delivered to the customer, 19 = received from them,
  ``intervalLength`` s), ``espi:MeterReading`` (linked to its ReadingType by
  ``<link rel="related">``) and ``espi:IntervalBlock`` (under its MeterReading's address)
  with ``espi:IntervalReading``: ``timePeriod/start`` (Unix seconds, UTC),
  ``timePeriod/duration`` (s) and ``value`` (in ``uom`` × 10^``powerOfTenMultiplier``).
- **CSV**, as Eversource and National Grid (Massachusetts) export it: a few lines about the
  account, then ``TYPE,DATE,START TIME,END TIME,USAGE,UNITS,COST,NOTES`` and one row per
  interval (``Electric usage,2025-11-02,01:00,01:14,0.31,kWh,$0.09,``), in local clock time
  (``America/New_York``). An END TIME of ``:14``/``:29``/``:59`` is the interval's last
  minute; the fall-back hour is written twice (first EDT, then EST); a row inside the
  spring-forward gap is skipped when it holds no energy and refused otherwise.

Only energy delivered to the premises is read (a forward flow; a negative CSV usage is
export): the utility meter measures the whole premises, so a year before the chargers were
installed is the building's own load. Errors name the file, the line or element and the
field (:class:`~lightson.domain.errors.DataError`).
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from lightson.domain.errors import DataError

NEW_YORK = ZoneInfo("America/New_York")
ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"
UOM_WH = 72  # IEC 61968-9 unit of measure: watt-hours
FORWARD, REVERSE = 1, 19  # ESPI flowDirection: delivered to / received from the customer
INTERVAL_MINUTES = (5, 10, 15, 30, 60)


@dataclass(frozen=True)
class IntervalEnergy:
    """Energy delivered to the premises over [``start``, ``start + duration``) (UTC)."""

    start: datetime
    duration: timedelta
    energy_kwh: float


@dataclass(frozen=True)
class GreenButtonData:
    """What a file held: its intervals in time order, and what was left out, by reason."""

    source: str
    intervals: tuple[IntervalEnergy, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def energy_kwh(self) -> float:
        return sum(i.energy_kwh for i in self.intervals)


def read_green_button(path: Path, tz: ZoneInfo = NEW_YORK) -> GreenButtonData:
    """The intervals of a Green Button file, ESPI XML or CSV (told apart by content);
    ``tz``: the clock a CSV's times are in."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from error
    if raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return parse_espi_xml(raw, str(path))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason})") from error
    return parse_green_button_csv(text, str(path), tz)


# --- ESPI XML ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ReadingType:
    uom: int | None
    multiplier: int
    flow: int
    interval_s: int | None


def parse_espi_xml(raw: bytes, source: str) -> GreenButtonData:
    """Intervals of an ESPI Atom feed (see the module's docstring). A document type or
    entity declaration is refused: a Green Button file has none, and entities are how XML
    files attack their readers."""
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise DataError(f"{source}: declares a DOCTYPE or ENTITY (refused)")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as error:
        line, column = error.position
        raise DataError(f"{source}:{line}:{column}: not well-formed XML ({error})") from None
    if root.tag != f"{ATOM}feed":
        raise DataError(f"{source}: root element is {root.tag}, not an Atom <feed>")
    types: dict[str, _ReadingType] = {}
    readings: dict[str, set[str]] = {}  # MeterReading address -> its related addresses
    blocks: list[tuple[str, str, ET.Element]] = []  # (where, address, IntervalBlock)
    for number, entry in enumerate(root.iter(f"{ATOM}entry"), start=1):
        links = _links(entry)
        self_href = links.get("self", [""])[0]
        content = entry.find(f"{ATOM}content")
        if content is None:
            continue
        for item in content:
            where = f"{source}: entry {number} ({item.tag.removeprefix(ESPI)} {self_href})"
            if item.tag == f"{ESPI}ReadingType":
                types[self_href] = _reading_type(item, where)
            elif item.tag == f"{ESPI}MeterReading":
                readings[self_href] = set(links.get("related", []))
                nested = item.find(f"{ESPI}ReadingType")  # some feeds put it inside
                if nested is not None:
                    types[f"{self_href}#ReadingType"] = _reading_type(nested, where)
                    readings[self_href].add(f"{self_href}#ReadingType")
            elif item.tag == f"{ESPI}IntervalBlock":
                up = links.get("up", [self_href])[0]
                blocks.append((where, up or self_href, item))
    if not blocks:
        raise DataError(f"{source}: no espi:IntervalBlock (no interval data in this feed)")
    intervals: list[IntervalEnergy] = []
    skipped: Counter[str] = Counter()
    for where, address, block in blocks:
        kind = _type_of(address, types, readings, where)
        if kind.flow != FORWARD:
            why = "reverse flow (export)" if kind.flow == REVERSE else f"flowDirection {kind.flow}"
            skipped[why] += len(block.findall(f"{ESPI}IntervalReading"))
            continue
        if kind.uom != UOM_WH:
            skipped[f"uom {kind.uom} (not Wh)"] += len(block.findall(f"{ESPI}IntervalReading"))
            continue
        intervals.extend(_block_intervals(block, kind, where))
    return _checked(source, intervals, skipped)


def _links(entry: ET.Element) -> dict[str, list[str]]:
    links: dict[str, list[str]] = {}
    for link in entry.findall(f"{ATOM}link"):
        links.setdefault(link.get("rel", ""), []).append(link.get("href", ""))
    return links


def _reading_type(item: ET.Element, where: str) -> _ReadingType:
    def number(name: str) -> int | None:
        text = item.findtext(f"{ESPI}{name}")
        if text is None or not text.strip():
            return None
        try:
            return int(text)
        except ValueError:
            raise DataError(f"{where}: {name}: '{text.strip()}' is not an integer") from None

    return _ReadingType(
        uom=number("uom"),
        multiplier=number("powerOfTenMultiplier") or 0,
        flow=number("flowDirection") or FORWARD,
        interval_s=number("intervalLength"),
    )


def _type_of(
    address: str,
    types: dict[str, _ReadingType],
    readings: dict[str, set[str]],
    where: str,
) -> _ReadingType:
    """The ReadingType of a block: its MeterReading's (the block's address is under the
    MeterReading's), or the feed's only one."""
    for reading, related in readings.items():
        if reading and address.startswith(reading.rstrip("/") + "/"):
            found = [types[href] for href in related if href in types]
            if len(found) == 1:
                return found[0]
    if len(types) == 1:
        return next(iter(types.values()))
    raise DataError(
        f"{where}: cannot tell its espi:ReadingType ({len(types)} in the feed, none linked "
        "from the MeterReading above the block)"
    )


def _block_intervals(block: ET.Element, kind: _ReadingType, where: str) -> list[IntervalEnergy]:
    found = []
    scale_kwh = 10.0**kind.multiplier / 1000.0  # value × 10^multiplier Wh, in kWh
    for index, reading in enumerate(block.findall(f"{ESPI}IntervalReading"), start=1):
        at = f"{where}, IntervalReading {index}"
        start = _integer(reading, "timePeriod/start", at)
        duration = _integer(reading, "timePeriod/duration", at, kind.interval_s)
        value = _integer(reading, "value", at)
        if duration <= 0:
            raise DataError(f"{at}: timePeriod/duration: must be positive, not {duration}")
        found.append(
            IntervalEnergy(
                datetime.fromtimestamp(start, UTC), timedelta(seconds=duration), value * scale_kwh
            )
        )
    return found


def _integer(reading: ET.Element, path: str, at: str, default: int | None = None) -> int:
    text = reading.findtext("/".join(f"{ESPI}{part}" for part in path.split("/")))
    if text is None or not text.strip():
        if default is not None:
            return default
        raise DataError(f"{at}: {path}: missing")
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{at}: {path}: '{text.strip()}' is not an integer") from None


# --- CSV -----------------------------------------------------------------------------------

_UNITS_KWH = {"kwh": 1.0, "wh": 0.001}
_REQUIRED = ("TYPE", "DATE", "START TIME", "END TIME", "USAGE")


def parse_green_button_csv(text: str, source: str, tz: ZoneInfo = NEW_YORK) -> GreenButtonData:
    """Intervals of a utility's Green Button CSV (see the module's docstring)."""
    lines = text.splitlines()
    header_at = next(
        (i for i, line in enumerate(lines) if line.strip().upper().startswith("TYPE,")), None
    )
    if header_at is None:
        raise DataError(
            f"{source}: no header line 'TYPE,DATE,START TIME,END TIME,USAGE,...' "
            "(not a Green Button CSV)"
        )
    reader = csv.reader(io.StringIO("\n".join(lines[header_at:])))
    header = [name.strip().upper() for name in next(reader)]
    columns, unit_in_header = _columns(header, source, header_at + 1)
    intervals: list[IntervalEnergy] = []
    skipped: Counter[str] = Counter()
    seen: dict[datetime, int] = {}  # local start -> how many times so far (fall-back hour)
    for offset, row in enumerate(reader, start=header_at + 2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in columns.items()}
        where = f"{source}:{offset}"
        if not cells["TYPE"].lower().startswith("electric"):
            skipped[f"type '{cells['TYPE']}'"] += 1
            continue
        usage = cells["USAGE"].replace(",", "")
        if not usage:
            skipped["no usage"] += 1
            continue
        try:
            amount = float(usage)
        except ValueError:
            raise DataError(f"{where}: USAGE: '{cells['USAGE']}' is not a number") from None
        unit = unit_in_header or cells.get("UNITS", "").lower()
        if unit not in _UNITS_KWH:
            raise DataError(f"{where}: UNITS: '{unit}' is not kWh or Wh")
        local, duration = _local_interval(cells, where)
        start = _utc(local, tz, seen, where)
        if start is None:
            if amount != 0:
                raise DataError(
                    f"{where}: START TIME: {local:%Y-%m-%d %H:%M} does not exist in {tz.key} "
                    f"(the spring-forward gap) but holds {amount:g} {unit}"
                )
            skipped["in the spring-forward gap"] += 1
            continue
        if amount < 0:
            skipped["negative usage (export)"] += 1
            continue
        intervals.append(IntervalEnergy(start, duration, amount * _UNITS_KWH[unit]))
    return _checked(source, intervals, skipped)


def _columns(header: list[str], source: str, line: int) -> tuple[dict[str, int], str | None]:
    """Column positions by name; ``USAGE (kWh)`` carries its unit in the header."""
    columns: dict[str, int] = {}
    unit = None
    for i, name in enumerate(header):
        found = re.fullmatch(r"USAGE\s*\((\w+)\)", name)
        if found:
            name, unit = "USAGE", found.group(1).lower()
        columns.setdefault(name, i)
    missing = [name for name in _REQUIRED if name not in columns]
    if unit is None and "UNITS" not in columns:
        missing.append("UNITS")
    if missing:
        raise DataError(f"{source}:{line}: header: no column {', '.join(missing)}")
    return columns, unit


def _local_interval(cells: dict[str, str], where: str) -> tuple[datetime, timedelta]:
    day = _date(cells["DATE"], where)
    start = _clock(cells["START TIME"], "START TIME", where)
    end = _clock(cells["END TIME"], "END TIME", where)
    if end % 5 == 4:  # "00:14": the interval's last minute
        end += 1
    minutes = (end - start) % (24 * 60)
    if minutes not in INTERVAL_MINUTES:
        raise DataError(
            f"{where}: END TIME: {cells['START TIME']}-{cells['END TIME']} is not an interval "
            f"of {', '.join(map(str, INTERVAL_MINUTES))} minutes (daily or billing data "
            "cannot make a load profile)"
        )
    local = datetime.combine(day, time()) + timedelta(minutes=start)
    return local, timedelta(minutes=minutes)


def _date(text: str, where: str) -> date:
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    us = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", text)
    try:
        if iso is not None:
            return date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
        if us is not None:
            year = int(us.group(3)) + (2000 if len(us.group(3)) == 2 else 0)
            return date(year, int(us.group(1)), int(us.group(2)))
    except ValueError:
        pass
    raise DataError(f"{where}: DATE: '{text}' is not a date like 2025-11-02 or 11/2/2025")


def _clock(text: str, name: str, where: str) -> int:
    found = re.fullmatch(r"(\d{1,2}):(\d{2})(?::\d{2})?", text)
    if found is None or int(found.group(1)) > 24 or int(found.group(2)) > 59:
        raise DataError(f"{where}: {name}: '{text}' is not a time like 13:45")
    return int(found.group(1)) * 60 + int(found.group(2))


def _utc(local: datetime, tz: ZoneInfo, seen: dict[datetime, int], where: str) -> datetime | None:
    """The UTC start of a local clock time; the second row at an ambiguous (fall-back) time
    is the later, standard-time one. ``None``: the time does not exist (spring forward)."""
    first = local.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local:
        return None
    second = local.replace(tzinfo=tz, fold=1)
    ambiguous = first.utcoffset() != second.utcoffset()
    count = seen.get(local, 0)
    seen[local] = count + 1
    if count == 0:
        return first.astimezone(UTC)
    if count == 1 and ambiguous:
        return second.astimezone(UTC)
    raise DataError(f"{where}: START TIME: {local:%Y-%m-%d %H:%M} appears more than it can")


def _checked(
    source: str, intervals: list[IntervalEnergy], skipped: Counter[str]
) -> GreenButtonData:
    """Sorted; overlapping intervals (the same time twice with different energy) refused."""
    ordered = sorted(intervals, key=lambda i: i.start)
    kept: list[IntervalEnergy] = []
    for interval in ordered:
        if kept and interval.start < kept[-1].start + kept[-1].duration:
            if interval == kept[-1]:
                continue  # the same reading twice (blocks that overlap in a feed)
            raise DataError(
                f"{source}: intervals overlap at {interval.start.isoformat()} "
                f"({kept[-1].energy_kwh:g} and {interval.energy_kwh:g} kWh)"
            )
        kept.append(interval)
    if not kept:
        reasons = ", ".join(f"{n} {why}" for why, n in skipped.items()) or "none found"
        raise DataError(f"{source}: no interval of energy delivered to the premises ({reasons})")
    return GreenButtonData(source, tuple(kept), dict(skipped))
