"""Real-world units of an image series: Hounsfield units, SUVbw for PET, or stored values.

SUV body weight follows the QIBA / Cornerstone (``@cornerstonejs/calculate-suv``) recipe:
activity concentration (Bq/ml) x patient weight (g) / injected dose decayed to the scan start.
The scan start is the series date/time unless acquisitions began earlier (then the earliest
acquisition date/time, or GE's private post-injection time). One deliberate difference from
calculate-suv: images decay-corrected to the administration time (DecayCorrection ADMIN) are not
decayed a second time.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from ..errors import Report


@dataclass(frozen=True)
class Unit:
    """A unit as shown to people and as a UCUM code for DICOM SR."""

    label: str
    ucum: str
    meaning: str


HU = Unit("HU", "[hnsf'U]", "Hounsfield unit")
SUV_BW = Unit("SUVbw", "{SUVbw}g/ml", "Standardized Uptake Value body weight")
BQML = Unit("Bq/ml", "Bq/mL", "Becquerels/milliliter")
STORED = Unit("stored value", "1", "no units")
MM = Unit("mm", "mm", "millimeter")
MM3 = Unit("mm3", "mm3", "cubic millimeter")
ML = Unit("ml", "ml", "milliliter")


class SuvUnavailable(Exception):
    """SUVbw cannot be computed; the message names the missing or unusable attribute."""


def _first(ds, keyword: str):
    value = ds.get(keyword)
    return None if value is None or str(value).strip() == "" else value


def _datetime(date: str | None, time: str | None, what: str) -> dt.datetime:
    if not date or not time:
        raise SuvUnavailable(f"{what} date/time is missing")
    date, time = str(date).strip(), str(time).strip()
    try:
        day = dt.datetime.strptime(date[:8], "%Y%m%d")
        hh = int(time[0:2])
        mm = int(time[2:4]) if len(time) >= 4 else 0
        ss = float(time[4:]) if len(time) > 4 else 0.0
    except ValueError as exc:
        raise SuvUnavailable(f"{what} date/time {date} {time} cannot be read") from exc
    return day + dt.timedelta(hours=hh, minutes=mm, seconds=ss)


def _dicom_dt(value: str, what: str) -> dt.datetime:
    value = str(value).strip()
    return _datetime(value[:8], value[8:].split("+")[0].split("-")[0], what)


def scan_start(headers: list) -> dt.datetime:
    """The time the injected dose is decayed to (see the module docstring)."""
    first = headers[0]
    series = _datetime(first.get("SeriesDate"), first.get("SeriesTime"), "SeriesDate/SeriesTime")
    acquisitions = [_datetime(h.get("AcquisitionDate"), h.get("AcquisitionTime"),
                              "AcquisitionDate/AcquisitionTime") for h in headers]
    earliest = min(acquisitions)
    if series <= earliest:
        return series
    ge_private = first.get((0x0009, 0x100D))  # GE "post injection date time"
    if ge_private is not None and str(ge_private.value).strip():
        return _dicom_dt(ge_private.value, "GE private post-injection time (0009,100D)")
    return earliest


def suv_bw_factor(headers: list) -> float:
    """Factor from stored activity concentration to SUVbw; raises SuvUnavailable."""
    first = headers[0]
    units = str(first.get("Units", "") or "").strip().upper()
    if units == "GML":
        return 1.0
    if not units:
        raise SuvUnavailable("Units (0054,1001) is missing")
    if units != "BQML":
        raise SuvUnavailable(f"Units (0054,1001) is {units}, not BQML")
    corrected = {str(v).upper() for v in (first.get("CorrectedImage") or [])}
    if not {"ATTN", "DECY"} <= corrected:
        raise SuvUnavailable("CorrectedImage (0028,0051) does not list both ATTN and DECY")
    decay_mode = str(first.get("DecayCorrection", "") or "").strip().upper()
    if decay_mode not in ("START", "ADMIN"):
        raise SuvUnavailable(f"DecayCorrection (0054,1102) is {decay_mode or 'missing'}, "
                             "not START or ADMIN")
    weight = _first(first, "PatientWeight")
    if weight is None or float(weight) <= 0:
        raise SuvUnavailable("PatientWeight (0010,1030) is missing")
    seq = first.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        raise SuvUnavailable("RadiopharmaceuticalInformationSequence (0054,0016) is missing")
    info = seq[0]
    dose = _first(info, "RadionuclideTotalDose")
    if dose is None or float(dose) <= 0:
        raise SuvUnavailable("RadionuclideTotalDose (0018,1074) is missing")
    half_life = _first(info, "RadionuclideHalfLife")
    if half_life is None or float(half_life) <= 0:
        raise SuvUnavailable("RadionuclideHalfLife (0018,1075) is missing")
    decayed = float(dose)
    if decay_mode == "START":
        start_dt = _first(info, "RadiopharmaceuticalStartDateTime")
        if start_dt is not None:
            injected = _dicom_dt(start_dt, "RadiopharmaceuticalStartDateTime (0018,1078)")
        else:
            start_t = _first(info, "RadiopharmaceuticalStartTime")
            if start_t is None:
                raise SuvUnavailable("RadiopharmaceuticalStartTime (0018,1072) is missing")
            injected = _datetime(first.get("SeriesDate"), start_t,
                                 "RadiopharmaceuticalStartTime (0018,1072)")
        elapsed = (scan_start(headers) - injected).total_seconds()
        if elapsed < 0:
            raise SuvUnavailable("the injection time is after the scan start")
        decayed = float(dose) * math.pow(2.0, -elapsed / float(half_life))
    return float(weight) * 1000.0 / decayed


def image_unit(modality: str | None, headers: list, report: Report, *,
               what: str = "image") -> tuple[Unit, float]:
    """Unit of the image's values and the factor that converts rescaled values to it.

    CT is in HU; PET in SUVbw when every attribute it needs is present, else in its stored units
    with a warning naming what is missing; anything else in stored values.
    """
    modality = (modality or "").upper()
    if modality == "CT":
        return HU, 1.0
    if modality == "PT":
        try:
            return SUV_BW, suv_bw_factor(headers)
        except SuvUnavailable as exc:
            units = str(headers[0].get("Units", "") or "").strip().upper() if headers else ""
            fallback = BQML if units == "BQML" else STORED
            report.warn(f"{what}: SUVbw not computed: {exc}; values are in {fallback.label}")
            return fallback, 1.0
    return STORED, 1.0
