"""JSON written or printed by pdd-edge is strict JSON: no NaN or Infinity tokens."""

import json
import math

from pdd_edge.fileio import json_text, write_json


def test_json_text_writes_non_finite_numbers_as_null_at_any_depth():
    obj = {"top1": math.nan, "speedup": math.inf, "rows": [1.5, -math.inf, {"x": math.nan}], "n": 3}
    text = json_text(obj, indent=None)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"top1": None, "speedup": None, "rows": [1.5, None, {"x": None}], "n": 3}


def test_write_json_output_parses_with_a_strict_parser(tmp_path):
    path = write_json(tmp_path / "r.json", {"gate": {"top1": math.nan}})

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {"gate": {"top1": None}}
