"""Decoding one frame of a slide image (local or fetched over DICOMweb) with pydicom."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError


def decode_frame(data: bytes, ds, transfer_syntax: str) -> np.ndarray:
    """One encapsulated frame of a slide image as (rows, columns, samples) (RGB for
    YBR JPEG), through pydicom's decoders."""
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    samples = int(ds.get("SamplesPerPixel") or 1)
    try:
        decoder = get_decoder(transfer_syntax)
    except (NotImplementedError, ValueError, KeyError):
        raise UnsupportedError(f"slide tiles in transfer syntax {transfer_syntax} are not "
                               "decoded here") from None
    arr, _ = decoder.as_array(
        encapsulate([data]), rows=int(ds.Rows), columns=int(ds.Columns),
        samples_per_pixel=samples, number_of_frames=1,
        photometric_interpretation=str(ds.get("PhotometricInterpretation") or "RGB"),
        pixel_representation=0, bits_allocated=int(ds.get("BitsAllocated") or 8),
        bits_stored=int(ds.get("BitsStored") or 8),
        planar_configuration=int(ds.get("PlanarConfiguration") or 0))
    return arr.reshape(int(ds.Rows), int(ds.Columns), samples)


def native_frame(data, ds) -> np.ndarray:
    """One native frame (bytes of rows x columns x samples) as (rows, columns, samples)."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel") or 1)
    dtype = np.uint8 if int(ds.get("BitsAllocated") or 8) == 8 else np.dtype("<u2")
    arr = np.frombuffer(data, dtype, rows * cols * samples)
    if samples > 1 and int(ds.get("PlanarConfiguration") or 0) == 1:
        return arr.reshape(samples, rows, cols).transpose(1, 2, 0)
    return arr.reshape(rows, cols, samples)
