"""PNG plot of an evaluation summary: J versus round and J versus cumulated time."""

from __future__ import annotations

from pathlib import Path


def plot_summary(summary: dict, path: str | Path, metric: str = "J") -> Path:
    """Write a two-panel PNG: ``metric`` per round (each unit, and overall) and the
    overall ``metric``-versus-time curve with the 60 s mark, AUC and value at 60 s."""
    # a bare Figure renders PNG with Agg and leaves pyplot's backend (napari's Qt) alone
    from matplotlib.figure import Figure

    label = {"J": "J", "JF": "J&F", "F": "F"}.get(metric, metric)
    fig = Figure(figsize=(11, 4.2), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    overall = summary["overall"]
    rounds = list(range(1, len(overall[metric]) + 1))
    seqs = summary["sequences"]
    for name, s in seqs.items():
        ax1.plot(rounds, s[metric], color="0.6", lw=0.8, alpha=0.8, label=None)
    ax1.plot(rounds, overall[metric], color="C0", lw=2.2, marker="o", label=f"mean ({len(seqs)} units)")
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
