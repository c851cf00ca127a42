"""Lights On: an open-source platform for vehicle-to-everything (V2X) programs.

The package is layered (see ``docs/architecture.md``)::

    domain <- physics <- {forecast, optimize} <- reports <- {config, datasets} <- cli

The core (``domain``, ``physics``, ``forecast``, ``optimize``) is pure: no files,
sockets or wall clock. Edges read files and talk to the world.
"""

__version__ = "0.1.0"
