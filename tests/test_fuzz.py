"""CI sample of the fuzz suite (tests/fuzz.py): a fixed, seeded set of mutants of every input kind.

Each mutant (a truncated, byte-flipped, zeroed or duplicated copy of a real file) goes through the
real CLI in a subprocess. A run must end in exit 0 with output equal, voxel for voxel, to what an
independent reader (nibabel, pynrrd, pydicom, rt-utils) gives for the same mutant, or in exit 1
with one line naming the file; never an internal error, a traceback, a timeout, a leftover
temporary file, partial output or a changed input. The long run is
``python tests/fuzz.py --runs 2000`` (docs/fuzzing.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz  # noqa: E402

SEED = 11
RUNS_PER_KIND = 10  # 15 kinds x 10 mutants + 44 unmutated controls: 1-2 minutes on 2 cores


def test_fuzz_sample_has_no_failures(tmp_path):
    session = fuzz.run_session(SEED, RUNS_PER_KIND, list(fuzz.KINDS), jobs=2,
                               keep=tmp_path / "kept", controls=True)
    fuzz.report(session, SEED)  # the counts table, and every failure with its replay command
    missing = {k: v for k, v in session.made.items() if not isinstance(v, Path)}
    assert not missing, f"seed files could not be made: {missing}"
    counts = session.counts()
    assert sorted(counts) == sorted(fuzz.KINDS)
    assert all(c["runs"] == RUNS_PER_KIND for c in counts.values())
    assert sum(c["clean_error"] for c in counts.values()) > 0
    assert sum(c["exact"] for c in counts.values()) > 0
    # every seed, unmutated, converts to exactly what the independent readers see: the
    # oracles read real segments (a reader that refused everything would hide failures)
    controls = {r.run.tag: r.outcome for r in session.controls}
    assert len(controls) == sum(len(v) for v in fuzz.KINDS.values())
    assert set(controls.values()) == {"exact"}, controls
    failures = [f"{r.run.tag} ({r.run.seed.name}, {r.run.mutation.describe()}): {r.cause}: "
                f"{r.detail[:200]}" for r in session.failures]
    assert not failures, "\n".join(failures)


def test_mutations_are_reproducible():
    """Run i of a kind depends only on the seed, the kind and i (what --replay relies on)."""
    made: dict = {}
    a = fuzz.plan(SEED, "nrrd-gz", 3, made)
    b = fuzz.plan(SEED, "nrrd-gz", 3, made)
    c = fuzz.plan(SEED + 1, "nrrd-gz", 3, made)
    assert a == b
    assert (a.seed, a.mutation, a.command, a.output) != (c.seed, c.mutation, c.command, c.output)


def test_mutation_operators():
    data = bytes(range(40))
    assert fuzz.apply_mutation(data, fuzz.Mutation("truncate_tail", offset=36, length=4)) == \
        data[:36]
    flipped = fuzz.apply_mutation(data, fuzz.Mutation("flip", offset=5, length=1, xor=0xFF))
    assert flipped[5] == 5 ^ 0xFF and flipped[:5] + flipped[6:] == data[:5] + data[6:]
    assert fuzz.apply_mutation(data, fuzz.Mutation("zero", offset=2, length=3))[2:5] == bytes(3)
    dup = fuzz.apply_mutation(data, fuzz.Mutation("dup", offset=2, length=3))
    assert dup == data[:5] + data[2:5] + data[5:]


def test_oracle_refuses_a_damaged_gzip_stream(tmp_path):
    """The independent reading checks gzip to its end (CRC and length), so a convert that
    accepts a damaged .nii.gz is counted as a failure, not as an exact output."""
    import gzip

    src = fuzz.TOTALSEG / "example_seg_mr.nii.gz"
    raw = bytearray(src.read_bytes())
    raw[-6] ^= 0x01  # CRC/ISIZE trailer: nibabel alone would not notice
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(bytes(raw))
    try:
        fuzz.read_nifti_volume(bad)
    except fuzz.Refused as exc:
        assert exc.strict
    else:
        raise AssertionError("a damaged gzip trailer was read")
    good = tmp_path / "good.nii.gz"
    good.write_bytes(gzip.compress(gzip.decompress(src.read_bytes())))
    assert fuzz.read_nifti_volume(good).arrays


def test_compare_sees_one_voxel_and_follows_the_lattice():
    """The output check is exact: one voxel off is a difference; a flipped axis is not."""
    import numpy as np

    rng = np.random.default_rng(0)
    mask = rng.random((6, 5, 4)) > 0.5
    affine = np.diag([0.5, 0.7, 2.0, 1.0])
    affine[:3, 3] = (10.0, -3.0, 7.0)
    expected = fuzz.Volume([mask], affine, mask.shape)
    flipped = affine.copy()
    flipped[:3, 0] *= -1
    flipped[0, 3] = affine[0, 3] + 0.5 * (mask.shape[0] - 1)
    assert fuzz.compare(expected, fuzz.Volume([mask[::-1]], flipped, mask.shape)) is None
    other = mask.copy()
    other[2, 3, 1] = ~other[2, 3, 1]
    assert "segments differ" in fuzz.compare(expected, fuzz.Volume([other], affine, mask.shape))
    shifted = affine.copy()
    shifted[2, 3] += 1.0  # half a slice
    assert "off the input lattice" in fuzz.compare(expected, fuzz.Volume([mask], shifted, mask.shape))
