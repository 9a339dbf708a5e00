"""A plain NIfTI -> DICOM SEG conversion imports none of the heavy libraries.

Start-up dominates a small ``segbridge convert`` (issue 11: ~0.6 s per process against 0.12 s
for dcmqi, most of it imports). This guards the module names, not a timing: the conversion runs
in a fresh interpreter through the CLI and lists every module loaded by the time it exits.
"""

import json
import subprocess
import sys

import pytest

from segbridge.synthetic import write_collection

#: libraries a NIfTI + CT series -> SEG conversion does not need (each costs 30-200 ms)
HEAVY = ("pydicom", "nibabel", "highdicom", "rich", "dask", "distributed", "requests",
         "urllib3", "dicomweb_client", "PIL", "scipy", "nrrd", "pylibjpeg", "openjpeg",
         "jpeg_ls", "matplotlib", "pandas")

SCRIPT = """
import json, runpy, sys
sys.argv = ["segbridge", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("segbridge", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("coll")
    write_collection(root, 2)
    return root


@pytest.mark.parametrize("case, kind", [("case000", "binary"), ("case001", "labelmap")])
def test_nifti_to_seg_imports_no_heavy_library(collection, tmp_path, case, kind):
    args = ["convert", str(collection / case / "labels.nii.gz"), "-r",
            str(collection / case / "ct"), "-o", str(tmp_path / "out.dcm"), "--type", kind]
    r = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(args)], capture_output=True,
                       text=True)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None), r.stderr
    assert (tmp_path / "out.dcm").is_file()
    loaded = {m.split(".")[0] for m in result["modules"]}
    assert sorted(loaded & set(HEAVY)) == []


def test_cli_import_leaves_the_web_stack_alone():
    """``segbridge serve`` imports FastAPI / uvicorn itself; no other command pays for them."""
    code = ("import json, sys, segbridge.cli, segbridge.serve; "
            "print(json.dumps(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in json.loads(r.stdout)}
    web = {"fastapi", "uvicorn", "starlette", "python_multipart", "multipart", "httpx",
           "anyio", "pydantic"}
    assert sorted(loaded & web) == []
