"""The fencing rule a gateway applies to commands: a site's commands are admitted only from
the newest lease holder. A worker that lost its lease (paused, partitioned, presumed dead)
may still send; its fence is lower than its successor's, and the gateway refuses it."""

from __future__ import annotations


class Fences:
    """The highest fence seen per site; a command with a lower one is refused."""

    def __init__(self) -> None:
        self._highest: dict[str, int] = {}

    def admit(self, site_id: str, fence: int) -> bool:
        """Whether a command for ``site_id`` carrying ``fence`` may go to a station; an
        admitted fence becomes the site's floor."""
        if fence < 0:
            return False
        if fence < self._highest.get(site_id, 0):
            return False
        self._highest[site_id] = fence
        return True

    def highest(self, site_id: str) -> int | None:
        return self._highest.get(site_id)
