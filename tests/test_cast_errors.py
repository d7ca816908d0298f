"""scripts/cast_errors.py: strong casts counted by hue family, right or wrong against the real photo."""

import subprocess
import sys
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).parents[1] / "scripts" / "cast_errors.py"


def _row(hue, cast, real_hue, real_cast, false_colour=0.0):
    return {"mean_hue": hue, "cast_chroma": cast, "real_mean_hue": real_hue, "real_cast_chroma": real_cast,
            "false_colour": false_colour, "ciede2000": 10.0, "gray_ciede2000": 8.0}


def test_blue_casts_on_warm_photos_are_counted_wrong_and_weak_casts_are_left_out(tmp_path):
    rows = [
        _row(265, 25, 80, 20, 0.4),  # blue painted over a yellow wall: wrong
        _row(250, 20, 235, 18, 0.0),  # blue sky, really blue: right
        _row(355, 18, 10, 30, 0.0),  # red on red, across the 0/360 seam: right
        _row(80, 5, 80, 20, 0.0),  # too weak to count as a cast
    ]
    path = tmp_path / "per_image.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True, check=True).stdout
    assert "(4 photos, 1 over 10% false colour)" in out
    assert "| blue | 2 | 1 | 1 | 20.0% | 1 | 10.00 | 8.00 |" in out
    assert "| red-orange | 1 | 1 | 1 | 0.0% | 0 |" in out
    assert "yellow-olive" not in out  # no output has a strong yellow cast
