"""The benchmark scripts still run (tiny settings; the figures themselves are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("memory.py", ["--lengths", "12", "--size", "96"], "masks/frame (KiB)"),
        ("many_objects.py", ["--threads", "1", "--repeats", "1", "--objects", "1,3", "--size", "256", "--frames", "2",
                             "--unfused", "--lu", "--affine-grid"],
         "crops' grid from two ramps / from F.affine_grid"),
        ("speed.py", ["--threads", "1", "--repeats", "1", "--frames", "2", "--sizes", "480p", "--encoders",
                      "default,default-unfused"],
         "inference layout"),
        pytest.param("batch.py", ["--stacks", "2", "--frames", "3", "--size", "64x80", "--repeats", "1"],
                     "throughput ratio", marks=pytest.mark.slow),
    ],
)
def test_benchmark_script_runs(script, args, expect):
    out = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, check=False,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expect in out.stdout, out.stdout[-2000:]


def test_confidence_ablation_records_and_tabulates(tmp_path):
    """benchmarks/confidence.py: record the signals on a tiny stack, then print the table."""
    tifffile = pytest.importorskip("tifffile")
    import numpy as np

    T, H, W = 5, 64, 80
    yy, xx = np.mgrid[:H, :W]
    labels = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        labels[t][(yy - 30) ** 2 + (xx - 25 - 3 * t) ** 2 < 100] = 1
    image = (40 + 180 * (labels > 0)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    script = str(BENCHMARKS / "confidence.py")
    out = subprocess.run([sys.executable, script, "record", "tiff", str(tmp_path / "img.tif"), str(tmp_path / "lbl.tif"),
                          str(tmp_path / "cho_t.pkl"), "--rounds", "2"], capture_output=True, text=True, check=False,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    out = subprocess.run([sys.executable, script, "table", str(tmp_path)], capture_output=True, text=True, check=False,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "blended like the masks (shipped)" in out.stdout, out.stdout[-2000:]
