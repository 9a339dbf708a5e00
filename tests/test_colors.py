import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from segbridge.colors import default_color, dicom_lab_to_rgb, rgb_to_dicom_lab


@settings(max_examples=500, deadline=None)
@given(st.tuples(*[st.integers(0, 255)] * 3))
def test_rgb_survives_dicom_cielab(rgb):
    assert dicom_lab_to_rgb(rgb_to_dicom_lab(rgb)) == rgb


def test_matches_highdicom_conversion():
    from highdicom.color import CIELabColor

    for rgb in [(220, 129, 101), (0, 0, 0), (255, 255, 255), (10, 200, 30)]:
        ours = np.array(rgb_to_dicom_lab(rgb))
        theirs = np.array(CIELabColor.from_rgb(*rgb).value)
        assert np.abs(ours - theirs).max() <= 40  # same formula, constants rounded differently


def test_default_colors_are_distinct():
    cols = {default_color(i) for i in range(64)}
    assert len(cols) == 64
