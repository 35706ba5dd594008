"""The DAVIS interactive protocol, run against any session-like object.

One evaluation unit (:class:`EvalSequence`) is a frame stack with its ground-truth label
stack. For each unit:

- round 1 uses the unit's human scribble (DAVIS ``Scribbles/<seq>/001.json``) when it
  has one, otherwise the robot's scribble on an empty prediction, on the frame with the
  largest total foreground;
- every later round, the robot corrects the worst frame not yet annotated (worst mean J
  over objects; when every frame has been annotated, the worst frame overall);
- each round calls ``session.interact_davis(scribble)`` and exhausts
  ``session.propagate()``; its wall time (interaction + propagation only, not the
  robot nor the metrics) and J / F of ``session.labels`` are recorded.

Summaries follow the DAVIS interactive framework: J per object is its mean over frames;
a sequence's (and the overall) J is the mean over its objects. The time curve starts
at (0 s, 0), adds one point per round at the cumulated mean round time, and is held
constant up to a time-out (``max_time`` seconds per object times the mean number of
objects, or without ``max_time``: rounds x the longest round). AUC is the area under
that curve divided by the time-out; J@60 is the curve interpolated at 60 s (held
constant after the last point). The area under J over rounds is the trapezoid area of
J against rounds 1..R divided by R - 1 (J of round 1 when R = 1).

The session is built by a factory ``frames -> session`` so that any object with
``interact_davis(scribble) -> frame``, ``propagate()`` (an iterable) and ``labels``
((T, H, W) integer array) can be evaluated, e.g. a stub in tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .metrics import evaluate_labels, jaccard, object_ids
from .robot import ScribbleRobot, n_strokes

TIME_THRESHOLD = 60.0
VOID_LABEL = 255


@dataclass
class EvalSequence:
    """One evaluation unit: frames, ground truth and (optionally) a human first scribble.

    frames: (T, H, W) or (T, H, W, C) array-like, given as is to the session factory.
    gt: (T, H, W) integer labels (0 background, 255 void in DAVIS palettes).
    objects: object ids to score (default: the non-zero, non-void ids of ``gt``).
    """

    name: str
    frames: object
    gt: np.ndarray
    objects: list[int] = field(default_factory=list)
    scribble: dict | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gt = np.asarray(self.gt)
        if self.gt.ndim != 3:
            raise ValueError(f"{self.name}: ground truth must be (T, H, W), got {self.gt.shape}")
        shape = tuple(getattr(self.frames, "shape", ()))
        if shape[:3] != self.gt.shape:
            raise ValueError(
                f"{self.name}: frames {shape} and ground truth {self.gt.shape} differ in (T, H, W)"
            )
        if not self.objects:
            self.objects = object_ids(self.gt, void=VOID_LABEL)
        if not self.objects:
            raise ValueError(f"{self.name}: the ground truth has no object")

    @property
    def n_frames(self) -> int:
        return int(self.gt.shape[0])


# ---------------------------------------------------------------------- time curves
def time_curve(times: Sequence[float], values: Sequence[float], timeout: float | None = None,
               threshold: float = TIME_THRESHOLD) -> dict:
    """AUC and value at ``threshold`` seconds of a metric-versus-cumulated-time curve.

    Parameters
    ----------
    times:
        Duration of each round (seconds), in order.
    values:
        Metric after each round.
    timeout:
        End of the curve. ``None``: ``len(times) * max(times)`` (DAVIS without a time
        limit). Rounds finishing after the timeout are cut off at it.

    Returns
    -------
    dict
        ``auc`` (area / timeout), ``at_threshold`` (interpolated, held after the last
        point), ``threshold``, ``timeout``, and ``curve`` {``time``, ``value``}.
    """
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    if times.shape != values.shape or times.ndim != 1 or len(times) == 0:
        raise ValueError("times and values must be two non-empty 1D sequences of the same length")
    if (times < 0).any():
        raise ValueError("round times must be non-negative")
    t = np.concatenate([[0.0], np.cumsum(times)])
    v = np.concatenate([[0.0], values])
    if timeout is None:
        timeout = float(len(times) * times.max())
    timeout = float(timeout)
    if timeout < t[-1]:  # rounds past the time-out do not count
        keep = t <= timeout
        v_end = float(np.interp(timeout, t, v))
        t, v = np.append(t[keep], timeout), np.append(v[keep], v_end)
    else:
        t, v = np.append(t, timeout), np.append(v, v[-1])
    trapz = getattr(np, "trapezoid", None) or np.trapz
    auc = float(trapz(v, t) / timeout) if timeout > 0 else 0.0
    at = float(np.interp(threshold, t, v))
    return {
        "auc": auc,
        "at_threshold": at,
        "threshold": float(threshold),
        "timeout": timeout,
        "curve": {"time": t.tolist(), "value": v.tolist()},
    }


def area_over_rounds(values: Sequence[float]) -> float:
    """Trapezoid area under a metric over rounds 1..R, divided by R - 1."""
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        raise ValueError("no rounds")
    if len(v) == 1:
        return float(v[0])
    return float(((v[1:] + v[:-1]) * 0.5).sum() / (len(v) - 1))


# ---------------------------------------------------------------------- one sequence
def _frame_J(gt: np.ndarray, pred: np.ndarray, objects: Sequence[int]) -> float:
    """Mean J over ``objects`` of one frame (J = 1 for an object absent from both)."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    return float(np.mean([jaccard(gt == k, pred == k)[0] for k in objects]))


def _confidence_spearman(session, frame_J, all_frames: bool = False) -> float | None:
    """Spearman correlation between the session's per-frame confidence and J (None
    when the session has no confidence, fewer than 3 frames count, or either is
    constant there).

    Over the frames not annotated yet (``session.annotated_frames()``): those are the
    frames a confidence is for (the annotated ones score 1 by definition and are not
    where a user looks next). ``all_frames``: over every frame, the figure reported
    before (the annotated frames' ties at 1 against their various J weigh on it).
    """
    if frame_J is None or not hasattr(session, "frame_confidence"):
        return None
    from scipy.stats import spearmanr

    conf = np.asarray(session.frame_confidence(), np.float64)
    J = np.asarray(frame_J, np.float64)
    if conf.shape != J.shape:
        return None
    keep = np.ones(J.shape, bool)
    if not all_frames and hasattr(session, "annotated_frames"):
        keep[[int(t) for t in session.annotated_frames()]] = False
    conf, J = conf[keep], J[keep]
    if conf.size < 3 or np.ptp(conf) == 0 or np.ptp(J) == 0:
        return None
    return float(spearmanr(conf, J)[0])


def _session_frame(session, frame: int) -> np.ndarray:
    """The session's label map of one frame (``label_frame`` when it has one)."""
    if hasattr(session, "label_frame"):
        return np.asarray(session.label_frame(frame))
    return np.asarray(session.labels)[frame]


def _initial_frame(gt: np.ndarray, objects: list[int]) -> int:
    """Frame with the largest total foreground of the scored objects (first on ties)."""
    area = np.zeros(len(gt), np.int64)
    for k in objects:
        area += np.count_nonzero((gt == k).reshape(len(gt), -1), axis=1)
    return int(np.argmax(area))


def _pad_scribble(scribble: dict, n_frames: int, name: str) -> dict:
    frames = list(scribble.get("scribbles", []))
    nonempty = [i for i, f in enumerate(frames) if f]
    if not nonempty:
        raise ValueError(f"{name}: the human scribble file has no stroke")
    if nonempty[-1] >= n_frames:
        raise ValueError(
            f"{name}: the scribble is on frame {nonempty[-1]} but the sequence has {n_frames} frames"
        )
    frames = (frames + [[] for _ in range(n_frames)])[:n_frames]
    return {"scribbles": frames, "sequence": scribble.get("sequence", name)}


def _scribble_frame(scribble: dict) -> int:
    nonempty = [i for i, f in enumerate(scribble["scribbles"]) if f]
    return nonempty[0]


def evaluate_sequence(
    seq: EvalSequence,
    session_factory: Callable[[object], object],
    rounds: int = 8,
    robot: ScribbleRobot | None = None,
    max_time: float | None = None,
    threshold: float = TIME_THRESHOLD,
    progress: bool = True,
    boundary: bool = True,
    choose_frame: str = "worst",
) -> dict:
    """Run the protocol on one unit and return its result (JSON-ready dict).

    ``choose_frame``: the frame the robot corrects after round 1: "worst" (the lowest
    J, from the ground truth: the DAVIS protocol) or "confidence" (the frame the
    session is least sure of, ``session.frame_confidence()``, as a user guided by
    the confidence strip would). Either way, when the session reports confidence, each
    round records the Spearman correlation between it and the frames' J.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if choose_frame not in ("worst", "confidence"):
        raise ValueError(f"choose_frame must be 'worst' or 'confidence', got {choose_frame!r}")
    robot = robot or ScribbleRobot()
    gt = seq.gt
    T = seq.n_frames
    objects = list(seq.objects)
    labels_to_correct = [0] + objects
    session = session_factory(seq.frames)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=rounds, desc=seq.name, unit="round", leave=True)

    visited: set[int] = set()  # frames the robot was sent to (annotated or not)
    pred = np.zeros_like(gt)
    frame_J: np.ndarray | None = None
    records = []
    try:
        for r in range(1, rounds + 1):
            if r == 1 and seq.scribble is not None:
                scribble = _pad_scribble(seq.scribble, T, seq.name)
                frame, source = _scribble_frame(scribble), "human"
            else:
                if r == 1:
                    frame = _initial_frame(gt, objects)
                else:
                    key = frame_J if choose_frame == "worst" else np.asarray(session.frame_confidence())
                    order = np.argsort(key, kind="stable")
                    candidates = [int(f) for f in order if int(f) not in visited]
                    frame = candidates[0] if candidates else int(order[0])
                scribble = robot.interact(
                    gt[frame], pred[frame], frame=frame, n_frames=T, sequence=seq.name,
                    labels=labels_to_correct,
                )
                source = "robot"
            visited.add(frame)
            strokes = n_strokes(scribble)
            elapsed = 0.0
            frame_before = frame_after = None
            if strokes:
                frame_before = _frame_J(gt[frame], pred[frame], objects)
                t0 = time.perf_counter()
                session.interact_davis(scribble)
                t1 = time.perf_counter()
                frame_after = _frame_J(gt[frame], _session_frame(session, frame), objects)
                t2 = time.perf_counter()
                for _ in session.propagate():
                    pass
                elapsed = time.perf_counter() - t2 + (t1 - t0)
                pred = np.asarray(session.labels)
                if pred.shape != gt.shape:
                    raise ValueError(f"{seq.name}: the session's labels {pred.shape} differ from {gt.shape}")
                scores = evaluate_labels(gt, pred, objects, boundary=boundary)
                J = scores["J"]
                F = scores["F"] if boundary else np.full_like(J, np.nan)
                frame_J = J.mean(axis=1)
            else:  # nothing to correct there: the round costs nothing and changes nothing
                source = "none"
                if frame_J is None:
                    scores = evaluate_labels(gt, pred, objects, boundary=boundary)
                    J = scores["J"]
                    F = scores["F"] if boundary else np.full_like(J, np.nan)
                    frame_J = J.mean(axis=1)
            J_obj = J.mean(axis=0)
            F_obj = F.mean(axis=0)
            rec = {
                "round": r,
                "frame": int(frame),
                "source": source,
                "strokes": int(strokes),
                "time_s": float(elapsed),
                "J": float(J_obj.mean()),
                "F": float(F_obj.mean()),
                "JF": float((J_obj.mean() + F_obj.mean()) / 2),
                "J_objects": {str(k): float(v) for k, v in zip(objects, J_obj)},
                "F_objects": {str(k): float(v) for k, v in zip(objects, F_obj)},
                # J of the frame scribbled on, before and right after the interaction
                "frame_J_before": frame_before,
                "frame_J_after": frame_after,
                # over the frames not annotated yet, and over all frames
                "confidence_spearman": _confidence_spearman(session, frame_J),
                "confidence_spearman_all_frames": _confidence_spearman(session, frame_J, all_frames=True),
            }
            records.append(rec)
            if bar is not None:
                bar.set_postfix(J=f"{rec['J']:.3f}", frame=frame, t=f"{elapsed:.1f}s")
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return summarize_sequence(seq.name, records, objects, T, max_time, threshold, seq.meta)


def summarize_sequence(name, records, objects, n_frames, max_time=None,
                       threshold=TIME_THRESHOLD, meta=None) -> dict:
    """Per-round lists and the summary scores of one unit's round records."""
    times = [r["time_s"] for r in records]
    J = [r["J"] for r in records]
    F = [r["F"] for r in records]
    JF = [r["JF"] for r in records]
    timeout = None if max_time is None else float(max_time) * len(objects)
    return {
        "name": name,
        "n_frames": int(n_frames),
        "objects": [int(k) for k in objects],
        "meta": dict(meta or {}),
        "rounds": records,
        **_round_scores(J, F, JF, times, timeout, threshold),
        **_correction_scores([records]),
    }


def _correction_scores(unit_records: Sequence[Sequence[dict]]) -> dict:
    """Per round, the mean J of the corrected frame before and right after the
    interaction (over units with an interaction that round), and the mean after over
    rounds 2.. (the corrections; NaN with one round)."""
    R = max(len(r) for r in unit_records)

    def mean_per_round(key):
        values = [[rec[i][key] for rec in unit_records if i < len(rec) and rec[i].get(key) is not None]
                  for i in range(R)]
        return [float(np.mean(v)) if v else None for v in values]

    before, after = mean_per_round("frame_J_before"), mean_per_round("frame_J_after")
    later = [v for v in after[1:] if v is not None]
    def mean_rho(key):
        rho = [r.get(key) for rec in unit_records for r in rec]
        rho = [v for v in rho if v is not None]
        return float(np.mean(rho)) if rho else None

    return {
        "frame_J_before": before,
        "frame_J_after": after,
        "corrected_frame_J": float(np.mean(later)) if later else float("nan"),
        # Spearman correlation of per-frame confidence and J, mean over rounds and units:
        # over the frames not annotated yet, and over all frames
        "confidence_spearman": mean_rho("confidence_spearman"),
        "confidence_spearman_all_frames": mean_rho("confidence_spearman_all_frames"),
    }


def _round_scores(J, F, JF, times, timeout, threshold) -> dict:
    """Per-round lists, areas over rounds and over time, and J@threshold (shared by both summaries)."""
    tJ = time_curve(times, J, timeout, threshold)
    tJF = time_curve(times, JF, timeout, threshold)
    return {
        "J": list(J),
        "F": list(F),
        "JF": list(JF),
        "time_s": list(times),
        "cum_time_s": np.cumsum(times).tolist(),
        "auc_rounds_J": area_over_rounds(J),
        "auc_rounds_JF": area_over_rounds(JF),
        "auc_time_J": tJ["auc"],
        "auc_time_JF": tJF["auc"],
        "J@60": tJ["at_threshold"],
        "JF@60": tJF["at_threshold"],
        "timeout_s": tJ["timeout"],
        "curve": {"time": tJ["curve"]["time"], "J": tJ["curve"]["value"], "JF": tJF["curve"]["value"]},
    }


def summarize(results: Sequence[dict], max_time: float | None = None,
              threshold: float = TIME_THRESHOLD) -> dict:
    """Overall scores over several units, weighted as DAVIS does.

    J (F, J&F) of round r is the mean over every object of every unit; the time of round
    r is the mean over units. Units must have the same number of rounds.
    """
    if not results:
        raise ValueError("no results to summarise")
    n_rounds = {len(r["rounds"]) for r in results}
    if len(n_rounds) != 1:
        raise ValueError(f"units have different numbers of rounds: {sorted(n_rounds)}")
    R = n_rounds.pop()
    J, F = np.zeros(R), np.zeros(R)
    for i in range(R):
        js = [v for res in results for v in res["rounds"][i]["J_objects"].values()]
        fs = [v for res in results for v in res["rounds"][i]["F_objects"].values()]
        J[i], F[i] = np.mean(js), np.mean(fs)
    JF = (J + F) / 2
    times = np.array([[res["rounds"][i]["time_s"] for i in range(R)] for res in results])
    mean_times = times.mean(axis=0)
    n_objects = [len(res["objects"]) for res in results]
    if max_time is None:
        timeout = float(R * times.max())
    else:
        timeout = float(max_time) * float(np.mean(n_objects))
    return {
        "n_units": len(results),
        "n_objects": int(sum(n_objects)),
        **_round_scores(J.tolist(), F.tolist(), JF.tolist(), mean_times.tolist(), timeout, threshold),
        **_correction_scores([res["rounds"] for res in results]),
    }


def run_protocol(
    sequences: Iterable[EvalSequence],
    session_factory: Callable[[object], object],
    rounds: int = 8,
    robot: ScribbleRobot | None = None,
    max_time: float | None = None,
    threshold: float = TIME_THRESHOLD,
    progress: bool = True,
    boundary: bool = True,
    settings: dict | None = None,
    choose_frame: str = "worst",
) -> dict:
    """Evaluate every unit and return ``{"protocol", "sequences", "overall"}``.

    ``sequences`` may be a lazy iterable (e.g. a generator loading one DAVIS sequence
    at a time), so that only one sequence is held in memory.
    """
    robot = robot or ScribbleRobot()
    results = {}
    for seq in sequences:
        if seq.name in results:
            raise ValueError(f"two units are named {seq.name!r}")
        results[seq.name] = evaluate_sequence(
            seq, session_factory, rounds, robot, max_time, threshold, progress, boundary, choose_frame
        )
    if not results:
        raise ValueError("nothing to evaluate: no sequence")
    protocol = {
        "rounds": rounds,
        "max_time_per_object_s": max_time,
        "time_threshold_s": threshold,
        "boundary_tolerance": "ceil(0.008 * image diagonal) px",
        "robot": {
            "kernel_size": robot.kernel_size,
            "max_radius": robot.max_radius,
            "min_nodes": robot.min_nodes,
            "shrink": robot.shrink,
            "seed": robot.seed,
        },
        "timing": "interact_davis + propagate wall time per round (robot and metrics excluded)",
        "choose_frame": choose_frame,
    }
    protocol.update(settings or {})
    return {
        "protocol": protocol,
        "sequences": results,
        "overall": summarize(list(results.values()), max_time, threshold),
    }


# ---------------------------------------------------------------------- oracle
def oracle_scribbles(gt: np.ndarray, objects: Sequence[int], margin: int) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """The ground truth of one frame as scribble maps: each object eroded by ``margin``
    px as its positive, everything beyond ``margin`` px of every object as negative."""
    from scipy import ndimage

    gt = np.asarray(gt)
    margin = int(margin)
    disk = None
    if margin > 0:
        r = np.arange(-margin, margin + 1)
        disk = (r[:, None] ** 2 + r[None, :] ** 2) <= margin * margin
    positives = {}
    for k in objects:
        m = gt == k
        positives[int(k)] = ndimage.binary_erosion(m, disk) if disk is not None else m
    fg = np.isin(gt, list(objects))
    near = ndimage.binary_dilation(fg, disk) if disk is not None else fg
    return positives, ~near


def evaluate_oracle(
    seq: EvalSequence,
    session_factory: Callable[[object], object],
    margin: int = 3,
    frame: int | None = None,
) -> dict:
    """The interaction and propagation ceilings of one unit.

    The chosen frame's ground truth (default: the frame with the largest total
    foreground) is given as scribbles by :func:`oracle_scribbles` through
    ``session.interact_many``; the frame's J right after the interaction is the
    interaction ceiling, beside the J of the positive scribbles alone (what the
    interaction must never fall below). Propagating that frame through the sequence
    gives the propagation ceiling: the mean J over the other frames.
    """
    objects = list(seq.objects)
    gt = seq.gt
    frame = _initial_frame(gt, objects) if frame is None else int(frame)
    positives, negative = oracle_scribbles(gt[frame], objects, margin)
    session = session_factory(seq.frames)
    t0 = time.perf_counter()
    session.interact_many(frame, positives, negative)
    t1 = time.perf_counter()
    after = _session_frame(session, frame)
    for _ in session.propagate():
        pass
    t2 = time.perf_counter()
    pred = np.asarray(session.labels)
    J = evaluate_labels(gt, pred, objects, boundary=False)["J"]  # (T, K)
    others = [t for t in range(seq.n_frames) if t != frame]
    scribble_J = [float(jaccard(gt[frame] == k, positives[int(k)])[0]) for k in objects]
    return {
        "name": seq.name,
        "frame": int(frame),
        "margin": int(margin),
        "objects": [int(k) for k in objects],
        "J_scribble": float(np.mean(scribble_J)),
        "J_frame": _frame_J(gt[frame], after, objects),
        "J_propagated": float(J[others].mean()) if others else float("nan"),
        "J_frame_objects": {str(k): float(jaccard(gt[frame] == k, after == k)[0]) for k in objects},
        "J_propagated_objects": {str(k): float(J[others, i].mean()) if others else float("nan")
                                 for i, k in enumerate(objects)},
        "interaction_s": t1 - t0,
        "propagation_s": t2 - t1,
    }


def run_oracle(sequences: Iterable[EvalSequence], session_factory, margin: int = 3,
               settings: dict | None = None, progress: bool = True) -> dict:
    """:func:`evaluate_oracle` on every unit; overall means are over objects."""
    results = {}
    for seq in sequences:
        if progress:
            print(f"oracle: {seq.name}", flush=True)
        results[seq.name] = evaluate_oracle(seq, session_factory, margin)
    if not results:
        raise ValueError("nothing to evaluate: no sequence")

    def over_objects(key):
        return float(np.mean([v for r in results.values() for v in r[key + "_objects"].values()]))

    overall = {
        "n_units": len(results),
        "n_objects": sum(len(r["objects"]) for r in results.values()),
        "J_scribble": float(np.mean([r["J_scribble"] for r in results.values()])),
        "J_frame": over_objects("J_frame"),
        "J_propagated": over_objects("J_propagated"),
        "scribble_beats_frame": [n for n, r in results.items() if r["J_scribble"] > r["J_frame"]],
    }
    protocol = {"mode": "oracle", "margin": int(margin)}
    protocol.update(settings or {})
    return {"protocol": protocol, "oracle": results, "overall": overall}


def format_oracle_table(summary: dict) -> str:
    """Per unit: J of the positive scribble, of the frame after the interaction, and
    propagated from it over the other frames."""
    rows = summary["oracle"]
    width = max([len("overall")] + [len(n) for n in rows]) + 2
    head = f"{'unit':<{width}}{'frame':>6}{'J scribble':>12}{'J frame':>9}{'J propagated':>14}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(f"{name:<{width}}{r['frame']:>6}{r['J_scribble']:>12.3f}{r['J_frame']:>9.3f}{r['J_propagated']:>14.3f}")
    o = summary["overall"]
    lines.append("-" * len(head))
    lines.append(f"{'overall':<{width}}{'':>6}{o['J_scribble']:>12.3f}{o['J_frame']:>9.3f}{o['J_propagated']:>14.3f}")
    return "\n".join(lines)


def save_summary(summary: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1))
    return path


def format_table(summary: dict) -> str:
    """A plain-text table: one line per unit, then the overall line."""
    seqs = summary["sequences"]
    R = len(summary["overall"]["J"])
    width = max([len("overall")] + [len(n) for n in seqs]) + 2
    head = (
        f"{'unit':<{width}}{'obj':>4}{'J@1':>7}{'J@' + str(R):>7}{'JF@' + str(R):>8}"
        f"{'AUC-J(rounds)':>15}{'AUC-J(time)':>13}{'J@60':>7}{'time/round':>12}"
    )
    lines = [head, "-" * len(head)]

    def row(name, n_obj, s):
        mean_t = float(np.mean(s["time_s"])) if s["time_s"] else 0.0
        return (
            f"{name:<{width}}{n_obj:>4}{s['J'][0]:>7.3f}{s['J'][-1]:>7.3f}{s['JF'][-1]:>8.3f}"
            f"{s['auc_rounds_J']:>15.3f}{s['auc_time_J']:>13.3f}{s['J@60']:>7.3f}{mean_t:>11.2f}s"
        )

    for name, s in seqs.items():
        lines.append(row(name, len(s["objects"]), s))
    lines.append("-" * len(head))
    o = summary["overall"]
    lines.append(row("overall", o["n_objects"], o))
    lines.append("J per round: " + " ".join(f"{v:.3f}" for v in o["J"]))
    if "frame_J_after" in o:
        fmt = lambda v: "  -  " if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(
            "corrected frame J, before -> after the interaction: "
            + " ".join(f"{fmt(b)}->{fmt(a)}" for b, a in zip(o["frame_J_before"], o["frame_J_after"]))
        )
    if o.get("confidence_spearman") is not None:
        line = f"Spearman correlation of frame confidence and J (frames not annotated): {o['confidence_spearman']:.3f}"
        if o.get("confidence_spearman_all_frames") is not None:
            line += f"; over all frames: {o['confidence_spearman_all_frames']:.3f}"
        lines.append(line)
    return "\n".join(lines)
