"""segbridge: exact, fast conversion and checking of medical-image segmentations.

One model (:class:`Segmentation` on a :class:`Grid`) with readers and writers around it::

    import segbridge as sb
    ref = sb.read_series("ct/")
    seg = sb.read("labels.nii.gz", reference=ref, meta="meta.json")
    sb.write(seg, "liver.dcm", profile="ohif")

Names are imported on first use (PEP 562), so ``import segbridge`` and the command line start
without numpy until a command needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {
    "Code": "codes",
    "Grid": "geometry",
    "Segment": "model", "Segmentation": "model", "SourceInstance": "model",
    "SourceRef": "model",
    "Report": "errors", "SegbridgeError": "errors", "InvalidInputError": "errors",
    "GeometryMismatchError": "errors", "UnsupportedError": "errors", "RemoteError": "errors",
    "ValidationFailed": "errors",
    "ReferenceImage": "series", "read_series": "series",
    "read": "io", "write": "io", "from_array": "io",
    "relabel": "harmonise",
    "interpolate": "interpolation",
    "export_dataset": "datasets.export", "import_predictions": "datasets.import_",
}

__all__ = [
    "Code", "Grid", "Segment", "Segmentation", "SourceInstance", "SourceRef", "Report",
    "SegbridgeError", "InvalidInputError", "GeometryMismatchError", "UnsupportedError",
    "RemoteError", "ValidationFailed", "ReferenceImage", "read_series", "read", "write",
    "from_array", "relabel", "interpolate", "export_dataset", "import_predictions",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover
    from .codes import Code
    from .datasets.export import export_dataset
    from .datasets.import_ import import_predictions
    from .errors import (
        GeometryMismatchError,
        InvalidInputError,
        RemoteError,
        Report,
        SegbridgeError,
        UnsupportedError,
        ValidationFailed,
    )
    from .geometry import Grid
    from .harmonise import relabel
    from .interpolation import interpolate
    from .io import from_array, read, write
    from .model import Segment, Segmentation, SourceInstance, SourceRef
    from .series import ReferenceImage, read_series


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'segbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
