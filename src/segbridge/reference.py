"""The reference image series a segmentation lives on, from whatever the user named.

Beside the series reader (``series.py``) and the DICOMweb series (``web/series.py``): this is
the one place that turns a folder, a file list, a DICOMweb URL or a ready ReferenceImage into a
``ReferenceImage``. ``io`` (reading, writing) and ``validate`` both call it, so neither needs
the other.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .errors import Report
from .series import ReferenceImage, read_series

#: what a reference may be given as
ReferenceLike = ReferenceImage | str | os.PathLike | Sequence[str | os.PathLike] | None


def load_reference(reference: ReferenceLike, *, series_uid: str | None = None,
                   assign_uids: bool = False,
                   report: Report | None = None) -> ReferenceImage | None:
    """A ReferenceImage from a path (folder, file, list), a DICOMweb series URL, or as is.

    Parameters
    ----------
    reference
        A folder or file(s) of the image series, a ``.../studies/<uid>/series/<uid>``
        DICOMweb URL, a ReferenceImage (returned as is), or None.
    series_uid
        The SeriesInstanceUID to use when the folder holds several series.
    assign_uids
        Accept images with blank study / series UIDs by giving them new ones.
    report
        Collects what the series reader decided.

    Raises
    ------
    InvalidInputError
        The series cannot be read (one line naming the file).
    RemoteError
        A DICOMweb reference could not be fetched.
    """
    if reference is None or isinstance(reference, ReferenceImage):
        return reference
    from .web.client import is_url

    if is_url(reference):
        from .web.client import default_options
        from .web.series import read_remote_series

        return read_remote_series(reference, options=default_options(), series_uid=series_uid,
                                  assign_uids=assign_uids, report=report)
    return read_series(reference, series_uid=series_uid, assign_uids=assign_uids, report=report)
