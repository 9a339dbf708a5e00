"""Peer baseline for bench_web: dicomweb-client used directly, the way its docs show.

push DIR URL: read every file with pydicom, store_instances in requests of 50 instances.
pull URL STUDY SERIES OUT: one retrieve_series request (one multipart answer), each instance
saved as a file.
"""

import sys
from pathlib import Path

import pydicom
from dicomweb_client.api import DICOMwebClient


def main() -> None:
    mode = sys.argv[1]
    if mode == "push":
        folder, url = Path(sys.argv[2]), sys.argv[3]
        client = DICOMwebClient(url)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        for i in range(0, len(files), 50):
            client.store_instances([pydicom.dcmread(f) for f in files[i:i + 50]])
    else:
        url, study, series, out = sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])
        out.mkdir(parents=True, exist_ok=True)
        client = DICOMwebClient(url)
        for ds in client.retrieve_series(study, series,
                                         media_types=(("application/dicom", "*"),)):
            ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)


if __name__ == "__main__":
    main()
