"""Fake but realistic DICOM header facts of a demo scan: vendor tag style and patient identity.

Names are random pairings of common given and family names, IDs and dates are random: they
describe no real person, yet look like what de-identification must remove. Nothing here says
whether a scan is an outlier. Returned as plain dicts (keyword → value) so this module stays
free of DICOM libraries; ``jobs.demo_data`` turns them into a ``SeriesHeaderSpec``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

_GIVEN = (
    "Anna",
    "Bernd",
    "Clara",
    "David",
    "Elena",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Karin",
    "Luis",
    "Maja",
    "Nils",
    "Olga",
    "Pavel",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wim",
    "Yusuf",
    "Zoe",
    "Marta",
    "Peter",
    "Linh",
    "Omar",
    "Sofia",
    "Tomas",
)
_FAMILY = (
    "Albers",
    "Brandt",
    "Castell",
    "Dekker",
    "Engel",
    "Ferreira",
    "Gruber",
    "Hansen",
    "Iversen",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nowak",
    "Okafor",
    "Petrov",
    "Quast",
    "Rossi",
    "Schulte",
    "Tanaka",
    "Ulrich",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zeller",
    "Novak",
    "Berg",
    "Costa",
    "Haas",
    "Mertens",
)
_INSTITUTIONS = (
    ("Riverside General Hospital", "12 Mill Lane^Eastbrook"),
    ("St. Aldhelm Heart Centre", "4 Cathedral Row^Westford"),
    ("Northgate Medical Centre", "200 Harbour Road^Northgate"),
    ("Lakeside University Clinic", "1 Campus Drive^Lakeside"),
)


@dataclass(frozen=True)
class VendorStyle:
    """How one manufacturer writes its CT headers."""

    manufacturer: str
    models: tuple[str, ...]
    kernels: tuple[str, ...]
    rescale_intercept: float
    description: str
    file_suffix: str = ".dcm"
    shuffle_names: bool = False
    private: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)


VENDOR_STYLES = (
    VendorStyle(
        "SIEMENS",
        ("SOMATOM Force", "SOMATOM Definition Flash", "SOMATOM Drive"),
        ("Bv40d", "Bv36d", "I26f", "B26f"),
        -1024.0,
        "CorCTA {thick} {kernel} 75%",
        private={
            (0x0029, 0x0010): ("LO", "SIEMENS CSA HEADER"),
            (0x0029, 0x1008): ("CS", "IMAGE NUM 4"),
        },
    ),
    VendorStyle(
        "GE MEDICAL SYSTEMS",
        ("Revolution CT", "LightSpeed VCT", "Discovery CT750 HD"),
        ("STANDARD", "SOFT", "DETAIL"),
        -1024.0,
        "Cardiac {thick} {kernel}",
        file_suffix="",
        private={
            (0x0009, 0x0010): ("LO", "GEMS_IDEN_01"),
            (0x0009, 0x1001): ("LO", "GE_GENESIS_FF"),
        },
    ),
    VendorStyle(
        "Philips",
        ("iCT 256", "Brilliance 64", "IQon - Spectral CT"),
        ("XCB", "CB", "XCA"),
        -1000.0,
        "Cor {thick}mm {kernel} Best 78%",
        private={(0x01F1, 0x0010): ("LO", "ELSCINT1"), (0x01F1, 0x1001): ("CS", "HELICAL")},
    ),
    VendorStyle(
        "TOSHIBA",
        ("Aquilion ONE", "Aquilion PRIME SP"),
        ("FC03", "FC43", "FC08"),
        -1024.0,
        "CARDIAC {thick} {kernel} CTA",
        shuffle_names=True,
        private={(0x7005, 0x0010): ("LO", "TOSHIBA_MEC_CT3"), (0x7005, 0x1008): ("LO", "CARDIAC")},
    ),
)


def _date(rng: np.random.Generator, first_year: int, last_year: int) -> str:
    year = int(rng.integers(first_year, last_year + 1))
    month, day = int(rng.integers(1, 13)), int(rng.integers(1, 29))
    return f"{year:04d}{month:02d}{day:02d}"


def patient_identity(rng: np.random.Generator) -> dict[str, str]:
    """Name, ID, birth date, sex, accession number, institution and referring physician."""
    institution, address = _INSTITUTIONS[int(rng.integers(len(_INSTITUTIONS)))]
    return {
        "patient_name": f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}",
        "patient_id": f"PID{int(rng.integers(10**6, 10**7)):07d}",
        "patient_birth_date": _date(rng, 1935, 2000),
        "patient_sex": str(rng.choice(["F", "M"])),
        "accession_number": f"A{int(rng.integers(10**7, 10**8)):08d}",
        "institution_name": institution,
        "institution_address": address,
        "referring_physician_name": f"{rng.choice(_FAMILY)}^{rng.choice(_GIVEN)}^^Dr.",
        "study_date": _date(rng, 2018, 2024),
        "study_time": f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}00",
    }


def series_header(
    rng: np.random.Generator, spacing_zyx_mm: tuple[float, float, float], fov_mm: float
) -> tuple[dict[str, Any], VendorStyle]:
    """Keyword arguments of ``SeriesHeaderSpec`` for one series, and its vendor style."""
    style = VENDOR_STYLES[int(rng.integers(len(VENDOR_STYLES)))]
    model = str(rng.choice(style.models))
    kernel = str(rng.choice(style.kernels))
    thickness = spacing_zyx_mm[0]
    extra: dict[Any, Any] = {
        "ReconstructionDiameter": f"{fov_mm:.1f}",
        "DataCollectionDiameter": "500",
        "KVP": str(rng.choice(["80", "100", "120"])),
        "XRayTubeCurrent": int(rng.integers(150, 700)),
        "CTDIvol": round(float(rng.uniform(3.0, 40.0)), 2),
        "SoftwareVersions": f"VA{int(rng.integers(10, 60))}A",
        "StationName": f"CT{int(rng.integers(1, 9))}",
        "DeviceSerialNumber": str(int(rng.integers(10**4, 10**5))),
        "BodyPartExamined": "HEART",
        "ContrastBolusAgent": "Iopromide 370",
        "PatientAge": f"{int(rng.integers(35, 89)):03d}Y",
        "PatientWeight": round(float(rng.uniform(50.0, 120.0)), 1),
        **style.private,
    }
    if style.manufacturer == "SIEMENS" and model == "SOMATOM Force":
        extra["ConvolutionKernel"] = [kernel, "3"]  # Siemens writes kernel and ADMIRE level
    if style.manufacturer == "SIEMENS":
        extra["SpiralPitchFactor"] = round(float(rng.uniform(0.2, 3.2)), 2)
    fields = {
        "manufacturer": style.manufacturer,
        "model": model,
        "kernel": kernel,
        "slice_thickness_mm": round(thickness, 3),
        "series_number": int(rng.integers(2, 12)),
        "study_description": "CT Coronary Angiography",
        "series_description": style.description.format(thick=f"{thickness:.2f}", kernel=kernel),
        **patient_identity(rng),
        "extra": extra,
    }
    return fields, style
