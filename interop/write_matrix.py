"""Run the interop tests and write docs/interop.md from their results.

usage: python interop/write_matrix.py [--json results.json] [--out docs/interop.md]
(--json reuses results of an earlier run instead of running the tests; the OHIF 3.13 browser
column and section come from docs/interop-ohif.json, written by interop/ohif/matrix.py)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "interop" / "ohif"))


def main() -> None:
    from interop_matrix import Cell, markdown
    from report import CONSUMER as OHIF_CONSUMER
    from report import matrix_cells as ohif_cells
    from report import section as ohif_section

    ap = argparse.ArgumentParser()
    ap.add_argument("--json", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "interop.md")
    ap.add_argument("--ohif", type=Path, default=ROOT / "docs" / "interop-ohif.json",
                    help="results of interop/ohif/matrix.py (the OHIF 3.13 browser column)")
    args = ap.parse_args()
    results = args.json
    if results is None:
        results = Path(tempfile.mkdtemp()) / "interop.json"
        env = {**os.environ, "SEGBRIDGE_INTEROP_JSON": str(results)}
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_interop.py"],
                             cwd=ROOT, env=env)
        if run.returncode != 0:
            print("interop tests failed; the matrix shows the failures", file=sys.stderr)
    cells = [Cell(**c) for c in json.loads(results.read_text())
             if c["consumer"] != OHIF_CONSUMER]  # (the kept JSON may hold an earlier column)
    ohif = json.loads(args.ohif.read_text()) if args.ohif.is_file() else []
    cells += [Cell(**c) for c in ohif_cells(ohif)]
    args.out.write_text(markdown(cells) + (ohif_section(ohif) if ohif else ""))
    kept = args.out.with_suffix(".json")  # for docs/make_guide.py
    kept.write_text(json.dumps([{k: v for k, v in c.__dict__.items() if k != "files"}
                                for c in cells], indent=1))
    print(f"wrote {args.out} ({len(cells)} cells)")


if __name__ == "__main__":
    main()
