"""The VEN's certificates against openleadr's VTN over mutual TLS on loopback (certificates
made in the test): with ``--openadr-cert/--openadr-key/--openadr-ca`` it registers, its TLS
certificate and its message signatures matching the fingerprint the VTN was given; without a
client certificate the VTN refuses the handshake and the VEN keeps trying."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openleadr import OpenADRServer, utils

from lightson.domain.time import SimClock
from lightson.dr.openadr import Backoff, OpenAdrVen, VenSettings, VenState
from lightson.services.events import EventService
from lightson.store import Store
from net_support import free_port
from tls_support import Authority

NOW = datetime(2030, 7, 15, 20, tzinfo=UTC)


async def _register(tmp_path: Path, with_certificate: bool) -> tuple[OpenAdrVen, list[str]]:
    authority = Authority(tmp_path)
    vtn_cert, vtn_key = authority.issue("vtn.test", server=True)
    ven_cert, ven_key = authority.issue("lightson-ven")
    fingerprint = utils.certificate_fingerprint(ven_cert.read_bytes())
    port = free_port()
    vtn = OpenADRServer(
        vtn_id="utility-vtn",
        http_host="127.0.0.1",
        http_port=port,
        http_cert=str(vtn_cert),
        http_key=str(vtn_key),
        http_ca_file=str(authority.path),
        requested_poll_freq=timedelta(seconds=1),
        fingerprint_lookup=lambda ven_id: fingerprint,
        show_fingerprint=False,
    )
    seen: list[str] = []  # the fingerprint of each registering VEN's certificate

    async def register(info: dict[str, Any]) -> tuple[str, str]:
        seen.append(info["fingerprint"])
        return "ven-1", "registration-1"

    vtn.add_handler("on_create_party_registration", register)
    await vtn.run_async()
    store = Store(f"sqlite:///{tmp_path / 'tls.db'}")
    settings = VenSettings(
        f"https://127.0.0.1:{port}/OpenADR2/Simple/2.0b",
        "lightson-ven",
        cert=ven_cert if with_certificate else None,
        key=ven_key if with_certificate else None,
        ca=authority.path,
    )
    ven = OpenAdrVen(
        EventService(store, SimClock(NOW)),
        settings,
        SimClock(NOW),
        backoff=Backoff(first_s=0.05, max_s=0.1),
        rng=random.Random(4),
    )
    try:
        await ven.start()
        async with asyncio.timeout(20):
            while ven.status.last_poll_at is None and ven.status.attempts < 4:
                await asyncio.sleep(0.05)
    finally:
        await ven.stop()
        await vtn.stop()
        store.close()
    return ven, [s == fingerprint for s in seen]


def test_the_ven_registers_over_mutual_tls_with_its_certificate(tmp_path: Path) -> None:
    ven, matched = asyncio.run(asyncio.wait_for(_register(tmp_path, True), 60))
    assert matched == [True]
    assert ven.status.registered_at == NOW and ven.status.last_poll_at == NOW
    assert ven.status.state is VenState.STOPPED  # after stop()


def test_without_a_client_certificate_the_vtn_refuses_and_the_ven_keeps_trying(
    tmp_path: Path,
) -> None:
    ven, matched = asyncio.run(asyncio.wait_for(_register(tmp_path, False), 60))
    assert matched == []
    assert ven.status.registered_at is None and ven.status.attempts >= 4
    assert ven.status.last_error == "no valid answer from the VTN to EiRegisterParty"
