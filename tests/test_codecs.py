"""Pixel codecs: every encoder round-trips through its decoder (and independent decoders)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segbridge.dicom.codecs import COMPRESSIONS, codec_for
from segbridge.dicom.codecs.native import NativeFrames, pack_binary_frames
from segbridge.dicom.codecs.rle import encode_plane

ENCAPSULATED = [c for c in COMPRESSIONS.values() if c.name not in ("none", "deflate")]


def frame_strategy(bits, min_side=1):
    top = {1: 1, 8: 255, 16: 65535}[bits]
    dtype = np.uint16 if bits == 16 else np.uint8
    labels = st.sampled_from([v for v in (0, 0, 0, 1, 2, 7, top) if v <= top])
    shapes = st.tuples(st.integers(min_side, 40), st.integers(min_side, 70))
    return shapes.flatmap(lambda s: arrays(dtype, s, elements=labels))


CASES = [(c, b) for c in ENCAPSULATED for b in (1, 8, 16) if b in codec_for(c.uid).writes_bits]


@pytest.mark.parametrize(("comp", "bits"), CASES, ids=[f"{c.name}-{b}" for c, b in CASES])
def test_encapsulated_round_trip(comp, bits):
    codec = codec_for(comp.uid)

    # pyjpegls overflows its 2x output buffer on frames under ~200 pixels, OpenJPEG needs 32x32
    # (see test_tiny_frames_are_refused_clearly)
    @settings(max_examples=25, deadline=None)
    @given(frame_strategy(bits, {"jpegls": 16, "jpeg2000": 32}.get(comp.name, 1)))
    def check(frame):
        out = codec.decode(codec.encode(frame, bits), *frame.shape, bits)
        np.testing.assert_array_equal(out, frame)

    check()


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 300)),
              elements=st.sampled_from([0, 0, 0, 1, 2, 255])))
def test_packbits_matches_pylibjpeg_decoder(plane):
    from rle.utils import decode_segment

    enc = encode_plane(plane)
    # no packet may cross a row: decoding row by row from the packet stream must work
    dec = np.frombuffer(decode_segment(enc), np.uint8)
    np.testing.assert_array_equal(dec[: plane.size], plane.reshape(-1))
    assert len(enc) <= plane.size + plane.size // 128 + 2 * plane.shape[0] + 2


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 13), st.integers(1, 11), st.integers(1, 20), st.integers(0, 2**32 - 1))
def test_native_one_bit_packing_is_continuous(rows, cols, nframes, seed):
    """Frames run on across byte boundaries (PS3.5 8.1.1); pydicom's unpacker agrees."""
    from pydicom.pixels.utils import unpack_bits

    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 2, (nframes, rows, cols)).astype(np.uint8)
    data = b"".join(pack_binary_frames(iter(frames), rows, cols))
    assert len(data) == (nframes * rows * cols + 7) // 8
    src = NativeFrames(data, nframes, rows, cols, 1)
    for k in range(nframes):
        np.testing.assert_array_equal(src.frame(k), frames[k])
    flat = unpack_bits(data, as_array=True)[: nframes * rows * cols]
    np.testing.assert_array_equal(flat.reshape(frames.shape), frames)


def test_tiny_frames_are_refused_clearly():
    from segbridge.errors import UnsupportedError

    codec = codec_for(COMPRESSIONS["jpegls"].uid)
    with pytest.raises(UnsupportedError, match="JPEG-LS encoder cannot encode a 2x2 frame"):
        codec.encode(np.zeros((2, 2), np.uint8), 8)
    codec = codec_for(COMPRESSIONS["jpeg2000"].uid)
    with pytest.raises(UnsupportedError, match="at least 32x32"):
        codec.encode(np.zeros((38, 24), np.uint8), 1)
