"""Generate src/segbridge/data/tg263.csv, the map behind ``--map tg263``.

Usage: python scripts/make_tg263.py WORKSHEET.csv > src/segbridge/data/tg263.csv

WORKSHEET.csv is the AAPM TG-263 nomenclature worksheet v20170815 ("TG263_Nomenclature_Worksheet_
20170815(TG263 v20170815).csv") as mirrored in kildealab/TG263ComplianceTool (MIT) at commit
13cfbe9f4132a1a041d4bdc13cba72f3926c9f8b, sha256 8b9f0dea4a44c57b3c8ab56fddb3b898ff5f4524a243577dd7e0ae03c3b34317
(717 rows). From it we take facts only: the primary and reverse-order names and the FMA IDs.
The synonyms below (how sites spell the names) are ours.

Per worksheet row: sources = the primary name and the reverse-order name; target = the primary
name; codes = category SCT 123037004 "Anatomical Structure" (DICOM CID 7150) and type
FMA <FMAID> "<description>" when the worksheet gives an FMA ID. Template rows (names holding
"xx" or ending in "PRVx") are left out: they stand for a family of names, not one name. Rows
whose description names the other side than the name ("Femur_Neck_L", "Femur Neck Right") get no
code: which of the two is wrong we cannot check offline, so we do not guess.
"""

from __future__ import annotations

import csv
import re
import sys

CATEGORY = "SCT^123037004^Anatomical Structure"

#: target name -> site spellings (normalised matching: case, spaces and underscores do not count)
SYNONYMS: dict[str, list[str]] = {
    "Lung_L": ["Left Lung", "Lung Left", "Lt Lung", "Lung Lt", "L Lung", "LungL", "Lung_Lt"],
    "Lung_R": ["Right Lung", "Lung Right", "Rt Lung", "Lung Rt", "R Lung", "LungR", "Lung_Rt"],
    "Lungs": ["Both Lungs", "Lung Total", "Total Lung", "Lungs Total", "Lung Both", "Lung_Bilat"],
    "Heart": ["Cardiac"],
    "SpinalCord": ["Spinal Cord", "Cord", "Spinal_Cord", "Spinal Cord Total"],
    "Brainstem": ["Brain Stem", "BrainStem"],
    "Parotid_L": ["Left Parotid", "Parotid Left", "Lt Parotid", "Parotid Lt", "L Parotid",
                  "Left Parotid Gland", "Parotid Gland Left"],
    "Parotid_R": ["Right Parotid", "Parotid Right", "Rt Parotid", "Parotid Rt", "R Parotid",
                  "Right Parotid Gland", "Parotid Gland Right"],
    "Glnd_Submand_L": ["Left Submandibular", "Submandibular Left", "Lt Submandibular", "SMG L",
                       "Left SMG", "Submandibular Gland Left", "Left Submandibular Gland"],
    "Glnd_Submand_R": ["Right Submandibular", "Submandibular Right", "Rt Submandibular",
                       "SMG R", "Right SMG", "Submandibular Gland Right",
                       "Right Submandibular Gland"],
    "Glnd_Thyroid": ["Thyroid", "Thyroid Gland"],
    "Esophagus": ["Oesophagus"],
    "Bladder": ["Urinary Bladder"],
    "Bone_Mandible": ["Mandible"],
    "Cavity_Oral": ["Oral Cavity"],
    "OpticChiasm": ["Chiasm", "Optic Chiasm"],
    "OpticNrv_L": ["Left Optic Nerve", "Optic Nerve Left", "Optic Nerve L", "Lt Optic Nerve"],
    "OpticNrv_R": ["Right Optic Nerve", "Optic Nerve Right", "Optic Nerve R", "Rt Optic Nerve"],
    "Eye_L": ["Left Eye", "Eye Left", "Lt Eye", "Globe L", "Left Globe"],
    "Eye_R": ["Right Eye", "Eye Right", "Rt Eye", "Globe R", "Right Globe"],
    "Lens_L": ["Left Lens", "Lens Left", "Lt Lens"],
    "Lens_R": ["Right Lens", "Lens Right", "Rt Lens"],
    "Cochlea_L": ["Left Cochlea", "Cochlea Left", "Lt Cochlea"],
    "Cochlea_R": ["Right Cochlea", "Cochlea Right", "Rt Cochlea"],
    "Kidney_L": ["Left Kidney", "Kidney Left", "Lt Kidney", "L Kidney"],
    "Kidney_R": ["Right Kidney", "Kidney Right", "Rt Kidney", "R Kidney"],
    "Femur_Head_L": ["Left Femoral Head", "Femoral Head Left", "Femoral Head L",
                     "Lt Femoral Head", "Femur Head Left", "FemoralHead_L"],
    "Femur_Head_R": ["Right Femoral Head", "Femoral Head Right", "Femoral Head R",
                     "Rt Femoral Head", "Femur Head Right", "FemoralHead_R"],
    "Breast_L": ["Left Breast", "Breast Left", "Lt Breast", "L Breast"],
    "Breast_R": ["Right Breast", "Breast Right", "Rt Breast", "R Breast"],
    "BrachialPlex_L": ["Left Brachial Plexus", "Brachial Plexus Left", "Brachial Plexus L"],
    "BrachialPlex_R": ["Right Brachial Plexus", "Brachial Plexus Right", "Brachial Plexus R"],
    "Chestwall": ["Chest Wall"],
    "Bowel_Small": ["Small Bowel", "Small Intestine"],
    "Bowel_Large": ["Large Bowel"],
    "Bag_Bowel": ["Bowel Bag"],
    "SeminalVes": ["Seminal Vesicles", "Seminal Vesicle", "SV"],
    "PenileBulb": ["Penile Bulb"],
    "Rib": ["Ribs"],
    "TumorBed": ["Tumor Bed", "Tumour Bed"],
    # TG-263 tells "Body" (only the body) from "External" (the body and what lies on it); the
    # planning systems' "BODY" is the external contour, so "BODY" is claimed by both rules and
    # reported ambiguous: a site map given after this one decides it (docs/relabel.md)
    "External": ["Body", "Outer Contour", "External Contour"],
}

#: TG-263 target names (section "Target nomenclature": type, then _High/_Mid/_Low or p/n)
TARGETS: dict[str, list[str]] = {
    "GTV": ["Gross Tumor Volume"], "GTVp": [], "GTVn": [],
    "CTV": ["Clinical Target Volume"], "CTVp": [], "CTVn": [],
    "ITV": ["Internal Target Volume"],
    "PTV": ["Planning Target Volume"], "PTVp": [], "PTVn": [],
    "PTV_High": ["PTVHigh", "High PTV", "PTV Hi"], "PTV_Mid": ["PTVMid", "Mid PTV"],
    "PTV_Low": ["PTVLow", "Low PTV", "PTV Lo"],
    "CTV_High": ["CTVHigh", "High CTV"], "CTV_Mid": ["CTVMid"], "CTV_Low": ["CTVLow", "Low CTV"],
    "GTV_High": [], "GTV_Low": [],
}


def _side(name: str) -> str | None:
    return {"_L": "left", "_R": "right"}.get(name[-2:])


def rows(worksheet: str):
    with open(worksheet, newline="", encoding="utf-8", errors="replace") as fp:
        for r in csv.DictReader(fp):
            name = r["TG263-Primary Name"].strip()
            reverse = r["TG-263-Reverse Order Name"].strip()
            if not name or "xx" in name.lower() or re.search(r"PRVx$", name):
                continue
            fma = (r.get("FMAID") or "").strip()
            desc = " ".join((r.get("Description") or "").split()) or name
            side = _side(name)
            other = {"left": "right", "right": "left"}.get(side or "")
            words = set(re.findall(r"[a-z]+", desc.lower()))
            if other and other in words and side not in words:
                fma = ""  # the description names the other side: no code rather than a guess
            yield name, reverse, fma, desc


def main(worksheet: str) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    print("# TG-263 structure names (AAPM Task Group 263, Mayo et al. 2018; worksheet v20170815)")
    print("# generated by scripts/make_tg263.py; see docs/relabel.md for the source and the rules")
    out.writerow(["source", "target", "category", "type"])
    seen = set()
    for name, reverse, fma, desc in rows(worksheet):
        sources = [name] + ([reverse] if reverse and reverse != name else [])
        sources += SYNONYMS.pop(name, [])
        typ = f"FMA^{fma}^{desc}" if fma else ""
        out.writerow(["|".join(sources), name, CATEGORY if typ else "", typ])
        seen.add(name)
    for name, syn in TARGETS.items():
        if name not in seen:
            out.writerow(["|".join([name, *syn]), name, "", ""])
    if SYNONYMS:
        raise SystemExit(f"synonyms for names not in the worksheet: {sorted(SYNONYMS)}")


if __name__ == "__main__":
    main(sys.argv[1])
