"""Model registry and weight loading.

Three sources of weights:

- ``"default"``: the model bundled in the package's ``weights/`` folder (safetensors,
  this project's own format, EfficientNet-Lite0 encoder).
- ``"ipnet-paper"``: the original IPNet checkpoints ``I_e290.pth`` / ``P_e290.pth``
  (CC BY-NC-SA 4.0, non-commercial) from ``weights_dir`` or the per-user cache,
  downloaded by ``napari-ipnet fetch-weights ipnet-paper``.
- a path to a checkpoint in this project's format (``.safetensors`` or a training
  checkpoint ``.pt``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .model.networks import IPNetModel, ModelConfig

DEFAULT_WEIGHTS_FILE = "ipnet_lite0.safetensors"
PAPER_FILES = {"interaction": "I_e290.pth", "propagation": "P_e290.pth"}
FORMAT_TAG = "napari-ipnet/1"


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable or does not fit the architecture."""


def bundled_weights_dir() -> Path:
    """The ``weights/`` folder shipped inside the package."""
    return Path(__file__).resolve().parent / "weights"


def cache_dir() -> Path:
    """Per-user folder for downloaded weights (``$NAPARI_IPNET_CACHE`` overrides it)."""
    env = os.environ.get("NAPARI_IPNET_CACHE")
    if env:
        return Path(env).expanduser()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "napari-ipnet"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; others are checked."""
    if isinstance(device, torch.device):
        device = str(device)
    device = str(device).lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if device == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise RuntimeError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use auto, cuda, mps or cpu") from err


def _load_into(module: torch.nn.Module, state: dict, source: Path, what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names the file and the problem."""
    own = module.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in state and k not in optional]
    unexpected = [k for k in state if k not in own]
    not_tensors = [k for k in own if k in state and not isinstance(state[k], torch.Tensor)]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    # copying would convert silently: integers where weights belong, or the reverse
    dtypes = [
        f"{k}: file {state[k].dtype} vs model {own[k].dtype}"
        for k in own
        if k in state and isinstance(state[k], torch.Tensor)
        and state[k].is_floating_point() != own[k].is_floating_point()
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
    if wrong:
        problems.append(f"{len(wrong)} wrong shape(s), e.g. {wrong[:3]}")
    if dtypes:
        problems.append(f"{len(dtypes)} wrong dtype(s), e.g. {dtypes[:3]}")
    if not_tensors:
        problems.append(f"{len(not_tensors)} value(s) that are not tensors, e.g. {not_tensors[:3]}")
    if problems:
        raise WeightsError(f"{source} does not fit the {what}: " + "; ".join(problems))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        # only num_batches_tracked can still be absent: torch fills it for legacy files
        filled = dict(state)
        for k in optional - set(state):
            filled[k] = own[k]
        try:
            module.load_state_dict(filled, strict=True)
        except RuntimeError:
            raise WeightsError(f"{source} does not fit the {what}: {err}") from err


def _torch_load(path: Path) -> dict:
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, bad pickle, foreign objects
        raise WeightsError(
            f"cannot read {path} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "the file may be truncated or not a PyTorch checkpoint; delete it and download again"
        ) from err
    if not isinstance(obj, dict):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return obj


def _strip_prefix(state: dict, prefix: str = "module.") -> dict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def load_paper_weights(weights_dir: str | Path | None = None) -> IPNetModel:
    """The original IPNet pair (ResNet-50) from ``I_e290.pth`` and ``P_e290.pth``."""
    folder = Path(weights_dir) if weights_dir is not None else cache_dir() / "ipnet-paper"
    paths = {part: folder / fname for part, fname in PAPER_FILES.items()}
    absent = [str(p) for p in paths.values() if not p.is_file()]
    if absent:
        raise WeightsError(
            f"original IPNet weights not found: {', '.join(absent)}. Download them with "
            "`napari-ipnet fetch-weights ipnet-paper` (CC BY-NC-SA 4.0, non-commercial use only) "
            "or pass weights_dir= to the folder holding I_e290.pth and P_e290.pth"
        )
    model = IPNetModel(ModelConfig.paper(), name="ipnet-paper")
    for part, path in paths.items():
        state = _strip_prefix(_torch_load(path))
        _load_into(getattr(model, part), state, path, f"{part} network (ResNet-50 IPNet)")
    return model


def save_checkpoint(model: IPNetModel, path: str | Path, metadata: dict | None = None, half: bool = True) -> Path:
    """Write ``model`` in this project's format (safetensors, config in the metadata)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {}
    for part in model.parts:
        for k, v in getattr(model, part).state_dict().items():
            v = v.detach().to("cpu")
            if half and v.is_floating_point():
                v = v.half()
            tensors[f"{part}.{k}"] = v.contiguous()
    meta = {"format": FORMAT_TAG, "config": json.dumps(model.config.to_dict())}
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.chmod(tmp, 0o644)  # a model file is meant to be shared and shipped
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint_metadata(path: str | Path) -> dict:
    """The metadata stored in a safetensors checkpoint of this project."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


#: model-config fields of experiments tried and removed, each with the value under which
#: it changed nothing. Files written while the field existed (the bundled one among them:
#: ``"ending_flag": false``) carry it; with that value they load as before, with any
#: other they need the removed code and are refused.
RETIRED_CONFIG_FIELDS: dict[str, object] = {
    # one propagation network with a learnt "objects may end" input bias; the shipped
    # model has a second propagation network instead (``ending_network``)
    "ending_flag": False,
}


def _without_retired_fields(config: dict, path: Path) -> dict:
    """``config`` less the fields of removed experiments, if each holds its no-op value.

    Raises
    ------
    WeightsError
        A retired field holds another value: the file needs code this version lacks.
    """
    kept = dict(config)
    for name, inert in RETIRED_CONFIG_FIELDS.items():
        if name not in kept:
            continue
        value = kept.pop(name)
        if value is not inert:
            raise WeightsError(
                f"{path} was made with {name}={value!r}, an experiment that was tried and removed "
                f"(see the model card, weights/README.md); this version cannot run it"
            )
    return kept


def _config_from(config, path: Path) -> ModelConfig:
    """A ModelConfig from a checkpoint's config, every value checked (names the file)."""
    from dataclasses import fields

    from .model.backbones import ENCODERS

    if not isinstance(config, dict):
        raise WeightsError(f"{path} has a model config that is a {type(config).__name__}, not a mapping: {config!r}")
    config = _without_retired_fields(config, path)
    try:
        cfg = ModelConfig(**config)
    except TypeError as err:  # a field this version does not know
        raise WeightsError(f"{path} has a model config this version cannot build ({config!r}): {err}") from err
    if not isinstance(cfg.encoder, str) or cfg.encoder not in ENCODERS:
        raise WeightsError(f"{path} needs the encoder {cfg.encoder!r}; this version has {sorted(ENCODERS)}")
    defaults = ModelConfig()
    for f in fields(ModelConfig):
        value, kind = getattr(cfg, f.name), type(getattr(defaults, f.name))
        if kind is bool and not isinstance(value, bool):
            raise WeightsError(f"{path}: the model config's {f.name} must be true or false, got {value!r}")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise WeightsError(f"{path}: the model config's {f.name} must be a positive integer, got {value!r}")
    return cfg


def load_checkpoint(path: str | Path, name: str | None = None) -> IPNetModel:
    """Load a checkpoint of this project (``.safetensors``, or a training ``.pt``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            meta = read_checkpoint_metadata(path)
            tensors = load_file(str(path))
        except Exception as err:
            raise WeightsError(f"cannot read {path}: {err}; the file may be truncated") from err
        if meta.get("format") != FORMAT_TAG or "config" not in meta:
            raise WeightsError(f"{path} is not a napari-ipnet checkpoint (no '{FORMAT_TAG}' metadata)")
        try:
            config = json.loads(meta["config"])
        except ValueError as err:
            raise WeightsError(
                f"{path}: the 'config' metadata is not valid JSON ({err}): {meta['config'][:80]!r}"
            ) from err
        config = _config_from(config, path)
    else:
        obj = _torch_load(path)
        if "model" not in obj or "config" not in obj:
            raise WeightsError(f"{path} is not a napari-ipnet training checkpoint (needs 'model' and 'config')")
        config = _config_from(obj["config"], path)
        tensors = obj["model"]
        if not isinstance(tensors, dict):
            raise WeightsError(f"{path}: 'model' holds a {type(tensors).__name__}, not a state dict")
    model = IPNetModel(config, name=name or str(path))
    for part in model.parts:
        prefix = part + "."
        state = {
            k[len(prefix):]: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for k, v in tensors.items()
            if k.startswith(prefix)
        }
        _load_into(getattr(model, part), state, path, f"{part} network ({config.encoder})")
    return model


def load_model(
    name: str | os.PathLike = "default",
    *,
    weights_dir: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    half: bool | None = None,
) -> IPNetModel:
    """Load a ready interaction / propagation model pair.

    Parameters
    ----------
    name:
        ``"default"`` (bundled weights), ``"ipnet-paper"`` (original checkpoints,
        non-commercial licence) or a path to a checkpoint of this project.
    weights_dir:
        Folder of the original checkpoints (default: the per-user cache).
    device:
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cuda"``, ``"mps"`` or ``"cpu"``.
    half:
        Mixed precision (float16 autocast); default on for CUDA.

    Returns
    -------
    IPNetModel
        In eval mode on the chosen device.
    """
    dev = resolve_device(device)
    key = str(name)
    if key == "default":
        path = bundled_weights_dir() / DEFAULT_WEIGHTS_FILE
        if not path.is_file():
            raise WeightsError(
                f"this installation has no trained default weights ({path} is missing). "
                "Use load_model('ipnet-paper') after `napari-ipnet fetch-weights ipnet-paper`, "
                "or pass the path of a checkpoint"
            )
        model = load_checkpoint(path, name="default")
    elif key == "ipnet-paper":
        model = load_paper_weights(weights_dir)
    elif Path(key).suffix in (".safetensors", ".pt", ".pth") or Path(key).exists():
        model = load_checkpoint(Path(key))
    else:
        raise ValueError(f"unknown model {key!r}: use 'default', 'ipnet-paper' or a checkpoint path")
    model = model.to(dev).eval()
    if dev.type in ("cpu", "cuda"):
        # the convolutions run faster on channels-last tensors there (benchmarks/speed.py);
        # checkpoints are written contiguous whatever the layout (save_checkpoint)
        model = model.to(memory_format=torch.channels_last)
    model.use_autocast = (dev.type == "cuda") if half is None else bool(half)
    for p in model.parameters():
        p.requires_grad_(False)
    return model
