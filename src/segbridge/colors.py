"""Segment colours: RGB <-> DICOM CIELab in one place, and a default palette.

DICOM stores RecommendedDisplayCIELabValue as three unsigned 16-bit values (PS3.3 C.10.7.1.1):
L* 0..100 -> 0..65535 and a*, b* -128..127 -> 0..65535. The RGB side is sRGB with a D65 white
point, the same conversion pixelmed, highdicom and dcmjs (OHIF) use, so a colour written here
shows the same in those viewers.
"""

from __future__ import annotations

import colorsys

import numpy as np

_M_RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805],
                          [0.2126, 0.7152, 0.0722],
                          [0.0193, 0.1192, 0.9505]])
_M_XYZ_TO_RGB = np.linalg.inv(_M_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0

RGB = tuple[int, int, int]


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, None)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def rgb_to_lab(rgb: RGB) -> tuple[float, float, float]:
    """sRGB (0-255) to CIE L*a*b* (D65)."""
    xyz = _M_RGB_TO_XYZ @ _srgb_to_linear(np.asarray(rgb, float) / 255.0)
    t = xyz / _WHITE
    f = np.where(t > _DELTA ** 3, np.cbrt(t), t / (3 * _DELTA ** 2) + 4.0 / 29.0)
    return (float(116 * f[1] - 16), float(500 * (f[0] - f[1])), float(200 * (f[1] - f[2])))


def lab_to_rgb(lab: tuple[float, float, float]) -> RGB:
    """CIE L*a*b* (D65) to sRGB (0-255), clipped to the displayable range."""
    L, a, b = lab
    fy = (L + 16) / 116
    f = np.array([fy + a / 500, fy, fy - b / 200])
    t = np.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4.0 / 29.0))
    rgb = _linear_to_srgb(_M_XYZ_TO_RGB @ (t * _WHITE))
    return tuple(int(v) for v in np.clip(np.round(rgb * 255), 0, 255))  # type: ignore[return-value]


def rgb_to_dicom_lab(rgb: RGB) -> tuple[int, int, int]:
    """sRGB (0-255) to the three US values of RecommendedDisplayCIELabValue."""
    L, a, b = rgb_to_lab(rgb)
    L = min(max(L, 0.0), 100.0)
    a = min(max(a, -128.0), 127.0)
    b = min(max(b, -128.0), 127.0)
    return (round(L * 65535 / 100), round((a + 128) * 65535 / 255),
            round((b + 128) * 65535 / 255))


def dicom_lab_to_rgb(values) -> RGB:
    """RecommendedDisplayCIELabValue (three US values) to sRGB (0-255)."""
    L, a, b = (float(v) for v in values)
    return lab_to_rgb((L * 100 / 65535, a * 255 / 65535 - 128, b * 255 / 65535 - 128))


def default_color(index: int) -> RGB:
    """A distinct, readable colour for the index-th segment (golden-angle hue steps)."""
    hue = (0.07 + index * 0.618033988749895) % 1.0
    light = (0.55, 0.45, 0.65)[index % 3]
    sat = (0.75, 0.9, 0.6)[(index // 3) % 3]
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return (round(r * 255), round(g * 255), round(b * 255))
