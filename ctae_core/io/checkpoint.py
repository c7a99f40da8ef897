"""Checkpoint files: atomic writes, and loads that say clearly what is wrong with a bad file.

A ctae checkpoint is a ``torch.save``'d dict with ``format == "ctae-checkpoint"``; the only
objects in it are tensors, numbers, strings, lists and dicts, so it loads with
``weights_only=True`` (no code runs when a file is opened).
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ctae_core.error_norm import NormalError
from ctae_core.errors import CheckpointError
from ctae_core.inference import InputSpec, run_model_from_checkpoint
from ctae_core.io.volume_store import write_atomic
from ctae_core.model import Autoencoder

logger = logging.getLogger(__name__)

FORMAT = "ctae-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(payload: dict[str, Any], path: Path | str) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file, fsync, rename).

    A kill at any moment leaves either the previous file or the new one, never half a file; a
    failed write (a full disk) leaves the previous file and no temp file.

    Raises:
        StoreWriteError: the write failed; the message names the file and the space left.
    """
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    return write_atomic(Path(path), lambda handle: _torch_save(data, handle), fsync=True)


def _torch_save(data: dict[str, Any], handle: Any) -> None:
    """``torch.save``, its failed write raised as the ``OSError`` it is: torch's zip writer
    reports a full disk as "RuntimeError: [enforce fail at inline_container.cc] unexpected pos",
    raised while handling the OSError."""
    try:
        torch.save(data, handle)
    except RuntimeError as err:
        if isinstance(err.__context__, OSError):
            raise err.__context__ from None
        raise


def _torch_load(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: no {what} file here; check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(
            f"{path}: cannot read this {what} ({type(err).__name__}: {str(err)[:200]}); the file is "
            "corrupt, truncated or not a PyTorch file — delete it and retrain, or point to a good copy"
        ) from err


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a ctae checkpoint (on the CPU).

    Raises:
        CheckpointError: missing, corrupt or truncated file, or a file not written by ctae.
    """
    path = Path(path)
    data = _torch_load(path, "checkpoint")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a ctae checkpoint (no format={FORMAT!r} marker); it was written by "
            "another program — use the checkpoint.pt that `ctae train` wrote for the run"
        )
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format v{data['format_version']} is newer than this ctae "
            f"understands (v{FORMAT_VERSION}); upgrade ctae"
        )
    return data


def load_run_model(
    checkpoint_path: Path | str, device: str | torch.device = "cpu", channels_last: bool = False
) -> tuple[Autoencoder, InputSpec]:
    """The run's trained model (best validation epoch, eval mode, on ``device``) and its
    InputSpec, read from its checkpoint file.

    Raises:
        CheckpointError: missing, corrupt or foreign file, or a training run that never
            finished an epoch.
    """
    data = load_checkpoint(checkpoint_path)
    return run_model_from_checkpoint(data, checkpoint_path, device, channels_last)


def load_normal_error(checkpoint_path: Path | str) -> NormalError | None:
    """The run's usual |error| per context (``ctae_core.error_norm``), or None for a run that
    has none (its maps are the raw |error|)."""
    return normal_error_from(load_checkpoint(checkpoint_path), checkpoint_path)


def normal_error_from(data: dict[str, Any], source: Path | str) -> NormalError | None:
    """``load_normal_error`` of a checkpoint already read (``load_checkpoint``) from ``source``."""
    table = data.get("normal_error")
    if table is None:
        return None
    try:
        return NormalError.from_dict(table)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: unusable normal-error table ({err})") from err


def load_encoder_weights(encoder: nn.Module, path: Path | str) -> int:
    """Load a local MedicalNet / Med3D checkpoint (e.g. ``resnet_34_23dataset.pth``) into ``encoder``.

    MedicalNet files hold ``{"state_dict": {"module.conv1.weight": …, …}}``; the ``module.``
    prefix (DataParallel) is stripped and the segmentation head (``conv_seg``) is dropped.

    Returns:
        The number of tensors loaded.

    Raises:
        CheckpointError: unreadable file, or keys/shapes that do not match the encoder
            (e.g. a ResNet50 file for a ResNet34 encoder, or other channel widths).
    """
    path = Path(path)
    data = _torch_load(path, "encoder weights")
    state = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: no state_dict of tensors inside; is it a MedicalNet .pth file?")
    state = {k.removeprefix("module."): v for k, v in state.items() if "conv_seg" not in k}
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or extra or wrong:
        detail = "; ".join(
            f"{label}: {keys[:3]}{' …' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
            if keys
        )
        raise CheckpointError(
            f"{path}: does not match the Med3D ResNet{_depth_hint(own)} encoder ({detail}); use the "
            "MedicalNet file of the same depth with the default widths (64, 128, 256, 512)"
        )
    encoder.load_state_dict(state, strict=True)
    logger.info("loaded %d encoder tensors from %s", len(state), path)
    return len(state)


def _depth_hint(own: dict[str, torch.Tensor]) -> str:
    blocks = {k.split(".")[0] + "." + k.split(".")[1] for k in own if k.startswith("layer")}
    return {4: "10", 8: "18", 16: "34"}.get(len(blocks), "?")
