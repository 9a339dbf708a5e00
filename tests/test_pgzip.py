"""The parallel gzip writer (formats/pgzip.py) against independent gzip readers."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from segbridge.formats.gz import read_all
from segbridge.formats.pgzip import GzipWriter

BLOCK = 1 << 16  # small blocks: many of them in a small test


def _data(size: int, seed: int) -> bytes:
    """Half label-like runs (compressible), half noise, so blocks refer back across borders."""
    rng = np.random.default_rng(seed)
    runs = np.repeat(rng.integers(0, 5, size // 64 + 1, dtype=np.uint8), 64)[:size // 2]
    return runs.tobytes() + rng.integers(0, 256, size - len(runs), dtype=np.uint8).tobytes()


def _written(tmp_path, data: bytes, threads: int, pieces: int, name: str, backend: str = "isal"):
    path = tmp_path / name
    with open(path, "wb") as fp, \
            GzipWriter(fp, threads=threads, block=BLOCK, backend=backend) as out:
        step = max(1, len(data) // pieces + 7)  # odd piece sizes, across block borders
        for i in range(0, len(data), step):
            out.write(data[i:i + step])
    return path


@pytest.mark.parametrize("backend", ["isal", "zlib"])
@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5,
                                  17 * BLOCK + 12345])
def test_every_reader_gets_the_bytes_back(tmp_path, size, backend):
    data = _data(size, size)
    one = _written(tmp_path, data, threads=1, pieces=1, name="one.gz", backend=backend)
    many = _written(tmp_path, data, threads=3, pieces=5, name="many.gz", backend=backend)
    # the bytes depend on the block size only: not on threads or how the caller cut the data
    assert one.read_bytes() == many.read_bytes()
    blob = many.read_bytes()
    assert gzip.decompress(blob) == data
    dec = zlib.decompressobj(zlib.MAX_WBITS | 16)
    assert dec.decompress(blob) == data and dec.eof and not dec.unused_data  # ONE member
    assert read_all(blob, many, "gzip", limit=size) == data  # segbridge's checked reader: CRC, ISIZE
    gz = shutil.which("gzip")
    assert gz, "GNU gzip is needed (Debian's gzip package)"
    run = subprocess.run([gz, "-dc", str(many)], capture_output=True, check=True)
    assert run.stdout == data


def test_an_abandoned_writer_stops_its_threads(tmp_path):
    import threading

    with pytest.raises(RuntimeError), open(tmp_path / "x.gz", "wb") as fp, \
            GzipWriter(fp, threads=3, block=BLOCK, backend="zlib") as out:
        out.write(_data(8 * BLOCK, 1))
        raise RuntimeError("the caller failed")
    assert not [t for t in threading.enumerate() if t.name.startswith("segbridge-gzip")]


@pytest.mark.parametrize("backend", ["isal", "zlib"])
def test_blocks_are_deflated_with_the_data_before_them(tmp_path, backend):
    """A block repeating the end of the one before compresses to almost nothing: the preset
    dictionary carries the window across the block border (without it, the first 16 KiB of
    the second block would cost 16 KiB)."""
    noise = np.random.default_rng(0).integers(0, 256, BLOCK, dtype=np.uint8).tobytes()
    path = _written(tmp_path, noise + noise[-(1 << 14):] * 4, threads=2, pieces=1, name="w.gz",
                    backend=backend)
    assert path.stat().st_size < BLOCK + 4096


def test_isal_is_the_default_backend(tmp_path):
    """ISA-L is a dependency: the writer uses it unless told otherwise (the speed claim in
    docs/architecture.md rests on it)."""
    import io

    from isal import isal_zlib

    assert GzipWriter(io.BytesIO())._lib is isal_zlib
