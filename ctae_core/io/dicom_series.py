"""Read one DICOM series into an HU volume on a regular grid, or refuse it with a reason.

Slices are sorted along their normal, duplicates dropped, gaps measured (slice_geometry), pixels
decoded to HU (pixel_decoding: numpy for native data, SimpleITK's GDCM for JPEG, JPEG-LS,
JPEG 2000 and RLE) and stacked on an even grid along the stacking direction, which keeps
gantry tilt as a non-orthogonal direction for the resampler to undo.

Reason codes (``InvalidSeriesError.reason``): ``not_ct``, ``secondary_capture``,
``not_grayscale``, ``localizer``, ``multiframe``, ``no_geometry``, ``inconsistent_geometry``,
``unreadable``, ``single_slice``, ``too_few_slices``, ``conflicting_slices``,
``missing_slices``, ``implausible_hu``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydicom

from ctae_core.errors import InvalidSeriesError
from ctae_core.io import slice_geometry as geo
from ctae_core.io.dicom_checks import (
    check_image_kind,
    check_modality,
    check_slice_count,
    is_localizer,
)
from ctae_core.io.pixel_decoding import LayoutCache, decode_hu
from ctae_core.io.sources import SLICE_TAGS, ScanFacts, SliceHeader, quiet_pydicom
from ctae_core.stats import check_plausible_hu
from ctae_core.volume import Volume

logger = logging.getLogger(__name__)

READ_TAGS = [*SLICE_TAGS, "PixelData"]


@dataclass
class _Slice:
    path: str
    ds: pydicom.Dataset
    position: np.ndarray
    instance: int | None
    pixel_offset: int | None = None


def read_dicom_series(
    files: Sequence[str], label: str = "", headers: Sequence[SliceHeader] = (), threads: int = 1
) -> tuple[Volume, ScanFacts]:
    """Read, validate and stack a DICOM series into HU on a regular slice grid.

    Args:
        files: Paths of the series' files (any order).
        label: How to name the series in error messages (its relative path).
        headers: The files' headers as discovery read them (same order); when given, each
            file is opened once more only to read its pixels.
        threads: Slices decoded at once (the viewer's re-read uses every core; ingest already
            reads one series per worker).

    Returns:
        The volume (int16 HU, clipped below at -1024, shape (Z, Y, X), direction columns =
        row, column and stacking directions — not orthogonal when the gantry was tilted) and
        the facts learned while reading.

    Raises:
        InvalidSeriesError: the series is not a usable CT volume; ``reason`` says why.
    """
    label = label or (files[0] if files else "<empty series>")
    with quiet_pydicom():  # values are read lazily; bad ones are judged here, not logged
        return _read_series(files, label, headers, threads)


def _read_series(
    files: Sequence[str], label: str, headers: Sequence[SliceHeader], threads: int = 1
) -> tuple[Volume, ScanFacts]:
    warnings: list[str] = []
    if headers and len(headers) == len(files):
        datasets = [
            (path, h.dataset, h.pixel_offset) for path, h in zip(files, headers, strict=True)
        ]
    else:
        datasets = _read_all(files, label, warnings)
    slices = _image_slices(datasets, label, warnings)
    orientation = _check_consistent(slices, label)
    instances = _instance_numbers(slices)
    positions = np.array([s.position for s in slices])
    layout = geo.layout_slices(positions, orientation, instances)
    sorted_slices = [slices[i] for i in layout.order]
    planes, decoded = _decode_all(sorted_slices, label, warnings, threads)
    sorted_slices = [sorted_slices[i] for i in decoded]
    offsets = layout.offsets_mm[decoded]
    planes, offsets, kept, n_duplicates = _drop_duplicates(planes, offsets, label)
    kept_slices = [sorted_slices[i] for i in kept]
    check_slice_count(len(planes), label)
    hu, step_mm, n_missing = _regular_grid(planes, offsets, kept_slices, label, warnings)
    check_plausible_hu(hu, label)
    volume = _volume(hu, step_mm, kept_slices[0], orientation, layout.step_direction)
    facts = _facts(kept_slices[0].ds, volume, layout, n_missing, n_duplicates, warnings)
    return volume, facts


def _read_all(
    files: Sequence[str], label: str, warnings: list[str]
) -> list[tuple[str, pydicom.Dataset, int | None]]:
    out = []
    for path in files:
        try:
            out.append((path, pydicom.dcmread(path, force=True, specific_tags=READ_TAGS), None))
        except Exception as err:  # a broken file is a missing slice, not a broken job
            warnings.append(f"unreadable file skipped ({type(err).__name__})")
    if not out:
        raise InvalidSeriesError(f"{label}: no file of the series could be read", "unreadable")
    return out


def _image_slices(
    datasets: list[tuple[str, pydicom.Dataset, int | None]], label: str, warnings: list[str]
) -> list[_Slice]:
    """Check modality and image kind; drop localizer images mixed into an axial series."""
    first = datasets[0][1]
    check_modality(first, label, warnings)
    check_image_kind(first, label)
    slices, n_localizers = [], 0
    localizer_by_type: dict[object, bool] = {}  # ImageType as stored -> is a localizer
    for path, ds, pixel_offset in datasets:
        raw_type = _raw(ds, "ImageType")
        if raw_type not in localizer_by_type:
            localizer_by_type[raw_type] = is_localizer(ds)
        if localizer_by_type[raw_type]:
            n_localizers += 1
            continue
        if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds:
            raise InvalidSeriesError(
                f"{label}: {path} has no ImagePositionPatient/ImageOrientationPatient, so the "
                "slices cannot be placed in space; export the series with its geometry",
                "no_geometry",
            )
        slices.append(_Slice(path, ds, _position(ds), _instance(ds), pixel_offset))
    if not slices:
        raise InvalidSeriesError(
            f"{label}: a localizer (scout) series, not an axial volume; nothing to ingest",
            "localizer",
        )
    if n_localizers:
        warnings.append(f"{n_localizers} localizer image(s) dropped")
    return slices


def _position(ds: pydicom.Dataset) -> np.ndarray:
    """ImagePositionPatient (x, y, z) in mm, parsed from the stored text when it is still raw:
    pydicom's validating conversion cost more than decoding the slice's pixels."""
    raw = _raw(ds, "ImagePositionPatient")
    if isinstance(raw, bytes):
        try:
            values = [float(v) for v in raw.split(b"\\")]
            if len(values) == 3:
                return np.array(values)
        except ValueError:
            pass  # odd text: pydicom's conversion decides
    return np.array([float(v) for v in ds.ImagePositionPatient])


def _instance(ds: pydicom.Dataset) -> int | None:
    """InstanceNumber, or None when it is missing or empty."""
    raw = _raw(ds, "InstanceNumber")
    if isinstance(raw, bytes):
        try:
            return int(raw.strip(b" \x00")) if raw.strip(b" \x00") else None
        except ValueError:
            pass
    instance = ds.get("InstanceNumber")
    return int(instance) if instance not in (None, "") else None


def _check_consistent(slices: list[_Slice], label: str) -> np.ndarray:
    """All slices share size, pixel spacing and orientation; returns the orientation (6,)."""
    shared = ("Rows", "Columns", "PixelSpacing", "ImageOrientationPatient")
    # Slices are grouped by their values as stored (bytes, compared before any conversion):
    # a series usually has one group, so only one slice per group is converted and compared.
    groups: dict[tuple, _Slice] = {}
    for s in slices:
        groups.setdefault(tuple(_raw(s.ds, keyword) for keyword in shared), s)
    first = slices[0].ds
    orientation = np.array([float(v) for v in first.ImageOrientationPatient])
    for s in groups.values():
        ds = s.ds
        if ds is first:
            continue
        same_size = (ds.Rows, ds.Columns) == (first.Rows, first.Columns)
        same_spacing = np.allclose(
            [float(v) for v in ds.get("PixelSpacing", [1, 1])],
            [float(v) for v in first.get("PixelSpacing", [1, 1])],
            atol=1e-4,
        )
        same_orientation = np.allclose(
            [float(v) for v in ds.ImageOrientationPatient], orientation, atol=1e-3
        )
        if not (same_size and same_spacing and same_orientation):
            raise InvalidSeriesError(
                f"{label}: slices differ in size, pixel spacing or orientation ({s.path}); "
                "the series mixes several acquisitions — split it before ingesting",
                "inconsistent_geometry",
            )
    return orientation


_TAGS = {keyword: pydicom.tag.Tag(keyword) for keyword in SLICE_TAGS}
"""``BaseTag`` objects: pydicom looks them up without converting a keyword or an int first."""


def _raw(ds: pydicom.Dataset, keyword: str) -> object:
    """An element's value as stored (bytes, unconverted: cheap to compare), hashable, or None."""
    tag = _TAGS.get(keyword) or pydicom.datadict.tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return None
    value = ds.get_item(tag).value
    if type(value) is bytes:  # as stored: the usual case, without the ABC checks below
        return value
    if isinstance(value, list | pydicom.multival.MultiValue):
        return tuple(str(v) for v in value)  # already converted by an earlier reader
    return value


def _instance_numbers(slices: list[_Slice]) -> np.ndarray | None:
    values = [s.instance for s in slices]
    if any(v is None for v in values) or len(set(values)) != len(values):
        return None
    return np.array(values)


def _decode_all(
    slices: list[_Slice], label: str, warnings: list[str], threads: int = 1
) -> tuple[np.ndarray, list[int]]:
    """HU planes, int16 (N, Y, X), of the sorted slices that decode; and their indices.

    A slice that cannot be decoded (truncated file) is left out and becomes a gap. With
    ``threads`` > 1, runs of slices decode in parallel (file reads and numpy release the GIL).
    """
    first = slices[0].ds
    planes = np.empty((len(slices), int(first.Rows), int(first.Columns)), dtype=np.int16)
    errors: list[str | None] = [None] * len(slices)

    def decode(run: Sequence[int]) -> None:
        buffer = np.empty(planes.shape[1:], dtype=np.int32)
        scratch = np.empty(planes.shape[1:], dtype=np.uint16)
        layouts = LayoutCache()
        for k in run:
            s = slices[k]
            try:
                layout = layouts.layout(s.ds)
                decode_hu(s.path, s.ds, planes[k], buffer, s.pixel_offset, layout, scratch)
            except Exception as err:  # one broken file is a gap, not a broken series
                errors[k] = f"{type(err).__name__}: {err}"

    runs = [r for r in np.array_split(np.arange(len(slices)), max(1, threads)) if len(r)]
    if len(runs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(runs)) as pool:
            list(pool.map(decode, runs))
    else:
        decode(range(len(slices)))
    decoded = [k for k, error in enumerate(errors) if error is None]
    if len(decoded) < len(slices):
        warnings.append(f"{len(slices) - len(decoded)} undecodable slice(s) skipped")
    if not decoded:
        raise InvalidSeriesError(
            f"{label}: no slice could be decoded ({errors[-1]}); the files are truncated or "
            "use a transfer syntax no installed decoder reads",
            "unreadable",
        )
    return (planes if len(decoded) == len(slices) else planes[decoded]), decoded


def _drop_duplicates(
    planes: np.ndarray, offsets: np.ndarray, label: str
) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Keep one of each run of slices at the same position, when their pixels agree."""
    keep: list[int] = []
    for group in geo.duplicate_groups(offsets):
        for other in group[1:]:
            if not np.array_equal(planes[group[0]], planes[other]):
                raise InvalidSeriesError(
                    f"{label}: two slices at the same position ({offsets[other]:.2f} mm) hold "
                    "different pixels; the series mixes acquisitions — split it before "
                    "ingesting",
                    "conflicting_slices",
                )
        keep.append(group[0])
    n_duplicates = len(offsets) - len(keep)
    if not n_duplicates:  # the usual case: no copy of a possibly large stack
        return planes, offsets, keep, 0
    return planes[keep], offsets[keep], keep, n_duplicates


def _regular_grid(
    planes: np.ndarray,
    offsets: np.ndarray,
    slices: list[_Slice],
    label: str,
    warnings: list[str],
) -> tuple[np.ndarray, float, int]:
    """Planes on an even grid along the stacking direction; fills tolerated gaps."""
    gaps = np.diff(offsets)
    jumps = geo.monotone_instance_jumps(
        None if any(s.instance is None for s in slices) else np.array([s.instance for s in slices])
    )
    missing = geo.missing_per_gap(gaps, jumps)
    n_missing = int(missing.sum())
    n_expected = len(planes) + n_missing
    if n_missing > geo.missing_slice_limit(n_expected):
        raise InvalidSeriesError(
            f"{label}: {n_missing} of {n_expected} slices are missing (largest gap "
            f"{gaps.max():.1f} mm); at most {geo.missing_slice_limit(n_expected)} are "
            "interpolated — re-export the complete series",
            "missing_slices",
        )
    step = geo.median(gaps / (missing + 1))
    uneven = gaps.max() - gaps.min() > 0.01 * step
    if not uneven:
        return planes, float(gaps.mean()), 0
    if n_missing:
        warnings.append(f"{n_missing} missing slice(s) interpolated")
    if np.any(missing == 0) and (gaps[missing == 0].max() / gaps[missing == 0].min() > 1.05):
        warnings.append(
            f"uneven slice gaps {gaps.min():.2f}..{gaps.max():.2f} mm resampled to {step:.2f} mm"
        )
    targets = geo.regular_offsets(offsets, step)
    grid_step = float(targets[1] - targets[0])
    hu = np.rint(geo.interpolate_planes(planes, offsets, targets)).astype(np.int16)
    return hu, grid_step, n_missing


def _volume(
    hu: np.ndarray, step_mm: float, first: _Slice, orientation: np.ndarray, step_dir: np.ndarray
) -> Volume:
    row, col = orientation[:3], orientation[3:6]
    matrix = np.column_stack([row, col, step_dir])  # columns: x, y, z axis directions
    spacing = [float(v) for v in first.ds.get("PixelSpacing", [1.0, 1.0])]
    return Volume(
        hu=hu,
        spacing_zyx_mm=(step_mm, spacing[0], spacing[1]),
        origin_xyz_mm=tuple(float(v) for v in first.position),
        direction=tuple(float(v) for v in matrix.ravel()),
    )


def _facts(
    ds: pydicom.Dataset,
    volume: Volume,
    layout: geo.SliceLayout,
    n_missing: int,
    n_duplicates: int,
    warnings: list[str],
) -> ScanFacts:
    header_tilt = float(ds.get("GantryDetectorTilt", 0) or 0)
    tilt = header_tilt if header_tilt else layout.tilt_deg
    if tilt:
        warnings.append(f"gantry tilt {tilt:.1f} deg corrected by resampling")
    if n_duplicates:
        warnings.append(f"{n_duplicates} duplicate slice(s) dropped")
    thickness = ds.get("SliceThickness")
    return ScanFacts(
        manufacturer=_text(ds.get("Manufacturer")),
        model=_text(ds.get("ManufacturerModelName")),
        kernel=_text(ds.get("ConvolutionKernel")),
        slice_thickness_mm=float(thickness) if thickness not in (None, "") else None,
        orig_size_zyx=volume.shape,
        orig_spacing_zyx_mm=tuple(float(v) for v in volume.spacing_zyx_mm),
        orig_direction=volume.direction,
        gantry_tilt_deg=float(tilt),
        missing_slices=n_missing,
        duplicate_slices=n_duplicates,
        reversed_slices=layout.reversed_instances,
        warnings=tuple(warnings),
    )


def _text(value: object) -> str | None:
    """A device fact as text; multi-valued elements (e.g. Siemens kernels) joined by '\\'."""
    if value in (None, ""):
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip() or None
