"""A slide series on a DICOMweb server: metadata once, then only the tiles a command reads.

The levels come from the series metadata (WADO-RS ``/metadata``, PS3.18 10.4.1.1.2); tiles are
fetched as frames (``.../instances/<uid>/frames/<n,m,...>``, PS3.18 10.4.1.1.4) in the
transfer syntax the server stores (``transfer-syntax=*``), several frames per request, and
decoded here. ``FrameFetcher.requests`` / ``frames`` count what was asked for (the tests check
that a preview fetches only the tiles of its level).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError, RemoteError
from .client import Endpoint, WebOptions, multipart_parts, public, split_series_url

#: frames per request: keeps URLs short and answers a few MB
BATCH = 64
ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
EXPLICIT_LE = "1.2.840.10008.1.2.1"


class FrameFetcher:
    """Frames of one remote instance, fetched by number and decoded."""

    def __init__(self, ep: Endpoint, study: str, series: str, sop: str, ds) -> None:
        self.ep, self.study, self.series, self.sop, self.ds = ep, study, series, sop, ds
        self.requests = 0
        self.frames = 0

    def __call__(self, numbers: Sequence[int]) -> dict[int, np.ndarray]:
        from ..slide.frames import decode_frame, native_frame

        out: dict[int, np.ndarray] = {}
        numbers = list(numbers)
        for k in range(0, len(numbers), BATCH):
            batch = numbers[k:k + BATCH]
            path = (f"/studies/{self.study}/series/{self.series}/instances/{self.sop}/frames/"
                    + ",".join(map(str, batch)))
            what = f"fetching frames {batch[0]}..{batch[-1]} of instance {self.sop}"
            response = self.ep.call(what, lambda c, p=path: self.ep.request(
                "GET", p, headers={"Accept": ACCEPT}))
            self.requests += 1
            ctype = response.headers.get("Content-Type", "")
            parts = multipart_parts(response.content, ctype)
            if len(parts) != len(batch):
                raise RemoteError(f"{public(self.ep.url)}: {what}: the server sent "
                                  f"{len(parts)} frames for {len(batch)}")
            m = re.search(r"transfer-syntax=([0-9.]+)", ctype)
            ts = m.group(1) if m else EXPLICIT_LE
            for n, data in zip(batch, parts, strict=True):
                try:
                    if ts in (EXPLICIT_LE, "1.2.840.10008.1.2"):
                        out[n] = native_frame(data, self.ds)
                    else:
                        out[n] = decode_frame(data, self.ds, ts)
                except (InvalidInputError, RemoteError):
                    raise
                except Exception as exc:
                    raise RemoteError(f"{public(self.ep.url)}: frame {n} of instance "
                                      f"{self.sop} does not decode ({type(exc).__name__})") \
                        from None
            self.frames += len(batch)
        return out


def _no_bulk(*args) -> bytes:
    return b""


def remote_levels(url: str, wanted, *, options: WebOptions | None = None):
    """``(where, [(header, FrameFetcher), ...])`` for the instances of the series at ``url``
    (``.../studies/<uid>/series/<uid>``) whose header ``wanted(ds)`` accepts."""
    from pydicom.dataset import Dataset

    root, study, series = split_series_url(url)
    if not study or not series:
        raise InvalidInputError(f"{public(url)}: a DICOMweb slide must name a series: "
                                ".../studies/<StudyInstanceUID>/series/<SeriesInstanceUID>")
    ep = Endpoint(root, options)
    meta = ep.call(f"reading the metadata of series {series}",
                   lambda c: c.retrieve_series_metadata(study, series))
    items = []
    for item in meta or []:
        try:
            ds = Dataset.from_json(item, bulk_data_uri_handler=_no_bulk)
        except Exception as exc:
            raise RemoteError(f"{public(url)}: the metadata is not valid DICOM JSON "
                              f"({type(exc).__name__})") from None
        if wanted(ds):
            sop = str(ds.get("SOPInstanceUID") or "")
            items.append((ds, FrameFetcher(ep, study, series, sop, ds)))
    return public(url), items
