"""What an OCPP 1.6J station sends, answered and stored (gateway side): status notifications,
start and stop transactions (1.6 transaction ids are the ids of their ``Started`` rows) and
meter values. See ``csms.sessions``."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from lightson.csms.rpc import on
from lightson.csms.sessions import StationSession
from lightson.csms.translate import parse_timestamp
from lightson.store import schema as db
from lightson.store.transactions import station_transactions

LOGGER = logging.getLogger("lightson.csms")


class Session16(StationSession):
    """OCPP 1.6J stations."""

    @on("StatusNotification")
    async def on_status_notification(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        row = {
            "station_id": self.id,
            "evse_id": raw["connectorId"],
            "connector_id": raw["connectorId"],
            "status": raw["status"],
            "at": parse_timestamp(raw["timestamp"]) if "timestamp" in raw else self.now,
        }
        await self.server.store.commit([(db.evse_status, row)])
        if row["status"] == "Available":
            await self.server.reconciler.on_available(self.id, row["evse_id"], row["at"])
        return {}

    @on("Authorize")
    def on_authorize(self, **_: Any) -> dict[str, Any]:
        return {"id_tag_info": {"status": "Accepted"}}

    def _event(
        self, event_type: str, transaction_id: int, connector_id: int | None
    ) -> dict[str, Any]:
        raw = self._raw
        return {
            "station_id": self.id,
            "evse_id": connector_id,
            "transaction_id": str(transaction_id),
            "seq_no": None,
            "event_type": event_type,
            "trigger_reason": raw.get("reason"),
            "at": parse_timestamp(raw["timestamp"]),
            "offline": False,
            "id_token": raw.get("idTag"),
            "received_at": self.now,
            "payload": dict(raw),
        }

    @on("StartTransaction")
    async def on_start_transaction(self, **_: Any) -> dict[str, Any]:
        row = self._event("Started", 0, int(self._raw["connectorId"]))
        transaction_id = await self.server.start_transaction_16(row)
        return {"transaction_id": transaction_id, "id_tag_info": {"status": "Accepted"}}

    @on("StopTransaction")
    async def on_stop_transaction(self, **_: Any) -> dict[str, Any]:
        transaction_id = int(self._raw["transactionId"])
        known = await asyncio.to_thread(
            station_transactions, self.server.store, self.id, str(transaction_id)
        )
        if not known:
            return await self._stop_unknown(transaction_id)
        self.server.reconciler.ended_by_station(self.id, str(transaction_id))
        connector_id = known[0].evse_id  # from the store: also right after a restart
        row = self._event("Ended", transaction_id, connector_id)
        await self.store_meter(
            connector_id or 0,
            self._raw.get("transactionData", []),
            str(transaction_id),
            extra=[(db.transaction_events, row)],
            field="transactionData",
        )
        if "idTag" in self._raw:
            return {"id_tag_info": {"status": "Accepted"}}
        return {}

    async def _stop_unknown(self, transaction_id: int) -> dict[str, Any]:
        """A StopTransaction for an id never issued to this station. 1.6 (4.10): the Central
        System SHALL answer it (else the station resends it), cannot prevent a transaction
        from stopping, and its ``idTagInfo`` is about the tag, which the station puts in its
        authorization cache: so the tag gets what Authorize gives it here, not ``Invalid``
        (that would lock a good card out). It is not stored as the end of anything; the
        frame is kept in ``quarantine`` and logged."""
        LOGGER.warning("%s: StopTransaction for unknown transaction %d", self.id, transaction_id)
        row = {
            "received_at": self.now,
            "source": "ocpp",
            "station_id": self.id,
            "action": "StopTransaction",
            "field": "transactionId",
            "value": str(transaction_id),
            "reason": "no transaction with this id was started at this station",
            "raw": json.dumps(self._raw),
        }
        await self.server.store.commit([(db.quarantine, row)])
        if "idTag" in self._raw:
            return {"id_tag_info": {"status": "Accepted"}}
        return {}

    @on("DiagnosticsStatusNotification")
    def on_diagnostics_status_notification(self, **_: Any) -> dict[str, Any]:
        return {}

    @on("MeterValues")
    async def on_meter_values(self, **_: Any) -> dict[str, Any]:
        raw = self._raw
        transaction = raw.get("transactionId")
        await self.store_meter(
            int(raw["connectorId"]),
            raw["meterValue"],
            None if transaction is None else str(transaction),
        )
        if transaction is not None:
            taken = [parse_timestamp(m["timestamp"]) for m in raw["meterValue"]]
            await self.server.reconciler.on_meter_values_16(
                self.id, str(transaction), int(raw["connectorId"]), max(taken, default=None)
            )
        return {}
