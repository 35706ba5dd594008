"""Weight loading: the original IPNet layouts, this project's format, clear errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from napari_ipnet import weights
from napari_ipnet.model.networks import ModelConfig, build_model
from napari_ipnet.weights import WeightsError, load_model, save_checkpoint


# ---------------------------------------------------------------- original checkpoints
def _paper_dir_with(tmp_path, paper_checkpoints, **files):
    """A folder holding the good files (symlinked) except those given as state dicts / bytes."""
    folder, _ = paper_checkpoints
    for fname in ("I_e290.pth", "P_e290.pth"):
        if fname.replace(".", "_") in files:
            content = files[fname.replace(".", "_")]
            if isinstance(content, bytes):
                (tmp_path / fname).write_bytes(content)
            else:
                torch.save(content, tmp_path / fname, _use_new_zipfile_serialization=False)
        else:
            os.symlink(folder / fname, tmp_path / fname)
    return tmp_path


@pytest.fixture(scope="module")
def paper_model(paper_checkpoints):
    return load_model("ipnet-paper", weights_dir=paper_checkpoints[0], device="cpu")


def test_paper_architecture_matches_published_key_lists(paper_key_shapes, paper_model):
    model = paper_model
    for part, expected in paper_key_shapes.items():
        own = {
            "module." + k: tuple(v.shape)
            for k, v in getattr(model, part).state_dict().items()
            if not k.endswith("num_batches_tracked")
        }
        assert own == expected, part
    n_int = sum(int(np.prod(s)) for s in paper_key_shapes["interaction"].values())
    n_prop = sum(int(np.prod(s)) for s in paper_key_shapes["propagation"].values())
    assert len(paper_key_shapes["interaction"]) == 313
    assert len(paper_key_shapes["propagation"]) == 322
    assert abs(n_int / 1e6 - 46.5) < 0.5 and abs(n_prop / 1e6 - 143.5) < 0.5
    # the stride of each first bottleneck of res3..res5 sits on its 3x3 conv
    for stage in ("res3", "res4", "res5"):
        block = getattr(model.interaction.Encoder, stage)[0]
        assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
        assert block.downsample[0].stride == (2, 2)


def test_paper_checkpoints_load_strictly_and_exactly(paper_checkpoints, paper_model):
    folder, states = paper_checkpoints
    # really the legacy (non-zip) format, every key with the DataParallel prefix
    for fname in ("I_e290.pth", "P_e290.pth"):
        assert (folder / fname).read_bytes()[:4] != b"PK\x03\x04"
    assert all(k.startswith("module.") for s in states.values() for k in s)
    assert not any("num_batches_tracked" in k for s in states.values() for k in s)

    model = paper_model
    assert model.name == "ipnet-paper" and model.config == ModelConfig.paper()
    assert not model.training and model.device == torch.device("cpu")
    assert not any(p.requires_grad for p in model.parameters())
    for part, state in states.items():
        loaded = getattr(model, part).state_dict()
        assert len(loaded) == len(state) + sum(k.endswith("num_batches_tracked") for k in loaded)
        for key, value in state.items():
            assert torch.equal(loaded[key[len("module."):]], value), key

    # and the loaded pair runs (small input: the session path is the same as for any model)
    rgb = torch.rand(1, 3, 64, 64)
    m = torch.zeros(1, 1, 64, 64)
    with torch.inference_mode():
        out = model.interaction(rgb, m, m, m)
        assert out.feature.shape == (1, 2048, 2, 2)
        ref = model.propagation.SEFA(out.feature, out.feature)
        out2 = model.propagation(rgb, m, m, ref)
    assert out2.logits.shape == (1, 2, 64, 64) and torch.isfinite(out2.logits).all()


def test_paper_missing_file_says_how_to_download(tmp_path, paper_checkpoints):
    os.symlink(paper_checkpoints[0] / "I_e290.pth", tmp_path / "I_e290.pth")
    with pytest.raises(WeightsError) as err:
        load_model("ipnet-paper", weights_dir=tmp_path, device="cpu")
    msg = str(err.value)
    assert str(tmp_path / "P_e290.pth") in msg and "I_e290.pth," not in msg
    assert "napari-ipnet fetch-weights ipnet-paper" in msg and "non-commercial" in msg


def test_paper_missing_key_names_file_and_key(tmp_path, paper_checkpoints):
    _, states = paper_checkpoints
    bad = dict(states["interaction"])
    del bad["module.Decoder.pred2.bias"]
    folder = _paper_dir_with(tmp_path, paper_checkpoints, I_e290_pth=bad)
    with pytest.raises(WeightsError) as err:
        load_model("ipnet-paper", weights_dir=folder, device="cpu")
    msg = str(err.value)
    assert str(folder / "I_e290.pth") in msg
    assert "1 missing key(s)" in msg and "Decoder.pred2.bias" in msg
    assert "interaction network" in msg


def test_paper_wrong_shape_and_unexpected_key_name_file(tmp_path, paper_checkpoints):
    _, states = paper_checkpoints
    # the propagation file is checked after the (good) interaction file: keep it small
    bad = {
        "module.Encoder.conv1_x.weight": torch.zeros(64, 2, 7, 7),  # wrong shape
        "module.Encoder.mean": states["propagation"]["module.Encoder.mean"],
        "module.Encoder.extra.weight": torch.zeros(3),  # unexpected
    }
    folder = _paper_dir_with(tmp_path, paper_checkpoints, P_e290_pth=bad)
    with pytest.raises(WeightsError) as err:
        load_model("ipnet-paper", weights_dir=folder, device="cpu")
    msg = str(err.value)
    assert str(folder / "P_e290.pth") in msg and "propagation network" in msg
    assert "wrong shape" in msg and "Encoder.conv1_x.weight: file (64, 2, 7, 7) vs model (64, 1, 7, 7)" in msg
    assert "unexpected key" in msg and "Encoder.extra.weight" in msg
    assert "missing key" in msg


def test_paper_truncated_file_gives_clear_error(tmp_path, paper_checkpoints):
    good = (paper_checkpoints[0] / "I_e290.pth").read_bytes()
    folder = _paper_dir_with(tmp_path, paper_checkpoints, I_e290_pth=good[: len(good) // 3])
    with pytest.raises(WeightsError) as err:
        load_model("ipnet-paper", weights_dir=folder, device="cpu")
    msg = str(err.value)
    assert str(folder / "I_e290.pth") in msg and "truncated" in msg and "download again" in msg


class _Evil:
    def __reduce__(self):
        return (open, (str(_Evil.marker), "w"))


def test_checkpoint_loading_never_unpickles_arbitrary_objects(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": _Evil(), "config": {}}, path)
    with pytest.raises(WeightsError) as err:
        load_model(path, device="cpu")
    assert str(path) in str(err.value)
    assert not _Evil.marker.exists()
    # a file holding something other than a dict
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not a state dict"):
        load_model(tmp_path / "list.pth", device="cpu")


# ---------------------------------------------------------------- this project's format
def _assert_same_state(a, b, half=False):
    for part in ("interaction", "propagation"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert sb[k].dtype == sa[k].dtype, k
            if half and sa[k].is_floating_point():
                assert torch.equal(sb[k], sa[k].half().float()), k
            else:
                assert torch.equal(sa[k], sb[k]), k


def test_own_checkpoint_round_trip(tmp_path, lite_model):
    path = save_checkpoint(lite_model, tmp_path / "m.safetensors", metadata={"epoch": 3, "note": "x"}, half=False)
    assert not list(tmp_path.glob("*.part"))
    meta = weights.read_checkpoint_metadata(path)
    assert meta["format"] == weights.FORMAT_TAG and json.loads(meta["epoch"]) == 3 and meta["note"] == "x"
    loaded = load_model(path, device="cpu")
    assert loaded.config == lite_model.config and loaded.name == str(path)
    _assert_same_state(lite_model, loaded)
    # float16 storage: values rounded to half precision, loaded back as float32
    path16 = save_checkpoint(lite_model, tmp_path / "m16.safetensors")
    assert path16.stat().st_size < 0.6 * path.stat().st_size
    _assert_same_state(lite_model, load_model(path16, device="cpu"), half=True)


def test_training_checkpoint_pt_loads(tmp_path):
    torch.manual_seed(1)
    model = build_model(ModelConfig(decoder_channels=32, decoder_mid_channels=64))
    tensors = {f"{part}.{k}": v for part in ("interaction", "propagation") for k, v in getattr(model, part).state_dict().items()}
    torch.save({"model": tensors, "config": model.config.to_dict(), "epoch": 1}, tmp_path / "ckpt.pt")
    loaded = load_model(tmp_path / "ckpt.pt", device="cpu")
    assert loaded.config.decoder_channels == 32
    _assert_same_state(model, loaded)
    torch.save({"model": tensors}, tmp_path / "noconfig.pt")
    with pytest.raises(WeightsError, match="needs 'model' and 'config'"):
        load_model(tmp_path / "noconfig.pt", device="cpu")
    torch.save({"model": tensors, "config": {"encoder": "efficientnet_lite0", "depth": 9}}, tmp_path / "future.pt")
    with pytest.raises(WeightsError) as err:
        load_model(tmp_path / "future.pt", device="cpu")
    assert str(tmp_path / "future.pt") in str(err.value) and "depth" in str(err.value)
    torch.save({"model": tensors, "config": {"encoder": "vit_h"}}, tmp_path / "vit.pt")
    with pytest.raises(WeightsError, match="needs the encoder 'vit_h'"):
        load_model(tmp_path / "vit.pt", device="cpu")


def test_own_checkpoint_errors(tmp_path, lite_model):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(WeightsError, match="not a napari-ipnet checkpoint"):
        load_model(foreign, device="cpu")
    good = save_checkpoint(lite_model, tmp_path / "m.safetensors")
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as err:
        load_model(cut, device="cpu")
    assert str(cut) in str(err.value) and "truncated" in str(err.value)
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "absent.safetensors", device="cpu")
    with pytest.raises(ValueError, match="unknown model"):
        load_model("no-such-model", device="cpu")
    # a checkpoint of another architecture names the file and the problem
    other = build_model(ModelConfig(decoder_channels=32))
    path = save_checkpoint(other, tmp_path / "other.safetensors")
    meta_fixed = tmp_path / "lying.safetensors"
    from safetensors.torch import load_file

    save_file(load_file(str(path)), str(meta_fixed),
              metadata={"format": weights.FORMAT_TAG, "config": json.dumps(ModelConfig().to_dict())})
    with pytest.raises(WeightsError) as err:
        load_model(meta_fixed, device="cpu")
    assert str(meta_fixed) in str(err.value) and "wrong shape" in str(err.value)


def _resave(path, out, config=None, change=None):
    """``path``'s tensors (``change``d) saved to ``out`` with ``config`` as its config metadata."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    if change:
        tensors.update(change(tensors))
    meta = weights.read_checkpoint_metadata(path)
    if config is not None:
        meta["config"] = config if isinstance(config, str) else json.dumps(config)
    save_file(tensors, str(out), metadata=meta)
    return out


def test_checkpoint_config_is_checked(tmp_path, lite_model):
    good = save_checkpoint(lite_model, tmp_path / "m.safetensors")
    cfg = ModelConfig().to_dict()
    bad = _resave(good, tmp_path / "notjson.safetensors", config="{encoder: lite0,")
    with pytest.raises(WeightsError) as err:
        load_model(bad, device="cpu")
    assert str(bad) in str(err.value) and "not valid JSON" in str(err.value)
    cases = {
        "roi": ({**cfg, "roi_size": -5}, "roi_size must be a positive integer, got -5"),
        "zero": ({**cfg, "decoder_channels": 0}, "decoder_channels must be a positive integer"),
        "float": ({**cfg, "decoder_mid_channels": 256.0}, "decoder_mid_channels must be a positive integer"),
        "text": ({**cfg, "roi_size": "256"}, "roi_size must be a positive integer, got '256'"),
        "flag": ({**cfg, "fuse_references": "yes"}, "fuse_references must be true or false"),
        "encoder": ({**cfg, "encoder": ["resnet50"]}, "needs the encoder"),
        "list": ([1, 2], "not a mapping"),
    }
    for name, (config, message) in cases.items():
        path = _resave(good, tmp_path / f"{name}.safetensors", config=config)
        with pytest.raises(WeightsError) as err:
            load_model(path, device="cpu")
        assert str(path) in str(err.value) and message in str(err.value), name
    torch.save({"model": {}, "config": {**cfg, "roi_size": -5}}, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="roi_size must be a positive integer"):
        load_model(tmp_path / "bad.pt", device="cpu")


def test_files_written_before_an_experiment_was_removed_still_load(tmp_path, lite_model):
    """A config field of a removed experiment loads when it says the experiment was off
    (the bundled file has ``"ending_flag": false``), and is refused when it was on."""
    good = save_checkpoint(lite_model, tmp_path / "m.safetensors", half=False)
    cfg = lite_model.config.to_dict()
    assert "ending_flag" not in cfg
    old = _resave(good, tmp_path / "old.safetensors", config={**cfg, "ending_flag": False})
    loaded = load_model(old, device="cpu")
    assert loaded.config == lite_model.config
    _assert_same_state(lite_model, loaded)
    tensors = {f"{part}.{k}": v for part in lite_model.parts for k, v in getattr(lite_model, part).state_dict().items()}
    torch.save({"model": tensors, "config": {**cfg, "ending_flag": False}}, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt", device="cpu").config == lite_model.config
    flagged = _resave(good, tmp_path / "flagged.safetensors", config={**cfg, "ending_flag": True})
    with pytest.raises(WeightsError) as err:
        load_model(flagged, device="cpu")
    assert str(flagged) in str(err.value) and "ending_flag=True" in str(err.value) and "removed" in str(err.value)
    torch.save({"model": tensors, "config": {**cfg, "ending_flag": "no"}}, tmp_path / "odd.pt")
    with pytest.raises(WeightsError, match="ending_flag='no'"):
        load_model(tmp_path / "odd.pt", device="cpu")


def test_integer_tensor_where_a_float_weight_belongs_is_refused(tmp_path, lite_model):
    good = save_checkpoint(lite_model, tmp_path / "m.safetensors", half=False)
    key = next(k for k, v in lite_model.interaction.state_dict().items() if v.is_floating_point())
    ints = _resave(good, tmp_path / "ints.safetensors",
                   change=lambda t: {f"interaction.{key}": t[f"interaction.{key}"].round().to(torch.int32)})
    with pytest.raises(WeightsError) as err:
        load_model(ints, device="cpu")
    msg = str(err.value)
    assert str(ints) in msg and "wrong dtype" in msg and key in msg and "torch.int32" in msg
    state = {f"{part}.{k}": v for part in lite_model.parts for k, v in getattr(lite_model, part).state_dict().items()}
    state[f"propagation.{key}"] = 3
    torch.save({"model": state, "config": lite_model.config.to_dict()}, tmp_path / "number.pt")
    with pytest.raises(WeightsError, match="not tensors"):
        load_model(tmp_path / "number.pt", device="cpu")


def test_default_without_bundled_weights_is_a_clear_error(tmp_path, monkeypatch, lite_model):
    monkeypatch.setattr(weights, "bundled_weights_dir", lambda: tmp_path)
    with pytest.raises(WeightsError) as err:
        load_model("default", device="cpu")
    msg = str(err.value)
    assert str(tmp_path / weights.DEFAULT_WEIGHTS_FILE) in msg and "fetch-weights" in msg
    # once a file is bundled, "default" loads it
    save_checkpoint(lite_model, tmp_path / weights.DEFAULT_WEIGHTS_FILE, half=False)
    model = load_model("default", device="cpu")
    assert model.name == "default"
    _assert_same_state(lite_model, model)


def test_resolve_device(monkeypatch):
    assert weights.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        weights.resolve_device("cuda")
    with pytest.raises((ValueError, RuntimeError)):
        weights.resolve_device("tpu9")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert weights.resolve_device("auto") == torch.device("cpu")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_IPNET_CACHE", str(tmp_path / "c"))
    assert weights.cache_dir() == tmp_path / "c"
    with pytest.raises(WeightsError) as err:
        load_model("ipnet-paper", device="cpu")
    assert str(tmp_path / "c" / "ipnet-paper" / "I_e290.pth") in str(err.value)


def test_model_with_an_ending_network_round_trip_and_add(tmp_path, lite_model):
    """``add_ending_network``: base networks unchanged, the other's propagation network added."""
    import dataclasses

    from napari_ipnet.training.loop import add_ending_network

    base = save_checkpoint(lite_model, tmp_path / "base.safetensors", metadata={"step": 7}, half=False)
    torch.manual_seed(1)
    tuned_model = build_model(lite_model.config)
    tuned = save_checkpoint(tuned_model, tmp_path / "tuned.safetensors", metadata={"step": 9}, half=False)
    out = add_ending_network(base, tuned, tmp_path / "both.safetensors")
    both = load_model(out, device="cpu")
    assert both.config.ending_network and both.parts == ("interaction", "propagation", "propagation_ending")
    assert dataclasses.replace(both.config, ending_network=False) == lite_model.config
    half = {"atol": 2e-3, "rtol": 1e-3}  # stored as float16
    for mine, ref in ((both.interaction, lite_model.interaction), (both.propagation, lite_model.propagation),
                      (both.propagation_ending, tuned_model.propagation)):
        ref_state = ref.state_dict()
        for k, v in mine.state_dict().items():
            torch.testing.assert_close(v, ref_state[k], **half)
    assert both.propagation_for(True) is both.propagation_ending
    assert both.propagation_for(False) is both.propagation
    assert lite_model.propagation_for(True) is lite_model.propagation  # no second network
    meta = weights.read_checkpoint_metadata(out)
    assert json.loads(meta["step"]) == 7 and json.loads(meta["ending_network"])["file"] == "tuned.safetensors"
    # another architecture is refused
    other = save_checkpoint(build_model(dataclasses.replace(lite_model.config, decoder_channels=32)),
                            tmp_path / "other.safetensors")
    with pytest.raises(WeightsError, match="another architecture"):
        add_ending_network(base, other, tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def test_cpu_model_is_channels_last_and_saves_contiguous(tmp_path):
    """load_model puts the CPU model's convolutions in channels-last layout (faster
    there); a checkpoint written from it loads back to the same weights."""
    import torch

    from napari_ipnet.model.networks import build_model
    from napari_ipnet.weights import load_model, save_checkpoint

    path = save_checkpoint(build_model(), tmp_path / "m.safetensors", half=False)
    model = load_model(path, device="cpu")
    conv = model.propagation.Encoder._conv_stem.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    again = load_model(save_checkpoint(model, tmp_path / "again.safetensors", half=False), device="cpu")
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
