"""PNG plot of an evaluation summary: J versus round and J versus cumulated time."""

from __future__ import annotations

from pathlib import Path


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def mean_label(summary: dict) -> str:
    """Legend of the overall curve: what its mean is taken over.

    The overall score of a round is the mean over every object of every unit
    (:func:`~napari_ipnet.evaluation.protocol.summarize`), so the label counts objects,
    and units (DAVIS sequences, TIFF stacks) where there are several.
    """
    seqs = summary["sequences"]
    n_objects = summary["overall"].get("n_objects", sum(len(s["objects"]) for s in seqs.values()))
    text = f"mean over {_plural(n_objects, 'object')}"
    return text if len(seqs) == 1 else f"{text} of {_plural(len(seqs), 'sequence')}"


def summary_figure(summary: dict, metric: str = "J"):
    """The figure :func:`plot_summary` writes (a matplotlib ``Figure``, Agg canvas).

    Two panels: ``metric`` per round (each unit in grey, the overall mean in colour,
    with the J of the corrected frame before and right after each interaction) and the
    overall ``metric``-versus-time curve with the 60 s mark, AUC and value at 60 s. An
    oracle summary (``evaluate --oracle``) gets a bar chart of its three J per unit.
    """
    # a bare Figure renders PNG with Agg and leaves pyplot's backend (napari's Qt) alone
    from matplotlib.figure import Figure

    if "oracle" in summary:
        return _oracle_figure(summary)

    label = {"J": "J", "JF": "J&F", "F": "F"}.get(metric, metric)
    fig = Figure(figsize=(11, 4.2), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    overall = summary["overall"]
    rounds = list(range(1, len(overall[metric]) + 1))
    seqs = summary["sequences"]
    for i, s in enumerate(seqs.values()):
        each = "each sequence" if i == 0 and len(seqs) > 1 else None
        ax1.plot(rounds, s[metric], color="0.6", lw=0.8, alpha=0.8, label=each)
    ax1.plot(rounds, overall[metric], color="C0", lw=2.2, marker="o", label=mean_label(summary))
    if metric == "J" and "frame_J_after" in overall:
        for key, style, text in (("frame_J_before", "v--", "corrected frame, before"),
                                 ("frame_J_after", "^--", "corrected frame, after interaction")):
            pts = [(r, v) for r, v in zip(rounds, overall[key]) if v is not None]
            if pts:
                ax1.plot(*zip(*pts), style, color="C2" if "before" in key else "C3", lw=1.2, label=text)
    ax1.set_xlabel("round")
    ax1.set_ylabel(label)
    ax1.set_ylim(0, 1)
    ax1.set_xticks(rounds)
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower right")
    ax1.set_title(f"{label} per round")

    curve = overall["curve"]
    ax2.plot(curve["time"], curve[metric] if metric in curve else curve["J"], color="C1", lw=2, marker=".")
    thr = summary.get("protocol", {}).get("time_threshold_s", 60.0)
    ax2.axvline(thr, color="k", lw=0.8, ls="--")
    key = "J@60" if metric == "J" else f"{metric}@60"
    auc_key = f"auc_time_{metric}"
    ax2.set_title(
        f"{label} vs time: AUC {overall.get(auc_key, float('nan')):.3f}, "
        f"{label}@{thr:g}s {overall.get(key, float('nan')):.3f}"
    )
    ax2.set_xlabel("cumulated time (s)")
    ax2.set_ylabel(label)
    ax2.set_ylim(0, 1)
    ax2.set_xlim(0, max(curve["time"][-1], 1e-9))
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_summary(summary: dict, path: str | Path, metric: str = "J") -> Path:
    """Write :func:`summary_figure` of an evaluation summary as a PNG.

    Parameters
    ----------
    summary:
        What ``evaluate`` writes (``run_protocol`` or ``run_oracle``).
    path:
        The PNG file (its folder is made).
    metric:
        ``"J"``, ``"F"`` or ``"JF"``.

    Returns
    -------
    Path
        ``path``.
    """
    fig = summary_figure(summary, metric)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _oracle_figure(summary: dict):
    from matplotlib.figure import Figure

    rows = summary["oracle"]
    names = list(rows) + ["overall"]
    values = [[r["J_scribble"], r["J_frame"], r["J_propagated"]] for r in rows.values()]
    o = summary["overall"]
    values.append([o["J_scribble"], o["J_frame"], o["J_propagated"]])
    fig = Figure(figsize=(max(6, 1.2 * len(names) + 2), 4.2), dpi=100)
    ax = fig.subplots()
    width = 0.27
    for i, text in enumerate(("positive scribble alone", "frame after the interaction", "propagated from it")):
        ax.bar([x + (i - 1) * width for x in range(len(names))], [v[i] for v in values], width, label=text)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([n.split(":")[0][:18] for n in names], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("J")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"oracle scribbles (margin {summary['protocol'].get('margin')} px)")
    fig.tight_layout()
    return fig
