"""Made-up patient identities (names, IDs, dates, institution) for burned-in text and DICOM headers.

They exist so that the anonymity audit has something to find: none of them may survive into a
distilled artifact, a log or a W&B run. All combinations are invented.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

_SURNAMES = (
    "SATOYAMA",
    "KITAHARA",
    "MINAMIDA",
    "HIGASHINO",
    "NISHIKAWA",
    "OKUBORI",
    "TAKAMINE",
    "YUKIMURA",
    "HARUNOBU",
    "KAWAZOE",
    "MORIKAGE",
    "SHIRATORI",
    "TSUKIMOTO",
    "UMEHARA",
    "WAKATSUKI",
    "YANAGIDA",
)
_GIVEN = (
    "AKIRA",
    "CHIHIRO",
    "EMIKO",
    "FUMIO",
    "HARUKA",
    "ISAMU",
    "JUNKO",
    "KAORU",
    "MASAO",
    "NORIKO",
    "OSAMU",
    "RYOKO",
    "SHIGERU",
    "TOMOKO",
    "YASUO",
    "YUKIE",
)
INSTITUTIONS = (
    "KITAMACHI GENERAL HOSPITAL",
    "HOKUYO HEALTH SCREENING CENTER",
    "MIZUHO CLINIC OF RADIOLOGY",
    "SAKURAGAOKA MEDICAL CENTER",
)
_PHYSICIANS = ("TANIGUCHI^HIROSHI", "ODAGIRI^MAYUMI", "KURODA^KENJI", "FUJIMAKI^SACHIKO")


@dataclass(frozen=True)
class Identity:
    """A fictitious patient and exam: what a hospital file would carry."""

    patient_id: str
    family_name: str
    given_name: str
    sex: str
    birth_date: dt.date
    study_date: dt.date
    institution: str
    physician: str
    accession: str

    @property
    def dicom_name(self) -> str:
        """The name in DICOM PN form: ``Family^Given``."""
        return f"{self.family_name}^{self.given_name}"

    def burn_in_lines(self) -> list[str]:
        """The text a modality stamps into the corner of the image."""
        return [
            f"{self.family_name} {self.given_name}",
            f"ID {self.patient_id}  {self.sex}",
            f"DOB {self.birth_date:%Y-%m-%d}",
            f"{self.study_date:%Y-%m-%d}",
            self.institution,
        ]


def make_identities(rng: np.random.Generator, n: int) -> list[Identity]:
    """``n`` identities with distinct patient IDs ("P" + 7 digits)."""
    numbers = rng.choice(9_000_000, size=n, replace=False) + 1_000_000
    out = []
    for k in range(n):
        birth = dt.date(1935, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 55)))
        study = dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 6)))
        out.append(
            Identity(
                patient_id=f"P{int(numbers[k]):07d}",
                family_name=str(rng.choice(_SURNAMES)),
                given_name=str(rng.choice(_GIVEN)),
                sex=str(rng.choice(["M", "F"])),
                birth_date=birth,
                study_date=study,
                institution=str(rng.choice(INSTITUTIONS)),
                physician=str(rng.choice(_PHYSICIANS)),
                accession=f"A{int(rng.integers(10**8, 10**9))}",
            )
        )
    return out
