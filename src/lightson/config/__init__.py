"""The program file (YAML) a program manager edits, and its loader.

``load_program(path)`` returns a validated ``Program`` or raises ``ConfigError`` whose
issues name each bad field by path (``sites[3].vehicles[0].battery_kwh: must be > 0``).
"""

from lightson.config.loader import EXAMPLE_PROGRAM, load_program, parse_program

__all__ = ["EXAMPLE_PROGRAM", "load_program", "parse_program"]
