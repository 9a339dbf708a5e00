"""A reference image series that lives on a DICOMweb server.

``--reference http://host/dicom-web/studies/<uid>/series/<uid>`` reads the series' metadata
(WADO-RS ``/metadata``, headers only) into the same grid and references a local folder gives;
pixels are fetched only when a command needs them (statistics, previews), instance by instance.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError, RemoteError, Report
from .client import Endpoint, WebOptions, public, split_series_url


@dataclass(frozen=True, eq=False)
class RemoteInstance:
    """One instance on the server; stands where a file path would in a ReferenceImage."""

    endpoint: Endpoint
    study: str
    series: str
    sop: str

    @property
    def name(self) -> str:
        return self.sop

    def __str__(self) -> str:
        return f"{public(self.endpoint.url)}/studies/{self.study}/series/{self.series}" \
               f"/instances/{self.sop}"

    def read_dataset(self):
        ds = self.endpoint.call(f"retrieving instance {self.sop}", lambda c: c.retrieve_instance(
            self.study, self.series, self.sop, media_types=(("application/dicom", "*"),)))
        if str(ds.get("SOPInstanceUID", "")) != self.sop:
            raise RemoteError(f"{self}: the server sent instance "
                              f"{ds.get('SOPInstanceUID', '<none>')} instead")
        return ds


def _empty_bulk(*args) -> bytes:
    return b""  # bulk data (pixels) is not needed for the grid


def series_headers(url: str, *, options: WebOptions | None = None,
                   series_uid: str | None = None):
    """``(endpoint, study, series, [header datasets])`` of the series at ``url``
    (``.../studies/<uid>/series/<uid>``): its WADO-RS metadata, bulk data left out."""
    from pydicom.dataset import Dataset

    root, study, series = split_series_url(url)
    series = series or series_uid
    if not study or not series:
        raise InvalidInputError(f"{public(url)}: a DICOMweb reference must name a series: "
                                ".../studies/<StudyInstanceUID>/series/<SeriesInstanceUID>")
    ep = Endpoint(root, options)
    meta = ep.call(f"reading the metadata of series {series}",
                   lambda c: c.retrieve_series_metadata(study, series))
    if not meta:
        raise RemoteError(f"{public(url)}: the series has no instances there")
    headers = []
    for item in meta:
        try:
            headers.append(Dataset.from_json(item, bulk_data_uri_handler=_empty_bulk))
        except Exception as exc:
            raise RemoteError(f"{public(url)}: the metadata is not valid DICOM JSON "
                              f"({type(exc).__name__}: {str(exc)[:100]})") from None
    return ep, study, series, headers


def read_remote_series(url: str, *, options: WebOptions | None = None,
                       series_uid: str | None = None, assign_uids: bool = False,
                       report: Report | None = None):
    """A ReferenceImage for the series at ``url`` (``.../studies/<uid>/series/<uid>``)."""
    from ..series import series_from_headers

    ep, study, series, headers = series_headers(url, options=options, series_uid=series_uid)
    items = []
    for ds in headers:
        sop = str(ds.get("SOPInstanceUID", "") or "")
        items.append((RemoteInstance(ep, study, series, sop), ds))
    return series_from_headers(public(url), items, series_uid=series, assign_uids=assign_uids,
                               report=report)
