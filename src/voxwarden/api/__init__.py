"""The HTTP service (``voxwarden serve``): FastAPI app under ``/v1`` with API keys, scans and verify.

    from voxwarden.api import Settings, create_app
    app = create_app(Settings(data_dir="/var/lib/voxwarden"))

Importing this package is cheap (FastAPI is imported on first use of `create_app`); `create_app` opens
the store and loads the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voxwarden.api.settings import Settings, SettingsError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from voxwarden.store import Store

__all__ = ["Settings", "SettingsError", "create_app"]


def create_app(settings: Settings | None = None, *, store: Store | None = None, detector: Any = None) -> FastAPI:
    """Build the FastAPI app: see `voxwarden.api.app.create_app`."""
    from voxwarden.api.app import create_app as _create

    return _create(settings, store=store, detector=detector)
