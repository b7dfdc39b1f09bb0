"""What an image file is, read from its header: format, virtual size and digests.

Glance stores whatever it is given; a qcow2 file declared ``raw`` boots as garbage, and a
volume smaller than the image's *virtual* size fails late in Cinder. Both are checked
here, before anything is uploaded. Header layouts: the QEMU qcow2 specification
(magic ``QFI\\xfb``, big-endian virtual size at byte 24) and VMware's Virtual Disk Format
1.1 (hosted sparse extent: magic ``KDMV``, little-endian capacity in 512-byte sectors at
byte 12; or a text descriptor with ``RW <sectors>`` extent lines).
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

GIB = 1024 ** 3
FORMATS = ("qcow2", "raw", "vmdk")


@dataclass(frozen=True)
class DiskFile:
    format: str
    size: int  # bytes on disk (what is uploaded)
    virtual_size: int  # bytes the guest sees (what the volume must hold)
    md5: str
    sha512: str

    @property
    def min_gib(self) -> int:
        return max(1, math.ceil(self.virtual_size / GIB))


def detect(path: Path) -> tuple[str, int]:
    """(format, virtual size in bytes) from the file's first bytes."""
    with path.open("rb") as f:
        head = f.read(1024)
    if head[:4] == b"QFI\xfb" and len(head) >= 32:
        return "qcow2", struct.unpack(">Q", head[24:32])[0]
    if head[:4] == b"KDMV" and len(head) >= 20:
        return "vmdk", struct.unpack("<Q", head[12:20])[0] * 512
    if head.startswith(b"# Disk DescriptorFile"):
        text = head.decode("ascii", "replace")
        sectors = sum(int(m) for m in re.findall(r"^(?:RW|RDONLY)\s+(\d+)", text, re.MULTILINE))
        return "vmdk", sectors * 512
    return "raw", path.stat().st_size


def inspect(path: Path) -> DiskFile:
    """Format, sizes and digests (md5 as Glance's ``checksum``, sha512 as its
    ``os_hash_value``) of an image file; reads it once."""
    fmt, virtual = detect(path)
    md5, sha512 = hashlib.md5(usedforsecurity=False), hashlib.sha512()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha512.update(chunk)
    return DiskFile(fmt, path.stat().st_size, virtual, md5.hexdigest(), sha512.hexdigest())
