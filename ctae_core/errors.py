"""Errors raised by the core; jobs decide whether to skip the input or abort."""

from __future__ import annotations


class InvalidSeriesError(ValueError):
    """A DICOM series or volume file cannot become a CT volume.

    ``reason`` is a short code stored in ``ingest_errors`` (e.g. ``not_ct``, ``too_few_slices``).
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class EmptyMaskError(ValueError):
    """A body mask holds no voxel, so a masked error cannot be computed."""


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated or was written for another model."""
