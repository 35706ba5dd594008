"""Evaluation units from a DAVIS-layout folder or from a TIFF image / label stack pair.

DAVIS layout (``ROOT``)::

    JPEGImages/480p/<seq>/00000.jpg ...
    Annotations/480p/<seq>/00000.png ...   binary, grayscale or indexed (palette) PNG
    Scribbles/<seq>/001.json               optional human first scribble

Object ids are the unique non-zero values of the annotations (255 is void in palette
PNGs and is not an object). A binary mask stored as 0/255 grayscale is one object.

TIFF stacks: a 4D image is read as (T, Z, Y, X), a 3D image as (N, Y, X) along the
chosen axis. The label ids are linked by overlap from slice to slice first (stored ids
are often not consistent through time), unless told to keep them. Each chosen object
becomes its own single-object unit: its mask through the stack is the ground truth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .protocol import VOID_LABEL, EvalSequence

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_annotation(path: str | Path) -> np.ndarray:
    """One annotation PNG as uint8/uint16 labels (0 background, 255 void for palettes)."""
    from PIL import Image

    path = Path(path)
    with Image.open(path) as im:
        mode = im.mode
        a = np.asarray(im)
    if mode == "P":
        return a.astype(np.uint8, copy=False)
    if mode == "1" or a.dtype == bool:
        return a.astype(np.uint8)
    if a.ndim == 3:
        if a.shape[-1] in (3, 4) and (a[..., :3] == a[..., :1]).all():
            a = a[..., 0]  # grey stored as RGB
        else:
            raise ValueError(
                f"{path}: colour annotation PNGs are not supported; save indexed (palette) PNGs "
                "or one grey level per object"
            )
    if mode in ("L", "LA", "RGB", "RGBA") and set(np.unique(a).tolist()) <= {0, 255}:
        return (a > 0).astype(np.uint8)  # a binary mask saved as 0 / 255
    if a.dtype.kind not in "ui":
        raise ValueError(f"{path}: annotation of dtype {a.dtype} is not a label map")
    return a


def davis_sequences(root: str | Path, resolution: str = "480p") -> list[str]:
    """Sequences of a DAVIS-layout folder that have both frames and annotations."""
    root = Path(root)
    img_dir = root / "JPEGImages" / resolution
    ann_dir = root / "Annotations" / resolution
    if not img_dir.is_dir() or not ann_dir.is_dir():
        raise FileNotFoundError(
            f"{root} is not a DAVIS-layout folder: expected JPEGImages/{resolution}/<seq>/ and "
            f"Annotations/{resolution}/<seq>/"
        )
    return sorted(p.name for p in img_dir.iterdir() if p.is_dir() and (ann_dir / p.name).is_dir())


def load_davis_sequence(
    root: str | Path, name: str, resolution: str = "480p", scribble_index: int | None = 1
) -> EvalSequence:
    """Load one DAVIS sequence (frames, labels, optional human scribble) into memory."""
    root = Path(root)
    img_dir = root / "JPEGImages" / resolution / name
    ann_dir = root / "Annotations" / resolution / name
    images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if img_dir.is_dir() else []
    anns = sorted(p for p in ann_dir.glob("*.png")) if ann_dir.is_dir() else []
    if not images:
        raise FileNotFoundError(f"no frames in {img_dir}")
    if len(anns) != len(images):
        raise ValueError(
            f"{name}: {len(images)} frames but {len(anns)} annotations; the interactive protocol "
            "needs an annotation for every frame"
        )
    frames = np.stack([_read_image(p) for p in images])
    gt = np.stack([read_annotation(p) for p in anns])
    if gt.shape != frames.shape[:3]:
        raise ValueError(f"{name}: annotations {gt.shape} and frames {frames.shape[:3]} differ in size")
    scribble = None
    scribble_path = None
    if scribble_index is not None:
        path = root / "Scribbles" / name / f"{int(scribble_index):03d}.json"
        if path.is_file():
            scribble = json.loads(path.read_text())
            scribble_path = str(path)
    objects = [k for k in np.unique(gt).tolist() if k not in (0, VOID_LABEL)]
    return EvalSequence(
        name=name, frames=frames, gt=gt, objects=objects, scribble=scribble,
        meta={"source": "davis", "root": str(root), "scribble": scribble_path},
    )


def iter_davis(
    root: str | Path, names: Sequence[str] | None = None, resolution: str = "480p",
    scribble_index: int | None = 1,
) -> Iterator[EvalSequence]:
    """The sequences, loaded one at a time (only one is held in memory).

    Names are checked at once (before anything is loaded).
    """
    available = davis_sequences(root, resolution)
    if names:
        missing = [n for n in names if n not in available]
        if missing:
            raise FileNotFoundError(f"sequences not found in {root}: {missing}; available: {available}")
    if not (names or available):
        raise FileNotFoundError(f"no sequence in {root} (JPEGImages/{resolution}/<seq>/)")
    return (load_davis_sequence(root, n, resolution, scribble_index) for n in (names or available))


# ---------------------------------------------------------------------- TIFF stacks
def _read_tiff(path: str | Path) -> np.ndarray:
    """A TIFF stack as an array; an unreadable or empty file is a ValueError naming it."""
    import tifffile

    try:
        data = np.asarray(tifffile.imread(str(path)))
    except FileNotFoundError:
        raise
    except Exception as err:  # tifffile raises many kinds for a damaged file
        raise ValueError(f"cannot read the TIFF file {path}: {err}") from err
    if data.size == 0 or data.ndim < 2:
        raise ValueError(f"the TIFF file {path} holds no image (it may be truncated or damaged)")
    return data


def slice_stack(
    stack: np.ndarray, axis: str, z: int | None = None, t: int | None = None, ndim: int | None = None
) -> tuple[np.ndarray, str]:
    """(N, Y, X[, C]) slices of a (T, Z, Y, X[, C]) or (N, Y, X[, C]) stack along ``axis``.

    ``ndim`` is the number of non-channel axes (default: ``stack.ndim``). Along 't' the
    plane is ``z`` (default: the middle plane), along 'z' the time point ``t`` (default 0).
    Returns the slices and a description of the plane.
    """
    if axis not in ("t", "z"):
        raise ValueError(f"axis must be 't' or 'z', got {axis!r}")
    ndim = stack.ndim if ndim is None else int(ndim)
    if ndim == 3:
        if (axis == "t" and z not in (None, 0)) or (axis == "z" and t not in (None, 0)):
            raise ValueError(f"a 3D stack {stack.shape} has no second axis to choose a plane on")
        return stack, "3d"
    if ndim != 4:
        raise ValueError(f"expected a (T, Z, Y, X) or (N, Y, X) stack, got shape {stack.shape}")
    T, Z = stack.shape[:2]
    if axis == "t":
        z = Z // 2 if z is None else int(z)
        if not 0 <= z < Z:
            raise ValueError(f"--z {z} is out of range: the stack has {Z} planes (0..{Z - 1})")
        return stack[:, z], f"z={z}"
    t = 0 if t is None else int(t)
    if not 0 <= t < T:
        raise ValueError(f"--t {t} is out of range: the stack has {T} time points (0..{T - 1})")
    return stack[t], f"t={t}"


def choose_objects(
    labels: np.ndarray,
    objects: Sequence[int] | None = None,
    max_objects: int | None = None,
    min_presence: float = 0.5,
) -> list[int]:
    """Objects to evaluate.

    The given ``objects`` (checked); otherwise every object present in at least
    ``min_presence`` of the slices (the cells of the field, not a fragment seen in one
    slice), or with ``max_objects`` the N present in the most slices (ties: larger
    total area, then smaller id).
    """
    ids = np.unique(labels)
    ids = [int(i) for i in ids if i != 0]
    if objects:
        missing = [k for k in objects if k not in ids]
        if missing:
            raise ValueError(f"objects {missing} are not in the label stack (ids present: {ids[:20]}...)")
        return [int(k) for k in objects]
    stats = []
    for k in ids:
        m = labels == k
        stats.append((-int(m.any(axis=(1, 2)).sum()), -int(m.sum()), k))
    stats.sort()
    if max_objects is not None:
        return [k for _, _, k in stats[: int(max_objects)]]
    need = min_presence * len(labels)
    return sorted(k for n, _, k in stats if -n >= need)


def link_by_overlap(labels: np.ndarray, min_iou: float = 0.2) -> np.ndarray:
    """Relabel (N, H, W) instance labels so that an object keeps one id through the slices.

    Label ids of automatic or reference segmentations are often not consistent from
    slice to slice (the same value names another cell a few frames later). Each object
    of slice ``n`` takes the track id of the object of slice ``n - 1`` it overlaps most
    (intersection over union at least ``min_iou``, greedy, best pairs first); an
    unmatched object starts a new track, named by its own label value when that value
    is still free. A stack whose ids are already consistent comes back unchanged.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"expected (N, H, W) labels, got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("label values must be >= 0 (0 is background)")
    out = np.zeros(labels.shape, np.int64)
    used: set[int] = set()
    next_id = int(labels.max()) + 1
    for n in range(len(labels)):
        cur = labels[n].astype(np.int64)
        ids = [int(i) for i in np.unique(cur) if i != 0]
        mapping: dict[int, int] = {}
        if n > 0 and ids:
            prev = out[n - 1]
            both = (cur > 0) & (prev > 0)
            if both.any():
                pairs, inter = np.unique(np.stack([cur[both], prev[both]]), axis=1, return_counts=True)
                area_cur = dict(zip(*np.unique(cur[cur > 0], return_counts=True)))
                area_prev = dict(zip(*np.unique(prev[prev > 0], return_counts=True)))
                scored = []
                for (a, b), i in zip(pairs.T, inter):
                    iou = i / (area_cur[a] + area_prev[b] - i)
                    if iou >= min_iou:
                        scored.append((-iou, int(a), int(b)))
                taken: set[int] = set()
                for _, a, b in sorted(scored):
                    if a not in mapping and b not in taken:
                        mapping[a] = b
                        taken.add(b)
        for a in ids:
            if a not in mapping:
                if a in used:
                    mapping[a] = next_id
                    next_id += 1
                else:
                    mapping[a] = a
            used.add(mapping[a])
        if ids:
            lut = np.zeros(max(ids) + 1, np.int64)
            lut[list(mapping)] = list(mapping.values())
            out[n] = lut[cur]
    return out


def load_tiff_units(
    image: str | Path,
    labels: str | Path,
    axis: str = "t",
    z: int | None = None,
    t: int | None = None,
    objects: Sequence[int] | None = None,
    max_objects: int | None = None,
    link: bool = True,
    together: bool = True,
) -> list[EvalSequence]:
    """Evaluation units of a TIFF image / label stack pair.

    With ``together`` (the default) one unit holds every chosen object, numbered
    1..K in the order chosen, so that they are segmented in one session as a user
    does; ``together=False`` gives one single-object unit per object. With ``link``
    (the default) the label ids are first made consistent through the slices by
    :func:`link_by_overlap`; ``link=False`` trusts the ids as stored.
    """
    img = _read_tiff(image)
    lab = _read_tiff(labels)
    if img.shape[: lab.ndim] != lab.shape or img.ndim > lab.ndim + 1:
        raise ValueError(f"image {img.shape} and labels {lab.shape} differ in shape")
    if img.ndim == lab.ndim + 1 and img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image {img.shape} has an extra last axis that is not 1, 3 or 4 channels")
    frames, where = slice_stack(img, axis, z, t, ndim=lab.ndim)
    gt_all, _ = slice_stack(lab, axis, z, t)
    if link:
        gt_all = link_by_overlap(gt_all)
    chosen = choose_objects(gt_all, objects, max_objects)
    if not chosen:
        raise ValueError("the chosen plane of the label stack has no object")
    stem = Path(image).stem
    meta = {"source": "tiff", "image": str(image), "labels": str(labels), "axis": axis,
            "plane": where, "linked_by_overlap": bool(link)}
    if together:
        lut = np.zeros(int(gt_all.max()) + 1, np.uint16)
        lut[chosen] = np.arange(1, len(chosen) + 1)
        gt = lut[gt_all]
        return [
            EvalSequence(
                name=f"{stem}:{axis}-axis:{where}:{len(chosen)}-objects", frames=frames, gt=gt,
                objects=list(range(1, len(chosen) + 1)),
                meta={**meta, "objects": [int(k) for k in chosen], "together": True},
            )
        ]
    units = []
    for k in chosen:
        gt = (gt_all == k).astype(np.uint8)
        units.append(
            EvalSequence(
                name=f"{stem}:{axis}-axis:{where}:obj{k}", frames=frames, gt=gt, objects=[1],
                meta={**meta, "object": int(k), "together": False},
            )
        )
    return units
