"""Mutated copies of real CT files for fuzzing ingest: byte flips, truncation, deleted or
corrupted tags, wrong VRs, swapped dimensions, NaN voxels, special files and permissions,
each in its own folder ``mNNNN`` of a tree that also holds good series.

Used by ``tests/jobs/test_fuzz_ingest.py`` (a few dozen mutants) and
``benchmarks/fuzz_ingest.py`` (over a thousand).
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pydicom

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real-ct"
GOOD_SERIES = "dcm_qa_ct/In/GE"
GOOD_VOLUME = "totalseg-example/example_ct_sm.nii.gz"
SINGLE_SOURCES = [
    "ct-singles/pydicom-wheel/CT_small.dcm",
    "ct-singles/pydicom-data/bad_sequence.dcm",
    "ct-singles/pydicom-data/eCT_Supplemental.dcm",
    "ct-singles/pydicom-data/explicit_VR-UN.dcm",
    "ct-singles/pylibjpeg-data/ds/JPEG2000Lossless/TOSHIBA_J2K_SIZ1_PixRep0.dcm",
    "ct-singles/pylibjpeg-data/ds/JPEG2000/MAROTECH_CT_JP2Lossy.dcm",
    "ct-singles/pylibjpeg-data/ds/JPEGLS/CT1_JLSN.dcm",
    "dcm_qa_ct/In/GE/05.dcm",
    "dlwpt-cptac-lscc-chest/volumetric-dicom/2-LUNG 3.0  B70f-04083/000010.dcm",
    "dcmqi-ct-3slice/segmentations/ct-3slice/01.dcm",
    "torchio-itk-written-dicom/image_data/dicom/IMG0001.dcm",
    "totalseg-example/example_ct_dicom/CT.1.3.12.2.1107.5.1.4.60064.30000022120808113428000016573",
    "totalseg-example/example_ct.nii.gz",
    "niivue-images-ct/CT_AVM.nii.gz",
]
FILE_OPS = (
    "byte_flips", "header_flips", "truncate", "delete_tag", "corrupt_tag", "wrong_vr",
    "swap_dims", "nan_voxels",
)  # fmt: skip
SPECIAL_OPS = ("fifo", "symlink_loop", "broken_link", "empty", "socket", "unreadable_file",
               "unreadable_folder")  # fmt: skip
TAGS = ["Rows", "Columns", "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient",
        "RescaleSlope", "RescaleIntercept", "BitsAllocated", "BitsStored", "PixelRepresentation",
        "SamplesPerPixel", "Modality", "SeriesInstanceUID", "PixelData", "NumberOfFrames",
        "TransferSyntaxUID", "SOPClassUID", "PhotometricInterpretation"]  # fmt: skip
BAD_VALUES = {"Rows": [0, 1, 65535], "Columns": [0, 3, 65535], "BitsAllocated": [0, 7, 64],
              "BitsStored": [0, 33], "PixelRepresentation": [5], "SamplesPerPixel": [0, 4],
              "RescaleSlope": ["nan", "inf", "0", "1e308"], "RescaleIntercept": ["-inf", "1e308"],
              "PixelSpacing": [["0", "0"], ["-1", "nan"], ["x", "y"]],
              "ImagePositionPatient": [["nan", "0", "0"], ["a"], []],
              "ImageOrientationPatient": [["0"] * 6, ["nan"] * 6, ["1"]],
              "NumberOfFrames": [0, 100000], "PhotometricInterpretation": ["RGB", "PALETTE"]}  # fmt: skip
VRS = [b"SQ", b"UN", b"OB", b"US", b"FD", b"AT", b"UT", b"XX"]
PERMISSION_FREE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


@dataclass(frozen=True)
class Mutant:
    """One mutated input: its folder in the tree and what was done to it."""

    folder: str
    op: str
    source: str


def build_tree(
    tree: Path,
    rng: np.random.Generator,
    n_files: int,
    n_special: int,
    first: int = 0,
    series_mutant: bool = True,
) -> list[Mutant]:
    """A tree with the good series (as symlinks to the real files), the good NIfTI, and
    ``n_files`` mutated files, ``n_special`` special entries and one mutated series."""
    good = tree / "good" / "GE"
    good.mkdir(parents=True)
    for path in sorted((REAL / GOOD_SERIES).iterdir()):
        (good / path.name).symlink_to(path)
    shutil.copy(REAL / GOOD_VOLUME, tree / "good" / "volume.nii.gz")
    mutants: list[Mutant] = []
    index = first
    for _ in range(n_files):
        source = SINGLE_SOURCES[rng.integers(len(SINGLE_SOURCES))]
        op = FILE_OPS[rng.integers(len(FILE_OPS))]
        folder = tree / f"m{index:04d}"
        folder.mkdir()
        _mutate_file(REAL / source, folder, op, rng, index)
        mutants.append(Mutant(folder.name, op, source))
        index += 1
    for _ in range(n_special):
        op = SPECIAL_OPS[rng.integers(len(SPECIAL_OPS))]
        folder = tree / f"m{index:04d}"
        folder.mkdir()
        _special(folder, op, rng, index)
        mutants.append(Mutant(folder.name, op, ""))
        index += 1
    if series_mutant:
        folder = tree / f"m{index:04d}"
        op = FILE_OPS[rng.integers(len(FILE_OPS) - 1)]  # nan_voxels is for volume files
        _mutate_series(REAL / GOOD_SERIES, folder, op, rng, index)
        mutants.append(Mutant(folder.name, f"series_{op}", GOOD_SERIES))
    return mutants


def _new_uid(data: bytes, uid: str, index: int) -> bytes:
    """``data`` with the UID's last digits replaced (same length): the mutant is its own series."""
    if len(uid) < 8:
        return data
    return data.replace(uid.encode(), (uid[:-5] + f".{index % 10000:04d}").encode())


def _series_uid(path: Path) -> str:
    try:
        return str(
            pydicom.dcmread(
                path, stop_before_pixels=True, force=True, specific_tags=["SeriesInstanceUID"]
            ).get("SeriesInstanceUID", "")
        )
    except Exception:
        return ""


def _mutate_file(source: Path, folder: Path, op: str, rng: np.random.Generator, index: int) -> None:
    name = source.name if source.name.endswith((".dcm", ".nii.gz")) else source.name + ".dcm"
    out = folder / name
    if source.name.endswith(".nii.gz"):
        out.write_bytes(_mutate_volume(source.read_bytes(), op, rng))
        return
    data = _new_uid(source.read_bytes(), _series_uid(source), index)
    out.write_bytes(data)
    out.write_bytes(_mutate_dicom(out, data, op, rng))


def _mutate_dicom(path: Path, data: bytes, op: str, rng: np.random.Generator) -> bytes:
    if op == "byte_flips":
        return _flip(data, rng, int(rng.integers(1, 64)), len(data))
    if op in ("header_flips", "nan_voxels"):
        return _flip(data, rng, int(rng.integers(1, 16)), min(len(data), 2048))
    if op == "truncate":
        return data[: int(rng.integers(0, len(data)))]
    if op == "wrong_vr":
        return _wrong_vr(data, rng)
    try:
        ds = pydicom.dcmread(path, force=True)
        keyword = TAGS[rng.integers(len(TAGS))]
        meta = keyword in ("TransferSyntaxUID",)
        target = ds.file_meta if meta and hasattr(ds, "file_meta") else ds
        if op == "delete_tag":
            if keyword in target:
                del target[keyword]
        elif op == "corrupt_tag":
            values = BAD_VALUES.get(keyword, ["", "\x00garbage\xff"])
            value = values[rng.integers(len(values))]
            try:
                setattr(target, keyword, value)
            except Exception:
                target[keyword].value = str(value)
        elif op == "swap_dims" and "Rows" in ds and "Columns" in ds:
            rows, cols = int(ds.Rows), int(ds.Columns)
            ds.Rows, ds.Columns = (cols * 2, rows // 2) if rows == cols else (cols, rows)
        from io import BytesIO

        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=False)
        return buffer.getvalue()
    except Exception:
        return _flip(data, rng, 8, len(data))  # pydicom cannot write it: flip bytes instead


def _wrong_vr(data: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite the VR of a few explicit-VR elements with another (or an invalid) VR."""
    out = bytearray(data)
    spots = [
        i
        for i in range(132, min(len(data) - 6, 4096))
        if data[i : i + 2] in (b"US", b"DS", b"IS", b"UI", b"CS", b"LO", b"SQ", b"OW")
        and data[i - 4 : i - 2] in (b"\x08\x00", b"\x18\x00", b"\x20\x00", b"\x28\x00")
    ]
    for i in (
        rng.choice(spots, size=min(len(spots), int(rng.integers(1, 4))), replace=False)
        if spots
        else []
    ):
        out[i : i + 2] = VRS[rng.integers(len(VRS))]
    return bytes(out)


def _mutate_volume(data: bytes, op: str, rng: np.random.Generator) -> bytes:
    raw = gzip.decompress(data)
    if op == "truncate":
        return data[: int(rng.integers(0, len(data)))]
    if op == "byte_flips":
        return _flip(data, rng, int(rng.integers(1, 8)), len(data))  # the gzip stream
    if op == "nan_voxels":
        return gzip.compress(_nan_nifti(raw, rng), compresslevel=1)
    # header flips (and the DICOM-only ops): corrupt the NIfTI header, recompress
    return gzip.compress(_flip(raw, rng, int(rng.integers(1, 12)), 348), compresslevel=1)


def _nan_nifti(raw: bytes, rng: np.random.Generator) -> bytes:
    """The NIfTI-1 volume as float32 with a random share (0.01 % .. 100 %) of NaN / ±inf."""
    header = bytearray(raw[:352])
    dims = np.frombuffer(raw[40:56], dtype="<i2")
    dtype = {2: "u1", 4: "<i2", 8: "<i4", 16: "<f4", 64: "<f8"}[
        int(np.frombuffer(raw[70:72], "<i2")[0])
    ]
    offset = int(np.frombuffer(raw[108:112], "<f4")[0])
    count = int(np.prod(dims[1:4]))
    values = np.frombuffer(raw[offset : offset + count * np.dtype(dtype).itemsize], dtype).astype(
        "<f4"
    )
    share = float(10 ** rng.uniform(-4, 0))
    bad = rng.random(values.size) < share
    values[bad] = rng.choice([np.nan, np.inf, -np.inf], size=int(bad.sum()))
    header[70:72] = np.array([16], "<i2").tobytes()
    header[72:74] = np.array([32], "<i2").tobytes()
    return bytes(header[:offset].ljust(offset, b"\0")) + values.tobytes()


def _flip(data: bytes, rng: np.random.Generator, count: int, limit: int) -> bytes:
    out = bytearray(data)
    if not out or limit <= 0:
        return bytes(out)
    for position in rng.integers(0, limit, size=count):
        out[position] ^= int(rng.integers(1, 256))
    return bytes(out)


def _special(folder: Path, op: str, rng: np.random.Generator, index: int) -> None:
    target = folder / "slice.dcm"
    if op == "fifo":
        os.mkfifo(target)
    elif op == "symlink_loop":
        target.symlink_to(target.name)
    elif op == "broken_link":
        target.symlink_to("gone.dcm")
    elif op == "empty":
        target.touch()
    elif op == "socket":
        import socket

        here = os.getcwd()
        os.chdir(folder)  # a socket path must be short
        try:
            sock = socket.socket(socket.AF_UNIX)
            sock.bind("slice.dcm")
            sock.close()
        finally:
            os.chdir(here)
    elif op in ("unreadable_file", "unreadable_folder"):
        source = REAL / SINGLE_SOURCES[0]
        inner = folder / "inner" if op == "unreadable_folder" else folder
        inner.mkdir(exist_ok=True)
        path = inner / "slice.dcm"
        path.write_bytes(_new_uid(source.read_bytes(), _series_uid(source), index))
        (inner if op == "unreadable_folder" else path).chmod(0o000)


def _mutate_series(
    source: Path, folder: Path, op: str, rng: np.random.Generator, index: int
) -> None:
    """A copy of the good series as its own series, with 1-3 of its files mutated."""
    folder.mkdir()
    files = sorted(source.iterdir())
    uid = _series_uid(files[0])
    for path in files:
        (folder / path.name).write_bytes(_new_uid(path.read_bytes(), uid, index))
    for pick in rng.choice(len(files), size=int(rng.integers(1, 4)), replace=False):
        out = folder / files[pick].name
        out.write_bytes(_mutate_dicom(out, out.read_bytes(), op, rng))


def ingest_tree(tree: Path, timeout_s: float, input_timeout_s: float = 60) -> tuple[int | str, str]:
    """`ctae ingest` over the tree as its own process (file permissions honoured even as
    root); (exit code or ``hang``, output)."""
    prefix = PERMISSION_FREE if os.geteuid() == 0 and shutil.which("setpriv") else []
    command = [
        *prefix,
        sys.executable,
        "-m",
        "jobs",
        "ingest",
        str(tree),
        "--catalog",
        str(tree.parent / f"{tree.name}.duckdb"),
        "--store",
        str(tree.parent / "store"),
        "--workers",
        "2",
        "--no-progress",
        "--input-timeout",
        str(input_timeout_s),
    ]
    try:
        done = subprocess.run(
            command,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as err:
        return "hang", str(err.stdout or "")
    return done.returncode, done.stdout + done.stderr


@dataclass
class TreeResult:
    """What ingesting one fuzz tree gave: outcome per mutant, and the good inputs' hashes."""

    outcomes: dict[str, str]
    good_hashes: dict[str, str]
    job_status: list[str]


def read_results(tree: Path, mutants: list[Mutant]) -> TreeResult:
    """Each mutant's outcome: ``ingested``, ``refused:<reasons>`` or ``unlisted``."""
    con = duckdb.connect(str(tree.parent / f"{tree.name}.duckdb"), read_only=True)
    try:
        scans = con.execute("SELECT source_path, content_hash FROM scans").fetchall()
        errors = con.execute("SELECT source_path, reason FROM ingest_errors").fetchall()
        jobs = [row[0] for row in con.execute("SELECT status FROM job_runs").fetchall()]
    finally:
        con.close()
    outcomes = {}
    for mutant in mutants:
        mine = lambda p, m=mutant: p == m.folder or p.startswith(m.folder + "/")  # noqa: E731
        if any(mine(path) for path, _ in scans):
            outcomes[mutant.folder] = "ingested"
        else:
            reasons = sorted({reason for path, reason in errors if mine(path)})
            outcomes[mutant.folder] = "refused:" + "+".join(reasons) if reasons else "unlisted"
    good = {path: digest for path, digest in scans if path.startswith("good")}
    return TreeResult(outcomes, good, jobs)


def count_outcomes(results: list[TreeResult]) -> Counter:
    """Mutants per outcome over every tree."""
    return Counter(o for r in results for o in r.outcomes.values())


def restore_permissions(tree: Path) -> None:
    """Make every entry removable again."""
    for folder, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            path = Path(folder) / name
            if not path.is_symlink():
                path.chmod(0o755)
