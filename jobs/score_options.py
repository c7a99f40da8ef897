"""What `ctae score` was asked to do (``ScoreOptions``), shared by the job and its workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctae_core.config import positive_number
from ctae_core.thresholds import ThresholdRule
from data_catalog.scores import SCORE_COLUMNS
from jobs.executor_types import ExecutorConfig

KEEP_VOLUMES = ("all", "flagged", "none")
LOCAL_POOL: dict[str, Any] = {"start_method": "forkserver", "preload": ("torch", "jobs.score_workers")}
"""A local pool of scoring processes starts them from a fork server that imported torch once: a
process forked from one that ran torch threads hangs when it starts its own (GNU OpenMP), and an
in-process caller (a notebook that trained first, the tests) may have run them."""


@dataclass(frozen=True)
class ScoreOptions:
    """What `ctae score` was asked to do; stored in job_runs."""

    run_id: str
    rule: ThresholdRule = ThresholdRule("pvalue")
    score: str = "outlier_score"
    keep_volumes: str = "all"
    error_level_hu: float = 200.0
    batch_size: int = 4
    device: str = "auto"
    overwrite: bool = False
    show_progress: bool = True
    channels_last: bool = True
    checkpoint_fingerprint: str | None = None
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    threads: int | None = None
    """Torch CPU threads in each scoring process or Ray actor (None: see ``jobs.score.score_scans``)."""

    def executor_config(self, default_workers: int = 1) -> ExecutorConfig:
        """Where batches are scored: ``workers`` local processes (``default_workers`` unless
        ``--workers`` says; one runs in this process, where torch uses every free core), or Ray
        actors (one GPU each where there are GPUs)."""
        workers = self.workers if self.executor == "ray" else (self.workers or default_workers)
        return ExecutorConfig(kind=self.executor, workers=workers,  # type: ignore[arg-type]
                              ray_address=self.ray_address, **(LOCAL_POOL if self.executor == "local" else {}))

    def __post_init__(self) -> None:
        if self.keep_volumes not in KEEP_VOLUMES:
            raise ValueError(f"--keep-volumes must be one of {KEEP_VOLUMES}, not {self.keep_volumes!r}")
        if self.score not in SCORE_COLUMNS:
            raise ValueError(f"--score must be one of {SCORE_COLUMNS}, not {self.score!r}")
        if self.rule.rule == "pvalue" and self.score != "outlier_score":
            raise ValueError(
                f"--rule pvalue applies to the outlier score only (its evidence is calibrated); "
                f"threshold {self.score} with --rule mean_std, mad or percentile"
            )
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, not {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be >= 1, not {self.threads}")
        if not positive_number(self.error_level_hu):
            raise ValueError(f"--error-level must be > 0 HU, not {self.error_level_hu}")

    def threshold_params(self, n_val: int) -> dict[str, Any]:
        """What is stored in runs.threshold_params_json."""
        return {**self.rule.to_dict(), "n_val": n_val, "error_level_hu": self.error_level_hu,
                "keep_volumes": self.keep_volumes,
                "checkpoint_fingerprint": self.checkpoint_fingerprint}


def default_rule(score: str) -> str:
    """The rule T follows unless --rule says otherwise: a p-value for the outlier score (whose
    heavy tail makes mean + 3·std follow any outlier in the validation split), the thesis's
    mean + 3·std (eq. 3.4) for the reconstruction errors."""
    return "pvalue" if score == "outlier_score" else "mean_std"
