"""UID generation without pydicom (its import costs ~0.2 s of a short command).

The algorithm is pydicom's ``generate_uid`` (pydicom 3), so UIDs derived from entropy sources
(``--assign-uids`` gives reruns the same UIDs) stay the ones earlier versions assigned: under
pydicom's root, either a random integer or the SHA-512 of the joined sources as decimal digits,
cut to the 64 characters a UI value may hold (PS3.5 9.1).
"""

from __future__ import annotations

import hashlib
import secrets

#: pydicom's UID root, which it offers its users for generating UIDs
ROOT = "1.2.826.0.1.3680043.8.498."
#: the Implementation Class UID segbridge's files have always carried (PS3.10 7.1)
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.1"


def generate_uid(prefix: str = ROOT, entropy_srcs: list[str] | None = None) -> str:
    """A new UID under ``prefix``; the same ``entropy_srcs`` always give the same UID."""
    if entropy_srcs is None:
        return f"{prefix}{secrets.randbelow(10 ** (64 - len(prefix)))}"[:64]
    digest = hashlib.sha512("".join(entropy_srcs).encode("utf-8")).hexdigest()
    return f"{prefix}{int(digest, 16)}"[:64]
