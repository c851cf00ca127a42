"""What an OCPP 2.1 or 2.0.1 station sends, answered and stored (gateway side): status
notifications, transaction events (``seqNo`` gaps recorded), meter values, the ISO 15118
charging needs, and the reports and notices it volunteers. See ``csms.sessions``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table

from lightson.csms.rpc import on
from lightson.csms.sessions import StationSession
from lightson.csms.translate import charging_needs, parse_timestamp
from lightson.domain.telemetry import ChargingNeeds
from lightson.store import schema as db

LOGGER = logging.getLogger("lightson.csms")


class Session2x(StationSession):
    """OCPP 2.0.1 and 2.1 stations."""

    @on("StatusNotification")
    async def on_status_notification(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        row = {
            "station_id": self.id,
            "evse_id": raw["evseId"],
            "connector_id": raw["connectorId"],
            "status": raw["connectorStatus"],
            "at": parse_timestamp(raw["timestamp"]),
        }
        await self.server.store.commit([(db.evse_status, row)])
        if row["status"] == "Available":
            await self.server.reconciler.on_available(self.id, row["evse_id"], row["at"])
        return {}

    @on("Authorize")
    def on_authorize(self, **_: Any) -> dict[str, Any]:
        return {"id_token_info": {"status": "Accepted"}}

    @on("TransactionEvent")
    async def on_transaction_event(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        transaction_id = raw["transactionInfo"]["transactionId"]
        # Only the first event of a transaction must name its EVSE: remember it.
        known_evse = self.server.transaction_evse.get((self.id, transaction_id))
        evse_id = raw.get("evse", {}).get("id", known_evse)
        if evse_id is not None:
            self.server.transaction_evse[(self.id, transaction_id)] = evse_id
        self.server.reconciler.heard(self.id, transaction_id)
        seq_no = int(raw["seqNo"])
        rows: list[tuple[Table, Mapping[str, Any]]] = [
            (
                db.transaction_events,
                {
                    "station_id": self.id,
                    "evse_id": evse_id,
                    "transaction_id": transaction_id,
                    "seq_no": seq_no,
                    "event_type": raw["eventType"],
                    "trigger_reason": raw["triggerReason"],
                    "at": parse_timestamp(raw["timestamp"]),
                    "offline": bool(raw.get("offline", False)),
                    "id_token": raw.get("idToken", {}).get("idToken"),
                    "received_at": self.now,
                    "payload": dict(raw),
                },
            )
        ]
        gap = self.server.sequence.observe(self.id, transaction_id, seq_no)
        if gap is not None:
            LOGGER.warning(
                "%s: transaction %s is missing seqNo %d..%d",
                self.id,
                transaction_id,
                gap[0],
                gap[1],
            )
            rows.append(
                (
                    db.sequence_gaps,
                    {
                        "station_id": self.id,
                        "transaction_id": transaction_id,
                        "first_missing": gap[0],
                        "last_missing": gap[1],
                        "noticed_at": self.now,
                    },
                )
            )
        await self.store_meter(
            evse_id or 0, raw.get("meterValue", []), transaction_id, extra=rows, seq_no=seq_no
        )
        if "idToken" in raw:
            return {"id_token_info": {"status": "Accepted"}}
        return {}

    @on("MeterValues")
    async def on_meter_values(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        await self.store_meter(int(raw["evseId"]), raw["meterValue"], None)
        return {}

    @on("NotifyEVChargingNeeds")
    async def on_notify_ev_charging_needs(self, **_: Any) -> dict[str, Any]:
        needs = charging_needs(self.id, self._raw, self.now)
        await self.server.store.commit([(db.charging_needs, _needs_row(needs))])
        self.server.telemetry.publish_needs(needs)
        return {"status": "Accepted"}

    @on("ReportChargingProfiles")
    def on_report_charging_profiles(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        self.server.reported_profiles.setdefault(self.id, []).extend(raw["chargingProfile"])
        return {}

    @on("NotifyReport")
    def on_notify_report(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("NotifyEvent")
    def on_notify_event(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("SecurityEventNotification")
    def on_security_event_notification(self, **_: Any) -> dict[str, Any]:
        LOGGER.info("%s: security event %s", self.id, self._raw.get("type"))
        return {}

    @on("LogStatusNotification")
    def on_log_status_notification(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("NotifyChargingLimit")
    def on_notify_charging_limit(self, **_: Any) -> dict[str, Any]:
        LOGGER.info("%s: external charging limit %s", self.id, self._raw.get("chargingLimit"))
        return {}

    @on("ClearedChargingLimit")
    def on_cleared_charging_limit(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("NotifyEVChargingSchedule")
    def on_notify_ev_charging_schedule(self, **_: Any) -> dict[str, Any]:
        return {"status": "Accepted"}


def _needs_row(needs: ChargingNeeds) -> dict[str, Any]:
    return {
        "station_id": needs.station_id,
        "evse_id": needs.evse_id,
        "at": needs.at,
        "departure": needs.departure,
        "energy_request_kwh": needs.energy_request_kwh,
        "max_charge_kw": needs.max_charge_kw,
        "max_discharge_kw": needs.max_discharge_kw,
        "target_soc": needs.target_soc,
        "bidirectional": needs.bidirectional,
        "min_charge_kw": needs.min_charge_kw,
        "min_discharge_kw": needs.min_discharge_kw,
    }
