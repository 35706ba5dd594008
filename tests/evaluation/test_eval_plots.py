"""The evaluation plot (``evaluate --plot``): its legend says what the mean is over."""

from __future__ import annotations

import numpy as np

from napari_ipnet.evaluation.plots import plot_summary, summary_figure
from napari_ipnet.evaluation.protocol import EvalSequence, run_protocol


def _blocks(n_objects: int, n: int = 4, h: int = 48, w: int = 64):
    gt = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        gt[t, 6:20, 4 + 2 * t : 18 + 2 * t] = 1
        if n_objects > 1:
            gt[t, 28:42, 36:50] = 2
    frames = np.where(gt[..., None] > 0, 220, 30).astype(np.uint8).repeat(3, -1)
    return frames, gt


def _summary(stub_model, objects_per_unit):
    from napari_ipnet.session import Session

    def factory(frames):
        model = stub_model(interaction=lambda rgb, prev, pos, neg: 0.05 + 0.9 * pos,
                           propagation=lambda rgb, prev, nb: 0.05 + 0.9 * nb)
        return Session(frames, model, refine=False)

    units = [EvalSequence(f"unit{i}", *_blocks(k)) for i, k in enumerate(objects_per_unit)]
    return run_protocol(units, factory, rounds=2, progress=False, boundary=False)


def _legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_legend_counts_objects_and_sequences(stub_model, tmp_path):
    one = _summary(stub_model, [2])
    fig = summary_figure(one)
    legend = _legend(fig)
    assert legend[0] == "mean over 2 objects", legend
    assert "corrected frame, before" in legend and "corrected frame, after interaction" in legend
    assert not [t for t in legend if "units" in t]
    several = _summary(stub_model, [2, 1])
    legend = _legend(summary_figure(several))
    assert legend[:2] == ["each sequence", "mean over 3 objects of 2 sequences"], legend
    single = _summary(stub_model, [1])
    assert _legend(summary_figure(single))[0] == "mean over 1 object"
    png = plot_summary(several, tmp_path / "plot" / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
