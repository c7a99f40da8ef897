"""Resumable cohort folders shared by both demo cohorts (phantoms and real anatomy): a marker per
series under ``OUT/.demo-data/``, so a re-run skips finished series and never overwrites a
folder it did not write."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

MARKER_DIR = ".demo-data"
TRUTH_FILE = "ground_truth.csv"
TRUTH_COLUMNS = ("series_uid", "source_path", "truth", "strength")


def series_uid_for(spec: Any) -> str:
    """A DICOM UID derived from the whole spec: same spec, same UID; changed spec, new UID."""
    from ctae_core.io.dicom_writer import derived_uid

    return derived_uid("ctae-demo-data", json.dumps(asdict(spec), sort_keys=True))


def marker_path(out: Path, spec: Any) -> Path:
    return out / MARKER_DIR / f"{spec.source_path}.json"


def is_complete(out: Path, spec: Any) -> bool:
    """True when ``spec``'s series was fully written by an earlier run with the same spec."""
    marker = marker_path(out, spec)
    if not marker.exists():
        return False
    try:
        record = json.loads(marker.read_text())
        return record["spec"] == asdict(spec) and record.get("complete") is True
    except (ValueError, KeyError):
        return False


def claim_series(out: Path, spec: Any) -> Path:
    """Empty the series folder of ``spec`` if it is ours; mark it as being written."""
    folder, marker = out / spec.source_path, marker_path(out, spec)
    if folder.exists() and not marker.exists():
        raise FileExistsError(
            f"refusing to overwrite {folder}: it was not written by `ctae demo-data` (no marker "
            f"{marker}); choose an empty OUT folder or move that folder away"
        )
    if folder.exists():
        shutil.rmtree(folder)  # a half-written or outdated series of ours
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"spec": asdict(spec), "complete": False}))
    return folder


def remove_stale(out: Path, keep: set[str], pattern: str = "scan_*.json") -> int:
    """Delete series an earlier, larger run of ours wrote (they have a marker) beyond ``--n``."""
    removed = 0
    for marker in sorted((out / MARKER_DIR).glob(pattern)):
        if marker.stem not in keep:
            shutil.rmtree(out / marker.stem, ignore_errors=True)
            marker.unlink()
            removed += 1
    return removed




def write_truth_file(out: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """``OUT/ground_truth.csv`` with ``columns`` and ``rows``, atomically (temp file, rename)."""
    path = out / TRUTH_FILE
    tmp = path.with_name(f".{TRUTH_FILE}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    os.replace(tmp, path)
    return path
