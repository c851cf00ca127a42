"""The program file shown in docs/program-file.md is valid, so the docs stay true."""

from __future__ import annotations

import re
from pathlib import Path

from lightson.config import parse_program

DOCS = Path(__file__).parents[2] / "docs"


def test_the_documented_program_file_is_valid() -> None:
    text = (DOCS / "program-file.md").read_text()
    (example,) = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    program = parse_program(example)
    (site,) = program.sites
    assert site.site_id == "school-beverly"
    assert site.pv is not None and site.pv.kw_dc == 100
    assert {d.program_id for d in program.dr_programs} >= {"my-dr", "cs-ci-daily"}
