"""The review console (``/console``): alert queue, alert timeline, audio, verdicts, notes, evidence export,
rectification items and users, for people logged in with a username and password (docs/console.md).

`install_console(app)` adds the routes, the static files and the console's error pages to an app built by
`voxwarden.api.app.create_app`; it needs ``app.state.settings`` and ``app.state.store``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from voxwarden.api.console.routes import (
    ConsoleError,
    ConsoleState,
    LoginRequired,
    console_error_handler,
    login_required_handler,
    router,
)
from voxwarden.api.console.security import LoginGuard, SecretError, SessionSigner, load_secret

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["ConsoleError", "install_console"]


def install_console(app: FastAPI) -> None:
    """Mount the console on `app`: routes under /console, static files under /console/static."""
    from voxwarden.api.settings import SettingsError

    settings = app.state.settings
    try:
        secret = load_secret(settings.console_secret, settings.data_dir)
    except SecretError as e:
        raise SettingsError(str(e)) from e
    window = settings.console_lockout_minutes * 60
    app.state.console = ConsoleState(
        signer=SessionSigner(secret, settings.console_session_minutes * 60),
        guard=LoginGuard(settings.console_login_max_failures, window),
        secure=settings.console_secure_cookies,
        cookie="__Host-vw_session" if settings.console_secure_cookies else "vw_session",
        session_s=settings.console_session_minutes * 60,
    )
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.add_exception_handler(ConsoleError, console_error_handler)
    app.add_exception_handler(LoginRequired, login_required_handler)
