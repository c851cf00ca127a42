"""Fence floors shared by every gateway, in the JetStream key-value bucket
``lightson-fences``: key a site id, value the highest fence admitted for that site anywhere.

:class:`~lightson.bus.fencing.Fences` keeps one gateway's floors in memory; a station that
moves to another gateway (its gateway died, it was rebalanced) would then meet a gateway that
never saw the site's newest fence, and a deposed worker's command would pass there. The floor
in the bucket moves with the site instead. It is raised only by a compare-and-set on the key's
revision (``create`` for a new key, ``update(last=revision)`` otherwise): two gateways raising
it at once cannot lower it, since the loser re-reads and tries again. A floor never decreases.

What is left: a command admitted at the floor may reach its station a moment after a
successor's higher fence raised the floor elsewhere (the check and the call are not atomic);
the successor's next command wins, as with any fencing token checked short of the device.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from lightson.bus.connection import BrokerError
from lightson.bus.fencing import Fences

LOGGER = logging.getLogger("lightson.bus")
FENCE_BUCKET = "lightson-fences"
MAX_CONFLICTS = 32  # compare-and-set rounds lost in a row before giving up on one command


class FenceFloors:
    """Admit or refuse a site's command by its fence, against the shared floor. A local
    :class:`Fences` refuses at once what is below a floor this gateway already saw (floors
    only rise, so that is never wrong) and spares the broker a round trip."""

    def __init__(self, bucket: KeyValue) -> None:
        self.bucket = bucket
        self.local = Fences()

    @classmethod
    async def open(cls, jetstream: JetStreamContext) -> FenceFloors:
        """The floors in ``lightson-fences``, creating the bucket the first time (creating
        it again with the same settings, as a second gateway may, changes nothing)."""
        try:
            bucket = await jetstream.key_value(FENCE_BUCKET)
        except BucketNotFoundError:
            bucket = await jetstream.create_key_value(bucket=FENCE_BUCKET, history=1)
        return cls(bucket)

    async def floor(self, site_id: str) -> tuple[int | None, int]:
        """The site's floor (``None``: no fence admitted yet) and the key's revision (0)."""
        try:
            entry = await self.bucket.get(site_id)
        except KeyNotFoundError:  # also a deleted key: ``create`` then writes over it
            return None, 0
        return int(entry.value or b"0"), int(entry.revision or 0)

    async def admit(self, site_id: str, fence: int) -> bool:
        """Whether a command for ``site_id`` carrying ``fence`` may go to a station; an
        admitted fence becomes the site's floor everywhere. :class:`BrokerError` when the
        compare-and-set keeps losing (:data:`MAX_CONFLICTS` rounds)."""
        known = self.local.highest(site_id)
        if fence < 0 or (known is not None and fence < known):
            return False
        for _ in range(MAX_CONFLICTS):
            floor, revision = await self.floor(site_id)
            if floor is not None and fence < floor:
                self.local.admit(site_id, floor)
                return False
            if floor == fence:
                self.local.admit(site_id, fence)
                return True
            try:
                if floor is None:
                    await self.bucket.create(site_id, str(fence).encode())
                else:
                    await self.bucket.update(site_id, str(fence).encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue  # another gateway moved the floor meanwhile: read it again
            self.local.admit(site_id, fence)
            return True
        raise BrokerError(f"the fence floor of {site_id} kept changing under {MAX_CONFLICTS} tries")


__all__ = ["FENCE_BUCKET", "FenceFloors"]
