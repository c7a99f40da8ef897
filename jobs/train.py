"""`ctae train`: split the ingested scans, then fit the autoencoder (``ctae_core.training``).

A thin job: the run and its split go to the catalog (``jobs/train_catalog.py``), then
``jobs/train_session.py`` hands the scans to ``ctae_core.training`` and, after every epoch,
writes the checkpoint atomically and the epoch's row. ``--resume`` continues from the
checkpoint on exactly the same curve. Under ``torchrun`` it trains with DDP; rank 0 writes.
Also runnable as ``python -m jobs.train`` (what torchrun launches).
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from ctae_core.config import DEFAULT_PRESET, PRESETS, TrainConfig, preset, with_overrides
from ctae_core.errors import CheckpointError
from ctae_core.io.volume_store import StoreWriteError
from ctae_core.training_set import SplitError, TooFewScansError
from data_catalog import CatalogSettings
from data_catalog.runs import RunError
from jobs.job_errors import NOT_READY, JobError, stop
from jobs.options import CatalogOption, NoProgressOption, StoreOption, settings_from
from jobs.runtime import check_device, job_run
from jobs.train_catalog import open_run


def _parse_pad(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise typer.BadParameter(f"--pad-size must be Z,Y,X voxel counts like 273,87,87, not {text!r}")
    return values  # type: ignore[return-value]


def build_config(preset_name: str, **overrides: Any) -> TrainConfig:
    """The preset's TrainConfig with CLI overrides (None = keep the preset's value)."""
    return with_overrides(preset(preset_name), preset=preset_name, **overrides)


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave on the command line (None: not given)."""
    return {name: value for name, value in options.items() if value is not None}


def run_training(
    settings: CatalogSettings, run_id: str, cfg: TrainConfig, *, resume: bool = False,
    reuse_split: str | None = None, encoder_weights: Path | None = None, device: str = "auto",
    progress: bool = True, threads: int | None = None, resumed_with: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train run ``run_id`` end to end; returns a summary (epochs, val MSE, baseline MSE, paths).
    ``resumed_with``: what a resumed run changes of its stored config (``open_run``)."""
    # Under torchrun rank 0 opens the run; the others read it after a barrier.
    opened = (open_run(settings, run_id, cfg, resume, reuse_split, resumed_with)
              if int(os.environ.get("RANK", "0")) == 0 else None)
    # torch takes seconds to import: only now, once the user has seen the run's split
    from jobs.train_session import train

    return train(settings, run_id, opened, resume=resume, encoder_weights=encoder_weights,
                 device=device, progress=progress, threads=threads)


def preset_defaults(attribute: str, unet_only: bool = True) -> str:
    """Each U-Net preset's (``unet_only``, else every preset's) value of a training
    ``attribute``, "tiny_dae 10, small_dae 1", for an option's help: read from the presets, so
    the help cannot drift from them."""
    return ", ".join(f"{name} {getattr(cfg, attribute):g}" for name, cfg in PRESETS.items()
                     if not unet_only or cfg.model.architecture == "dae_unet")


def train_command(
    run: Annotated[str, typer.Option("--run", "--run-name", help="Name of the run (its run_id); under torchrun spell it --run-name.")],
    catalog: CatalogOption = None,
    store: StoreOption = None,
    preset_name: Annotated[str, typer.Option("--preset", help="tiny_dae (the default) | small_dae (the denoising U-Net at 3 mm) | tiny | small (the Med3D autoencoder) | thesis (Table 3.1).")] = DEFAULT_PRESET,
    epochs: Annotated[int | None, typer.Option(help="Epochs (preset's by default).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Volumes per step.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    lr_schedule: Annotated[str | None, typer.Option("--lr-schedule", help="constant (thesis) | cosine (tiny, small): lr falls to 1 % of --lr by the last epoch.")] = None,
    spacing: Annotated[float | None, typer.Option(help="Model input spacing in mm (tiny: 6, tiny_dae: 3).")] = None,
    pad_size: Annotated[str | None, typer.Option("--pad-size", help="Z,Y,X padded size; default: the largest scan.")] = None,
    latent: Annotated[int | None, typer.Option(help="Latent size (thesis 1024; Med3D presets only: the U-Net's latent is its bottleneck).")] = None,
    depth: Annotated[int | None, typer.Option(help="Encoder ResNet depth: 10, 18 or 34 (Med3D presets only).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of split, weights, order, placement.")] = None,
    reuse_split: Annotated[str | None, typer.Option("--reuse-split", help="Reuse this run's split.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run from its checkpoint.")] = False,
    early_stopping: Annotated[int | None, typer.Option("--early-stopping", help="Stop after N validated epochs without a better val loss.")] = None,
    validate_from: Annotated[float | None, typer.Option("--validate-from", min=0.0, max=1.0, help=f"Validate only the epochs that end at or after this share of the schedule (0-1; the last epoch always): the whole validation scans are reconstructed each time. Default: the preset's ({preset_defaults('validate_from', unet_only=False)}).")] = None,
    noise_std: Annotated[float | None, typer.Option("--noise-std", help=f"U-Net presets: SD of the coarse input noise in normalised units (one unit is the training scans' HU SD, about 460 HU on real chest and abdomen CT). Default: the preset's ({preset_defaults('noise_std')}).")] = None,
    output_lr_factor: Annotated[float | None, typer.Option("--output-lr-factor", help=f"U-Net presets: the output layer learns at this multiple of --lr. Default: the preset's ({preset_defaults('output_lr_factor')}).")] = None,
    patches_per_scan: Annotated[int | None, typer.Option("--patches-per-scan", help="U-Net presets: cubes drawn from each training scan per epoch.")] = None,
    normal_error_scans: Annotated[int | None, typer.Option("--normal-error-scans", help="Training scans the model's usual |error| per context is fitted on after training (the anomaly map is the |error| above it); 0: raw |error| maps.")] = None,
    encoder_weights: Annotated[Path | None, typer.Option("--encoder-weights", help="Local MedicalNet/Med3D .pth for the encoder.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads for torch. Default: one per core that other processes leave free.")] = None,
    no_progress: NoProgressOption = False,
) -> None:
    """Train the 3D autoencoder on the ingested scans (split, normalise, pad, fit, checkpoint)."""
    settings = settings_from(catalog, store, follow_store=True, existing=True)
    try:
        cfg = build_config(preset_name, epochs=epochs, batch_size=batch_size, lr=lr,
                           lr_schedule=lr_schedule, spacing_mm=spacing,
                           pad_size_zyx=_parse_pad(pad_size), latent=latent, depth=depth, seed=seed,
                           early_stopping=early_stopping, validate_from=validate_from,
                           noise_std=noise_std, output_lr_factor=output_lr_factor,
                           patches_per_scan=patches_per_scan, normal_error_scans=normal_error_scans)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    try:
        check_device(device)  # before the run is made: a run left behind needs --resume
    except JobError as err:
        raise stop("train", err) from err
    args = {"run": run, "preset": preset_name, "resume": resume, "config": cfg.to_dict()}
    # Under torchrun only rank 0 touches the catalog's job log; other ranks keep off the file.
    primary = int(os.environ.get("RANK", "0")) == 0
    try:
        with job_run(settings, "train", args) if primary else nullcontext({}) as counts:
            counts.update(run_training(settings, run, cfg, resume=resume, reuse_split=reuse_split,
                                       encoder_weights=encoder_weights, device=device,
                                       progress=not no_progress, threads=threads,
                                       resumed_with=_given(epochs=epochs,
                                                           early_stopping=early_stopping,
                                                           validate_from=validate_from)))
    except TooFewScansError as err:  # nothing to train on yet
        raise stop("train", JobError(str(err), exit_code=NOT_READY)) from err
    except (RunError, SplitError, CheckpointError, StoreWriteError, JobError) as err:
        raise stop("train", err) from err
    typer.echo(json.dumps(counts, default=str))


def register(app: typer.Typer) -> None:
    """Add ``ctae train`` to the CLI."""
    app.command("train")(train_command)


def main() -> None:
    """``python -m jobs.train …`` (what ``torchrun`` launches): the train command alone."""
    from jobs.log_setup import configure_logging

    configure_logging()
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    standalone.command()(train_command)
    standalone()


if __name__ == "__main__":
    main()
