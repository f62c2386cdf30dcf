"""Per-tenant secret keys for the mark endpoints, kept on the server in ``<data_dir>/tenant-keys/<tenant>/``.

Each tenant gets its own watermark key (32 random bytes, `voxwarden.mark.keys` file format) and its own
Ed25519 label-signing key (PEM, `voxwarden.mark.metadata.LabelKey`), made on first use. Why per tenant:
one platform must not be able to find, strip or forge another platform's marks. The secret halves never
leave the server (the API only ever returns the label key's *public* half); files are 0600 in 0700
directories. Creation is race-free across threads and processes: the key is written to a private temp
file and hard-linked into place, so the first writer wins and everyone else reads the winner's key.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from voxwarden.mark import Marker
from voxwarden.mark.keys import generate_key, load_key_file, write_key_file
from voxwarden.mark.metadata import LabelKey

WATERMARK_FILE = "watermark.key"
LABEL_FILE = "label-ed25519.pem"
_TENANT_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class TenantKeys:
    """Loads (or makes, once) a tenant's watermark and label keys; caches the `Marker` per tenant."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._markers: dict[str, Marker] = {}
        self._labels: dict[str, LabelKey] = {}

    def _dir(self, tenant_id: str) -> Path:
        if not _TENANT_ID.match(tenant_id or ""):
            raise ValueError(f"not a tenant id: {tenant_id!r}")
        d = self.root / tenant_id
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d

    @staticmethod
    def _create_once(path: Path, write: Callable[[Path], None]) -> None:
        """Write a new key file at `path` unless one exists; the first of several racing writers wins."""
        if path.exists():
            return
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # someone else's key is in place: use that one
        finally:
            tmp.unlink(missing_ok=True)

    def has_watermark_key(self, tenant_id: str) -> bool:
        return _TENANT_ID.match(tenant_id or "") is not None and (self.root / tenant_id / WATERMARK_FILE).is_file()

    def marker(self, tenant_id: str) -> Marker:
        """The tenant's watermark `Marker` (its key is made on first use)."""
        with self._lock:
            m = self._markers.get(tenant_id)
            if m is None:
                path = self._dir(tenant_id) / WATERMARK_FILE
                self._create_once(path, lambda p: write_key_file(p, generate_key(), overwrite=True))
                m = Marker(load_key_file(path))
                self._markers[tenant_id] = m
            return m

    def label_key(self, tenant_id: str) -> LabelKey:
        """The tenant's Ed25519 label-signing key (made on first use)."""
        with self._lock:
            k = self._labels.get(tenant_id)
            if k is None:
                path = self._dir(tenant_id) / LABEL_FILE
                self._create_once(path, lambda p: LabelKey.generate("ed25519").save(p))
                k = LabelKey.from_file(path)
                self._labels[tenant_id] = k
            return k
