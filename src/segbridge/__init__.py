"""segbridge: exact, fast conversion and checking of medical-image segmentations.

One model (:class:`Segmentation` on a :class:`Grid`) with readers and writers around it::

    import segbridge as sb
    ref = sb.read_series("ct/")
    seg = sb.read("labels.nii.gz", reference=ref, meta="meta.json")
    sb.write(seg, "liver.dcm", profile="ohif")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .codes import Code  # noqa: E402
from .errors import (  # noqa: E402
    GeometryMismatchError,
    InvalidInputError,
    RemoteError,
    Report,
    SegbridgeError,
    UnsupportedError,
)
from .geometry import Grid  # noqa: E402
from .model import Segment, Segmentation, SourceInstance, SourceRef  # noqa: E402


def read_series(*args, **kwargs):
    """Read a reference image series (folder, files, or multi-frame image); see series.read_series."""
    from .series import read_series as _read_series

    return _read_series(*args, **kwargs)


def read(*args, **kwargs):
    """Read any supported segmentation file(s) into the model; see io.read."""
    from .io import read as _read

    return _read(*args, **kwargs)


def write(*args, **kwargs):
    """Write the model to a file chosen by suffix; see io.write."""
    from .io import write as _write

    return _write(*args, **kwargs)


def from_array(*args, **kwargs):
    """Build a segmentation from a numpy label array or masks on a reference; see io.from_array."""
    from .io import from_array as _from_array

    return _from_array(*args, **kwargs)


__all__ = [
    "Code", "Grid", "Segment", "Segmentation", "SourceInstance", "SourceRef", "Report",
    "SegbridgeError", "InvalidInputError", "GeometryMismatchError", "UnsupportedError",
    "RemoteError", "read_series", "read", "write", "from_array", "__version__",
]
