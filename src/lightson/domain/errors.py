"""The one error hierarchy of Lights On.

Every error says whether retrying the same call can help (``retryable``), so callers
(the CLI, later the API and the control loop) decide without parsing messages::

    LightsOnError                      base; ``retryable`` is False unless said otherwise
    ├── ConfigError                    bad program file or argument; names the field path
    │   └── UnknownNameError           a catalog/registry name that does not exist
    ├── DuplicateNameError             a registry refused a second entry with the same name
    ├── DataError                      a data file is missing or malformed
    ├── StorageError                   the database cannot be opened or written
    │                                  (``retryable`` True: a full disk or a lost server
    │                                  may come back)
    └── SolverError                    the LP solver failed for a reason other than the model
                                       (``retryable`` True: a time limit or transient failure)

Messages name the field (``sites[3].vehicles[0].battery_kwh: must be > 0``) and, for
unknown names, the valid choices.
"""

from __future__ import annotations

from collections.abc import Iterable


class LightsOnError(Exception):
    """Base of every error Lights On raises on purpose."""

    retryable: bool = False


class ConfigError(LightsOnError, ValueError):
    """A program file or argument breaks a rule; ``issues`` lists ``(path, rule)`` pairs."""

    def __init__(self, issues: Iterable[tuple[str, str]]) -> None:
        self.issues: tuple[tuple[str, str], ...] = tuple(issues)
        super().__init__(
            "\n".join(f"{path}: {rule}" if path else rule for path, rule in self.issues)
        )

    @classmethod
    def at(cls, path: str, rule: str) -> ConfigError:
        """One issue at one field path."""
        return cls([(path, rule)])


class UnknownNameError(ConfigError, KeyError):
    """A name that is not in its catalog or registry; the message lists the known names."""

    def __init__(self, kind: str, name: str, known: Iterable[str], path: str = "") -> None:
        self.kind = kind
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__([(path, f"unknown {kind} '{name}'; known: {', '.join(self.known)}")])

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return Exception.__str__(self)


class DuplicateNameError(LightsOnError, ValueError):
    """A registry already holds an entry with this name."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"duplicate {kind} '{name}': names must be unique")


class DataError(LightsOnError):
    """A data file is missing or does not have the expected shape."""


class StorageError(LightsOnError):
    """The database cannot be opened or written (read-only, disk full, server gone)."""

    retryable = True


class SolverError(LightsOnError):
    """The solver stopped without a usable answer for a reason outside the model.

    Retrying can help (time limits, memory, an interrupted run).
    """

    retryable = True
