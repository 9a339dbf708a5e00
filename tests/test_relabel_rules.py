"""Relabel rules on synthetic segmentations and the shipped TG-263 map (fast tier: pip only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segbridge.errors import InvalidInputError
from segbridge.geometry import Grid
from segbridge.harmonise import builtin, load_maps, normalise, plan_relabel, read_map, relabel
from segbridge.model import Segment, Segmentation

GRID = Grid((4, 6, 8), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), np.eye(3))


def seg_of(names: list[str], overlap: bool = False) -> Segmentation:
    """One box per name along x (the last one overlapping the first when ``overlap``)."""
    items = []
    for i, n in enumerate(names):
        m = np.zeros(GRID.shape, bool)
        m[:, :, i] = True
        if overlap and i == len(names) - 1:
            m[:, :, 0] = True
        items.append((Segment(i + 1, n), m))
    return Segmentation.from_masks(GRID, items)


def target(name: str, maps="tg263") -> str | None:
    return plan_relabel([Segment(1, name)], maps).rows[0].target


@pytest.mark.parametrize("name, want", [
    ("Lung_L", "Lung_L"), ("LUNG LEFT", "Lung_L"), ("Left Lung", "Lung_L"), ("lung_l", "Lung_L"),
    ("L Lung", "Lung_L"), ("Lt Lung", "Lung_L"), ("L_Lung", "Lung_L"), ("Rt Parotid", "Parotid_R"),
    ("SpinalCord", "SpinalCord"), ("Spinal Cord", "SpinalCord"), ("Cord", "SpinalCord"),
    ("CTV", "CTV"), ("GTV", "GTV"), ("PTV_High", "PTV_High"), ("ptv  high", "PTV_High"),
    ("Tumor Bed", "TumorBed"), ("Brain Stem", "Brainstem"), ("Oesophagus", "Esophagus")])
def test_tg263_site_spellings(name, want):
    assert target(name) == want


def test_normalisation_is_case_spaces_and_underscores_only():
    assert normalise("  Lung__L ") == normalise("LUNG L") == "lung l"
    assert normalise("Brain-PTV") != normalise("Brain PTV")  # a hyphen means "minus" in TG-263
    assert plan_relabel([Segment(1, "Lung-L")], "tg263").rows[0].status == "unmapped"


def test_tg263_map_codes_and_provenance():
    m = builtin("tg263")
    lung = m.claims("Left Lung")[0]
    assert (lung.target.type.scheme, lung.target.type.value) == ("FMA", "7310")
    assert lung.target.category.value == "123037004"
    assert len(m.rules) > 700
    # a worksheet row whose description names the other side gets no code, not a guess
    assert m.claims("Femur_Neck_L")[0].target.type is None


def test_body_is_ambiguous_in_tg263_and_a_later_map_decides(tmp_path):
    with pytest.raises(InvalidInputError) as exc:
        plan_relabel([Segment(1, "Lung L"), Segment(2, "BODY")], "tg263", what="rs.dcm")
    msg = str(exc.value)
    assert "rs.dcm: segment 2 'BODY' is ambiguous" in msg
    assert "'Body'" in msg and "'External'" in msg and "tg263 line" in msg
    site = tmp_path / "site.csv"
    site.write_text("source,target\nBODY,External\n")
    assert target("BODY", ["tg263", site]) == "External"
    assert target("Left Lung", ["tg263", site]) == "Lung_L"  # the rest still from tg263


def test_two_rules_of_one_map_claiming_a_name_by_pattern(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("source,target\nTumor Bed*,TumorBed\n*Block,Block\n")
    with pytest.raises(InvalidInputError, match=r"'Tumor Bed Block' is ambiguous: .*m.csv line 2 "
                                                r"says 'TumorBed', .*m.csv line 3 says 'Block'"):
        plan_relabel([Segment(1, "Tumor Bed Block")], m)
    assert target("tumor bed", m) == "TumorBed"
    assert target("Lung block", m) == "Block"


def test_merge_only_when_said(tmp_path):
    seg = seg_of(["Lung L", "Left Lung", "Heart"])
    with pytest.raises(InvalidInputError, match="'1 Lung L', '2 Left Lung' all map to 'Lung_L'.*"
                                                "never merged silently"):
        relabel(seg, "tg263")
    out = relabel(seg, "tg263", allow_merge=True)
    assert [s.label for s in out.segments] == ["Lung_L", "Heart"]
    np.testing.assert_array_equal(out.mask(1), seg.mask(1) | seg.mask(2))
    assert any("merged segments '1 Lung L', '2 Left Lung' into 'Lung_L'" in n
               for n in out.report.notes)
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"rules": [{"source": ["lung l", "left lung"], "target": "Lungs",
                                        "merge": True, "number": 7}]}))
    out = relabel(seg, m)
    assert {s.number: s.label for s in out.segments} == {7: "Lungs", 3: "Heart"}
    np.testing.assert_array_equal(out.mask(7), seg.mask(1) | seg.mask(2))


def test_merge_across_layers_is_a_union_and_the_input_is_untouched():
    seg = seg_of(["Lung L", "Heart", "Left Lung"], overlap=True)
    assert len(seg.layers) == 2
    before = [a.copy() for a in seg.layers]
    want = seg.mask(1) | seg.mask(3)
    out = relabel(seg, "tg263", allow_merge=True)
    np.testing.assert_array_equal(out.mask(1), want)
    np.testing.assert_array_equal(out.mask(2), seg.mask(2))
    for a, b in zip(before, seg.layers, strict=True):
        np.testing.assert_array_equal(a, b)


def test_fractional_merge_is_the_maximum():
    a = np.zeros(GRID.shape, np.uint8)
    b = np.zeros(GRID.shape, np.uint8)
    a[0, 0, :4], b[0, 0, 2:6] = 100, 200
    seg = Segmentation(GRID, [Segment(1, "lung l"), Segment(2, "LUNG LEFT")],
                       fractional={1: a, 2: b})
    out = relabel(seg, "tg263", allow_merge=True)
    np.testing.assert_array_equal(out.fractional[1], np.maximum(a, b))


def test_unmapped_keep_drop_error():
    seg = seg_of(["Heart", "ROI-1", "Borders"])
    kept = relabel(seg, "tg263")
    assert [s.label for s in kept.segments] == ["Heart", "ROI-1", "Borders"]
    assert any("no rule for 'ROI-1', 'Borders'; kept" in n for n in kept.report.notes)
    dropped = relabel(seg_of(["Heart", "ROI-1", "Borders"]), "tg263", unmapped="drop")
    assert [s.label for s in dropped.segments] == ["Heart"]
    assert not dropped.mask(1)[:, :, 1:].any()
    with pytest.raises(InvalidInputError, match="no rule maps segment name.*'ROI-1', 'Borders'"):
        relabel(seg, "tg263", unmapped="error")


def test_two_unmapped_segments_of_one_name_stay_two():
    seg = seg_of(["ROI", "ROI"])
    out = relabel(seg, "tg263")
    assert [s.label for s in out.segments] == ["ROI", "ROI"]
    np.testing.assert_array_equal(out.mask(2), seg.mask(2))


def test_numbers_from_the_map_and_conflicts(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("source,target,number\nheart,Heart,2\nlung l,Lung_L,\n")
    out = relabel(seg_of(["Lung L", "Heart", "ROI"]), m)
    assert {s.number: s.label for s in out.segments} == {2: "Heart", 1: "Lung_L", 3: "ROI"}
    out = relabel(seg_of(["ROI", "Heart"]), m)  # ROI's number 2 is Heart's: ROI moves
    assert {s.number: s.label for s in out.segments} == {1: "ROI", 2: "Heart"}
    m.write_text("source,target,number\nheart,Heart,2\nlung l,Lung_L,2\n")
    with pytest.raises(InvalidInputError, match=r"m.csv line 3: number 2 is also target 'Heart'"):
        read_map(m)


def test_rule_codes_and_colour_replace_the_segments():
    out = relabel(seg_of(["left lung"]), {"rules": [{
        "source": "left lung", "target": "Lung_L", "color": [10, 20, 30],
        "category": "SCT^123037004^Anatomical Structure", "type": "FMA^7310^Lung Left"}]})
    s = out.segments[0]
    assert (s.label, s.type.value, s.color, s.type_modifier) == ("Lung_L", "7310", (10, 20, 30),
                                                                 None)


@pytest.mark.parametrize("text, needle", [
    ("source,target,colour\nx,y,1 2 3\n", "unknown column 'colour'"),
    ("source,number\nx,1\n", "no 'target' column"),
    ("source,target,type\nx,y,LungLeft\n", "line 2 type: code 'LungLeft' is not"),
    ("source,target,number\nx,y,0\n", "line 2: number must be an integer 1..65535"),
    ("source,target,number\nx,y,\u00b2\n", "line 2: number must be an integer 1..65535"),
    ("source,target,number\nx,y,\u0663\n", "line 2: number must be an integer 1..65535"),
    ("source,target,merge\nx,y,maybe\n", "line 2: merge must be yes or no"),
    ("source,target\nx,\n", "line 2: no target name"),
    ("source,target,color\nx,y,1 2\n", "colour must be three integers"),
    ("source,target,type,category\nx,y,FMA^1^a,\n", "give both a category and a type code"),
    ("source,target,color\nx,y,1 2 3\nz,y,4 5 6\n", "line 3: target 'y' has another color"),
    ("# only a comment\n", "no header row"),
])
def test_bad_csv_maps_are_one_line_errors(tmp_path, text, needle):
    m = tmp_path / "bad.csv"
    m.write_text(text)
    with pytest.raises(InvalidInputError) as exc:
        load_maps(m)
    assert needle in str(exc.value) and str(m) in str(exc.value)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("doc, needle", [
    ('{"rules": [{"source": "x", "target": "y", "colour": [1, 2, 3]}]}', "unknown key 'colour'"),
    ('{"rule": []}', "unknown key 'rule'"),
    ('{"rules": [{"source": 3, "target": "y"}]}', "source must be a name"),
    ('{"rules": [', "not valid JSON"),
    ('{"rules": []}', "no rules"),
    ("null", "object or a list, not null"),
    ('{"rules": [{"source": "x", "target": "y", "color": [1.9, 2, 3]}]}', "three integers"),
    ('{"rules": [{"source": "x", "target": "y", "color": [1, 2, true]}]}', "three integers"),
])
def test_bad_json_maps_are_one_line_errors(tmp_path, doc, needle):
    m = tmp_path / "bad.json"
    m.write_text(doc)
    with pytest.raises(InvalidInputError, match=needle):
        load_maps(m)


def test_missing_map_and_bad_unmapped(tmp_path):
    with pytest.raises(InvalidInputError, match="no such relabel map file"):
        load_maps(tmp_path / "nope.csv")
    with pytest.raises(InvalidInputError, match="unmapped must be one of keep, drop, error"):
        plan_relabel([Segment(1, "x")], "tg263", unmapped="ignore")


def test_public_api():
    import segbridge as sb

    assert sb.relabel is relabel


def test_map_numbers_reach_the_voxels_and_segments_are_in_order():
    """A renumbering is applied to the stored label values (label files show those), also a
    swap, and the segments come out ordered by number."""
    seg = seg_of(["Lung L", "Heart", "ROI"])
    out = relabel(seg, {"rules": [{"source": "lung l", "target": "Lung_L", "number": 3},
                                  {"source": "roi", "target": "ROI", "number": 10}]})
    assert [(s.number, s.label) for s in out.segments] == [(2, "Heart"), (3, "Lung_L"),
                                                           (10, "ROI")]
    for s in out.segments:
        li, value = out.bindings[s.number]
        assert value == s.number
    np.testing.assert_array_equal(out.mask(3), seg.mask(1))
    np.testing.assert_array_equal(out.mask(10), seg.mask(3))
    (layer,) = out.layers
    assert sorted(np.unique(layer)) == [0, 2, 3, 10]
    np.testing.assert_array_equal(seg.layers[0][seg.mask(1)], 1)  # the input is untouched
    big = relabel(seg, {"rules": [{"source": "heart", "target": "Heart", "number": 300}]})
    assert big.layers[0].dtype == np.uint16 and int(big.layers[0].max()) == 300
