"""Comparison helpers for parity tests: every field of two outputs, with the one tolerance table."""

from __future__ import annotations

from bigbird_core.tolerances import Comparison, assert_close


def compare_outputs(actual, expected, dtype: str = "float32", fields=None) -> dict[str, Comparison]:
    """assert_close on every field (tuples element-wise) that both outputs have; return the results.

    Fails when a field that ``expected`` has is missing from ``actual``.
    """
    results: dict[str, Comparison] = {}
    keys = fields or [k for k in expected.keys() if k != "past_key_values"]
    assert keys, "nothing to compare"
    for key in keys:
        a, e = actual[key], expected[key]
        if isinstance(e, (tuple, list)):
            assert len(a) == len(e), f"{key}: {len(a)} entries, expected {len(e)}"
            for i, (x, y) in enumerate(zip(a, e, strict=True)):
                results[f"{key}[{i}]"] = assert_close(x, y, dtype, name=f"{key}[{i}]")
        else:
            results[key] = assert_close(a, e, dtype, name=key)
    return results
