"""Per-frame confidence: record candidate signals during the evaluation protocol, and
print their Spearman correlation with the per-frame J (the ablation table of
``src/napari_ipnet/weights/README.md``, "Per-frame confidence").

``record`` runs the protocol (the robot corrects the worst frame, as ``napari-ipnet
evaluate``; 3 rounds by default) with a Session that records, per object and frame,
every candidate signal at the frame's latest computation, and after each round stores
them with the per-object J. The signals do not change the masks, so one run serves
every combination. ``table`` prints the Spearman correlation of each signal, over the
frames not annotated yet, mean over rounds and units (the protocol's figure).
The recording Session wraps ``Session._propagate_objects`` (the masks are the engine's,
memory readout included) and reads the network's raw answers from ``Session._run``.

    python benchmarks/confidence.py record davis ../shared/data/davis2016 bus,elephant,hike,lucia,motorbike,rhino runs/conf/train.pkl
    python benchmarks/confidence.py record davis ../shared/data/davis2016 bear,boat,car-turn,dance-jump,kite-walk,soccerball runs/conf/held.pkl
    python benchmarks/confidence.py record tiff IMG.tif LABELS.tif runs/conf/cho_t.pkl --axis t
    python benchmarks/confidence.py record tiff IMG.tif LABELS.tif runs/conf/cho_z_t10.pkl --axis z --t 10
    python benchmarks/confidence.py table runs/conf
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from scipy.stats import spearmanr

from napari_ipnet.calibration import apply_logit_bias
from napari_ipnet.evaluation import protocol
from napari_ipnet.evaluation.metrics import jaccard
from napari_ipnet.session import Session


def _crisp(p):
    fuzzy = p[p > 0.1]
    return 1.0 - float(np.mean(1.0 - np.abs(2.0 * fuzzy - 1.0))) if fuzzy.size else 0.0


class RecordingSession(Session):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.signals = {}  # (k, f) -> dict
        self.events = []  # one per (object, frame) propagated, in order

    def _run(self, net, frame, jobs, extra=(), rgb=None):
        results = super()._run(net, frame, jobs, extra, rgb)
        self._last_run = (jobs, results)  # the network's raw answers, read below
        return results

    def _memory_readout(self, mem, f, feature, box, neighbour, k, settings):
        crop, weight = super()._memory_readout(mem, f, feature, box, neighbour, k, settings)
        self._memory_out[k] = crop  # the memory's answer, over the same crop as the network's
        return crop, weight

    def _propagate_objects(self, net, f, neighbour, weights, fused, bias=None, memories=None, memory=None):
        h, w = self.frames.height, self.frames.width
        ids = list(weights)
        self._memory_out = {}
        out = super()._propagate_objects(net, f, neighbour, weights, fused, bias, memories, memory)
        jobs, results = self._last_run  # the engine's own inputs, boxes and raw answers
        boxes = [box.clip_int(h, w) for _, box in jobs]
        raw = {}
        t = self._round_frame
        for k, (maps, _), cb, ((cy, cx), crop, _) in zip(ids, jobs, boxes, results):
            raw[k] = (cy, cx, crop)
            b = (bias or {}).get(k, 0.0)
            cal = apply_logit_bias(crop, b)
            previous = self._objects[k].masks.get(f)
            nb = maps[1] > 0.5
            s = {"bias": b, "dist": abs(f - (t if t is not None else f)), "weight": weights[k],
                 "nb_area": int(nb.sum())}
            # the neighbour mask over the crop's frame region
            y0, x0, y1, x1 = cb
            nb_full = np.zeros((h, w), bool)
            nb_full[y0:y1, x0:x1] = nb
            nbc = nb_full[cy:cy + crop.shape[0], cx:cx + crop.shape[1]]
            fg_cal = cal >= 0.5
            pm = self._memory_out.get(k)
            if pm is not None:
                a, m = cal >= 0.5, pm >= 0.5
                union = np.count_nonzero(a | m)
                s["memory_agreement"] = np.count_nonzero(a & m) / union if union else 1.0
            else:
                s["memory_agreement"] = 1.0
            s["raw_margin"] = float(np.mean(np.abs(2 * crop[(crop > 0.1) | nbc] - 1))) if ((crop > 0.1) | nbc).any() else 0.0
            s["raw_support"] = float(crop[nbc].mean()) if nbc.any() else 0.0
            s["raw_fg"] = float(crop[fg_cal].mean()) if fg_cal.any() else 0.0
            s["raw_area_ratio"] = float(np.count_nonzero(crop >= 0.5)) / max(int(fg_cal.sum()), 1)
            soft = out[k]
            if soft is None:
                s.update(area=0, crisp=0.0, iou_nb=0.0 if nb.any() else 1.0, shift=1.0, border=0.0, frag=0.0,
                         prev_iou=None, ncomp=0)
            else:
                p = soft.prob
                s["crisp"] = _crisp(p)
                m = p >= 0.5
                area = int(m.sum())
                s["area"] = area
                ey0, ex0, ey1, ex1 = soft.extent
                m_full = np.zeros((h, w), bool)
                m_full[ey0:ey1, ex0:ex1] = m
                inter = np.count_nonzero(m_full & nb_full)
                union = np.count_nonzero(m_full | nb_full)
                s["iou_nb"] = inter / union if union else 1.0
                if area and nb.any():
                    c1 = np.array(ndimage.center_of_mass(m_full))
                    c0 = np.array(ndimage.center_of_mass(nb_full))
                    s["shift"] = float(np.linalg.norm(c1 - c0) / np.sqrt(nb_full.sum()))
                else:
                    s["shift"] = 1.0
                # mask pixels on the ROI crop border (not the image border)
                edge = np.zeros((h, w), bool)
                if y0 > 0: edge[y0, x0:x1] = True
                if y1 < h: edge[y1 - 1, x0:x1] = True
                if x0 > 0: edge[y0:y1, x0] = True
                if x1 < w: edge[y0:y1, x1 - 1] = True
                perim = m_full & ~ndimage.binary_erosion(m_full)
                s["border"] = float(np.count_nonzero(m_full & edge)) / max(int(perim.sum()), 1)
                lab, n = ndimage.label(m)
                s["ncomp"] = int(n)
                if n:
                    sizes = np.bincount(lab.ravel())[1:]
                    s["frag"] = 1.0 - float(sizes.max()) / area
                else:
                    s["frag"] = 0.0
                if previous is not None:
                    from napari_ipnet.session import _cover
                    both = _cover(soft.extent, previous.extent)
                    a = soft.region(*both) >= 0.5
                    bb = previous.region(*both) >= 0.5
                    un = np.count_nonzero(a | bb)
                    s["prev_iou"] = np.count_nonzero(a & bb) / un if un else 1.0
                else:
                    s["prev_iou"] = None
            self.signals[(k, f)] = s
            # the shipped score as well
            from napari_ipnet.session import mask_confidence
            own = mask_confidence(out[k], raw=crop, neighbour=maps[1], may_end=self.objects_may_end)
            self._objects[k].confidence[f] = own
            # for replaying variants that carry the score along the propagation or across rounds
            self.events.append({"t": t, "k": k, "f": f, "w": weights[k], "own": own})
        # contention: the other objects' probability on k's pixels
        masks = {j: (out[j] if j in out else st.masks.get(f)) for j, st in self._objects.items()}
        for k in ids:
            sk = masks[k]
            if sk is None:
                self.signals[(k, f)]["contention"] = 0.0
                continue
            ext = sk.extent
            mk = sk.region(*ext) >= 0.5
            other = np.zeros(mk.shape, np.float32)
            for j, sj in masks.items():
                if j != k and sj is not None:
                    np.maximum(other, sj.region(*ext), out=other)
            self.signals[(k, f)]["contention"] = float(other[mk].mean()) if mk.any() else 0.0
        return out


def record(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("davis", "tiff"))
    ap.add_argument("source")
    ap.add_argument("what", help="DAVIS: sequences, comma-separated; TIFF: the label stack")
    ap.add_argument("out")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--axis", default="t")
    ap.add_argument("--t", type=int, default=None)
    ap.add_argument("--z", type=int, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from napari_ipnet.axes import objects_may_end_default
    from napari_ipnet.evaluation.datasets import iter_davis, load_tiff_units
    from napari_ipnet.weights import load_model

    model = load_model("default", device="cpu")
    if a.kind == "davis":
        units = iter_davis(a.source, a.what.split(","), "480p", 1)
        may_end = False
    else:
        units = load_tiff_units(a.source, a.what, a.axis, a.z, a.t, None, None, link=True, together=True)
        may_end = objects_may_end_default(a.axis)
    records = {}
    current = {}
    original = protocol._confidence_spearman

    def spy(session, frame_J, all_frames=False):
        if all_frames or frame_J is None:
            return original(session, frame_J, all_frames)
        seq = current["seq"]
        gt = seq.gt
        pred = np.asarray(session.labels)
        objs = list(seq.objects)
        Jobj = np.array([[jaccard(gt[t] == k, pred[t] == k)[0] for k in objs] for t in range(len(gt))])
        records.setdefault(seq.name, []).append({
            "objects": objs, "J": Jobj, "frame_J": np.asarray(frame_J),
            "annotated": {k: sorted(session._objects[k].annotated) for k in session.object_ids},
            "signals": dict(session.signals), "conf": session.frame_confidence(), "events": list(session.events),
            "conf_obj": {k: session.frame_confidence(k) for k in session.object_ids},
            "gt_area": {k: np.count_nonzero((gt == k).reshape(len(gt), -1), axis=1) for k in objs},
        })
        return original(session, frame_J)

    protocol._confidence_spearman = spy
    for seq in units:
        current["seq"] = seq
        r = protocol.evaluate_sequence(seq, lambda fr: RecordingSession(fr, model, objects_may_end=may_end),
                                       a.rounds, progress=False, boundary=False)
        print(seq.name, r.get("J_per_round", r.get("J")) if isinstance(r, dict) else r, file=sys.stderr, flush=True)
        with open(a.out, "wb") as fh:
            pickle.dump(records, fh)




# ---------------------------------------------------------------- analysis
def _area_factor(s):
    a, b = s.get("area", 0), s["nb_area"]
    return 1.0 - abs(a - b) / max(a, b, 1)


FACTORS = {
    "shipped (crisp*area*prev)": None,
    "crisp": lambda s: s["crisp"],
    "area change": _area_factor,
    "prev-round IoU": lambda s: 0.5 + 0.5 * s["prev_iou"] if s["prev_iou"] is not None else 1.0,
    "raw margin": lambda s: s["raw_margin"],
    "raw support": lambda s: s["raw_support"],
    "raw fg prob": lambda s: s["raw_fg"],
    "IoU with neighbour": lambda s: s["iou_nb"],
    "centroid shift": lambda s: 1.0 - min(1.0, s["shift"]),
    "ROI border": lambda s: 1.0 - min(1.0, s["border"]),
    "fragments": lambda s: 1.0 - s["frag"],
    "contention": lambda s: 1.0 - s["contention"],
    "distance": lambda s: 1.0 / (1.0 + s["dist"]),
    "memory agreement": lambda s: s.get("memory_agreement", 1.0),
}


def combo(*names):
    fs = [FACTORS[n] for n in names]
    return lambda s: float(np.prod([f(s) for f in fs]))


def combo_min(*names):
    fs = [FACTORS[n] for n in names]
    return lambda s: float(np.min([f(s) for f in fs]))


def frame_score(rec, fn, agg="min"):
    T = len(rec["frame_J"])
    if fn is None:
        return np.asarray(rec["conf"], np.float64) if agg == "min" else None
    per = []
    for k in rec["annotated"]:
        v = np.zeros(T)
        for f in range(T):
            s = rec["signals"].get((k, f))
            if s is not None:
                v[f] = fn(s)
        v[list(rec["annotated"][k])] = 1.0
        per.append(v)
    per = np.array(per)
    return per.min(0) if agg == "min" else per.mean(0)


def rho(conf, J, keep):
    c, j = conf[keep], J[keep]
    if c.size < 3 or np.ptp(c) == 0 or np.ptp(j) == 0:
        return None
    return float(spearmanr(c, j)[0])


def table(records, fns, agg="min"):
    rows = {}
    for name, fn in fns.items():
        out = {"all": [], "unannotated": []}
        per_unit = {}
        for unit, recs in records.items():
            for rec in recs:
                conf = frame_score(rec, fn, agg)
                if conf is None:
                    continue
                J = np.asarray(rec["frame_J"], np.float64)
                ann = set().union(*map(set, rec["annotated"].values()))
                keep_all = np.ones(len(J), bool)
                keep_un = keep_all.copy()
                keep_un[list(ann)] = False
                for key, keep in (("all", keep_all), ("unannotated", keep_un)):
                    r = rho(conf, J, keep)
                    if r is not None:
                        out[key].append(r)
                        if key == "unannotated":
                            per_unit.setdefault(unit, []).append(r)
        rows[name] = (np.mean(out["all"]) if out["all"] else np.nan,
                      np.mean(out["unannotated"]) if out["unannotated"] else np.nan,
                      {u: np.mean(v) for u, v in per_unit.items()})
    return rows



def replay(events, variant):
    st = {}
    for e in events:
        k, f, t, w, own = e["k"], e["f"], e["t"], e["w"], e["own"]
        d = 1 if f > t else -1
        x = own
        if "chain" in variant:
            prev = 1.0 if f - d == t else st.get((k, f - d), 1.0)
            x = min(own, prev)
        if "blend" in variant and (k, f) in st:
            x = w * x + (1 - w) * st[(k, f)]
        st[(k, f)] = x
    return st

def score(rec, variant, agg="mean"):
    T = len(rec["frame_J"])
    st = replay(rec["events"], variant)
    per = []
    for k, ann in rec["annotated"].items():
        v = np.zeros(T)
        for (kk, f), x in st.items():
            if kk == k: v[f] = x
        v[list(ann)] = 1.0
        per.append(v)
    per = np.array(per)
    return per.mean(0) if agg == "mean" else per.min(0)

def replay_rho(recs, variant, agg="mean"):
    out = []
    for rs in recs.values():
        for rec in rs:
            c = score(rec, variant, agg)
            J = np.asarray(rec["frame_J"], float)
            keep = np.ones(len(J), bool); keep[list(set().union(*map(set, rec["annotated"].values())))] = False
            if keep.sum() >= 3 and np.ptp(c[keep]) > 0 and np.ptp(J[keep]) > 0:
                out.append(spearmanr(c[keep], J[keep])[0])
    return np.mean(out) if out else np.nan



def _load(paths):
    d = {}
    for p in paths:
        with open(p, "rb") as fh:
            d.update(pickle.load(fh))
    return d


def print_table(folder):
    folder = Path(folder)
    sets = {"DAVIS train": ["train.pkl"], "DAVIS held-out": ["held.pkl"], "CHO t": ["cho_t.pkl"],
            "CHO z t=10": ["cho_z_t10.pkl"], "CHO z t=0,5,10,15": [f"cho_z_t{t}.pkl" for t in (0, 5, 10, 15)]}
    data = {k: _load([folder / p for p in ps if (folder / p).exists()]) for k, ps in sets.items()}

    def row(name, vals):
        print(f"| {name} | " + " | ".join("n/a" if v is None or np.isnan(v) else f"{v:+.2f}" for v in vals) + " |")

    print("| signal (per object; a frame's: the mean over objects unless said) | " + " | ".join(data) + " |")
    print("|---" * (len(data) + 1) + "|")
    single = ["crisp", "raw margin", "raw support", "raw fg prob", "area change", "IoU with neighbour",
              "centroid shift", "fragments", "prev-round IoU", "contention", "distance", "memory agreement"]
    for n in single:
        row(n, [table(d, {n: FACTORS[n]}, "mean")[n][1] for d in data.values()])
    for names in [("raw margin", "area change"), ("crisp", "area change"), ("raw margin", "area change", "fragments"),
                  ("raw margin", "area change", "prev-round IoU"), ("raw margin", "area change", "IoU with neighbour"),
                  ("raw margin", "area change", "centroid shift"), ("raw margin", "area change", "contention"),
                  ("crisp", "area change", "prev-round IoU"), ("raw margin", "area change", "memory agreement"),
                  ("raw margin", "memory agreement")]:
        fn = combo(*names)
        row(" x ".join(names), [table(d, {"x": fn}, "mean")["x"][1] for d in data.values()])
    fn = combo("crisp", "area change", "prev-round IoU")
    row("crisp x area change x prev-round IoU, min over objects (the previous score, approx.)",
        [table(d, {"x": fn}, "min")["x"][1] for d in data.values()])
    fn = combo("raw margin", "area change")
    row("raw margin x area change, min over objects", [table(d, {"x": fn}, "min")["x"][1] for d in data.values()])
    for v, label in (("chain", "raw margin x area change, running min from the annotated frame"),
                     ("blend", "raw margin x area change, blended like the masks (shipped)"),
                     ("chain+blend", "running min, then blended")):
        row(label, [replay_rho(d, v, "mean") for d in data.values()])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "record":
        return record(argv[1:])
    if argv and argv[0] == "table" and len(argv) == 2:
        return print_table(argv[1])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
