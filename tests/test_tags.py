"""segbridge's small attribute table agrees with pydicom's data dictionary."""

import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag

from segbridge.dicom.tags import TAGS


@pytest.mark.parametrize("keyword", sorted(TAGS))
def test_tag_and_vr_match_the_dictionary(keyword):
    tag, vr = TAGS[keyword]
    assert keyword_for_tag(tag) == keyword
    assert vr in dictionary_VR(tag).split(" or ")
