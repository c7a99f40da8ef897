"""The formats a snapshot is exported in, for the tools people train with.

List formats are one file: CSV / Parquet (the list with its reasons), TXT (source paths) and a
MONAI datalist (``monai.data.load_decathlon_datalist``; images are the source series as
acquired). Bundle formats are a folder: ``nifti`` (the stored volumes and the run's anomaly
maps as NIfTI for 3D Slicer / ITK-SNAP, with a MONAI datalist over them) and ``nnunet``
(an nnU-Net v2 ``dataset.json`` whose ``dataset`` key lists the NIfTI images, plus a file list).
Every output is a pure function of the snapshot: re-created, it is the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pandas as pd

from data_catalog.filters import render_export
from data_catalog.snapshots import LIST_COLUMNS, LIST_SCHEMA, Snapshot

LIST_FORMATS = ("csv", "txt", "parquet", "monai")
BUNDLE_FORMATS = ("nifti", "nnunet")
FORMATS = LIST_FORMATS + BUNDLE_FORMATS
FILE_SUFFIX = {"csv": "csv", "txt": "txt", "parquet": "parquet", "monai": "json"}
MONAI_KEYS = {"train": "training", "val": "validation", "test": "test", "unseen": "test"}
NiftiOf = Callable[[str, str, float], bytes]
"""(array path, the scan's stored volume path, its spacing in mm) → NIfTI bytes on the stored
volume's grid."""


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def _source(row: pd.Series) -> str:
    return f"{str(row['source_root']).rstrip('/')}/{row['source_path']}"


def monai_datalist(listed: pd.DataFrame, images: list[str], manifest: dict, **extra: list[str | None]) -> dict:
    """A Decathlon-style datalist: ``training`` / ``validation`` / ``test`` lists of items with
    ``image`` (and any ``extra`` per-row keys that are set), by the run's split."""
    datalist: dict[str, object] = {
        "name": f"ctae export {manifest['export_id']}",
        "description": f"run {manifest['run_id']}, {manifest['row_count']} scans, "
                       f"list sha256 {manifest['content_hash']}",
        "modality": {"0": "CT"},
        "training": [], "validation": [], "test": [],
    }
    for i, (_, row) in enumerate(listed.iterrows()):
        item = {"image": images[i], "scan_id": row["scan_id"]}
        item.update({k: v[i] for k, v in extra.items() if v[i] is not None})
        datalist[MONAI_KEYS.get(row["split"], "test")].append(item)  # type: ignore[union-attr]
    datalist["numTraining"] = len(datalist["training"])  # type: ignore[arg-type]
    datalist["numTest"] = len(datalist["test"])  # type: ignore[arg-type]
    return datalist


def render_list(snapshot: Snapshot, fmt: str) -> bytes:
    """The snapshot's list as one file: csv | txt | parquet | monai."""
    if fmt not in LIST_FORMATS:
        raise ValueError(f"{fmt!r} is not a one-file format {list(LIST_FORMATS)}; "
                         "bundle formats write a folder")
    listed = snapshot.listed
    if fmt == "monai":
        images = [_source(row) for _, row in listed.iterrows()]
        return _json(monai_datalist(listed, images, snapshot.manifest))
    return render_export(listed, fmt, LIST_SCHEMA)


class BundleVolumeMissingError(FileNotFoundError):
    """A stored volume (or anomaly map) a bundle holds is gone from the store."""


def bundle_files(
    snapshot: Snapshot, fmt: str, error_paths: dict[str, str], nifti_of: NiftiOf
) -> Iterator[tuple[str, bytes]]:
    """The files of a bundle export, as (relative path, bytes), one volume at a time.

    Args:
        snapshot: What to export.
        fmt: ``nifti`` or ``nnunet``.
        error_paths: The run's |error| volume per scan_id (the anomaly maps), where kept.
        nifti_of: Builds a NIfTI of a stored array on its scan's grid
            (``ctae_core.io.nifti.store_nifti``; injected, data_catalog reads no arrays).

    Raises:
        BundleVolumeMissingError: a stored array is gone (a bare FileNotFoundError until stop
            56: a traceback from `ctae export`, an exception on the dashboard's page).
    """
    try:
        yield from _bundle_files(snapshot, fmt, error_paths, nifti_of)
    except FileNotFoundError as err:
        raise BundleVolumeMissingError(f"the {fmt} bundle holds every scan's stored volume: {err}") from err


def _bundle_files(
    snapshot: Snapshot, fmt: str, error_paths: dict[str, str], nifti_of: NiftiOf
) -> Iterator[tuple[str, bytes]]:
    if fmt not in BUNDLE_FORMATS:
        raise ValueError(f"{fmt!r} is not a bundle format {list(BUNDLE_FORMATS)}")
    chosen = snapshot.rows.loc[snapshot.rows["included"]].reset_index(drop=True)
    listed = chosen[LIST_COLUMNS]
    if fmt == "nifti":
        images, maps = [], []
        for _, row in chosen.iterrows():
            images.append(f"volumes/{row['scan_id']}.nii.gz")
            yield images[-1], nifti_of(row["volume_path"], row["volume_path"], row["spacing_mm"])
            error = error_paths.get(row["scan_id"])
            maps.append(f"anomaly_maps/{row['scan_id']}.nii.gz" if error else None)
            if error:
                yield maps[-1], nifti_of(error, row["volume_path"], row["spacing_mm"])
        table = listed.assign(nifti=images, anomaly_map=maps)
        yield "datalist.json", _json(monai_datalist(listed, images, snapshot.manifest, anomaly_map=maps))
    else:
        cases = []
        for _, row in chosen.iterrows():
            folder = "imagesTs" if MONAI_KEYS.get(row["split"]) == "test" else "imagesTr"
            cases.append(f"{folder}/{row['scan_id']}_0000.nii.gz")
            yield cases[-1], nifti_of(row["volume_path"], row["volume_path"], row["spacing_mm"])
        training = [c for c in cases if c.startswith("imagesTr/")]
        yield "dataset.json", _json({
            "name": f"ctae_{snapshot.manifest['run_id']}",
            "description": f"ctae export {snapshot.export_id}; images only (no labels yet)",
            "channel_names": {"0": "CT"},
            "labels": {"background": 0},
            "numTraining": len(training),
            "file_ending": ".nii.gz",
            "dataset": {c.split("/")[1][: -len("_0000.nii.gz")]: {"images": [c]} for c in training},
        })
        table = listed.assign(nifti=cases)
    schema = LIST_SCHEMA.append(LIST_SCHEMA.field("scan_id").with_name("nifti"))
    if "anomaly_map" in table:
        schema = schema.append(LIST_SCHEMA.field("scan_id").with_name("anomaly_map"))
    yield "files.csv", render_export(table[[*LIST_COLUMNS, *schema.names[len(LIST_COLUMNS):]]], "csv", schema)
    yield "manifest.json", snapshot.manifest_bytes()
