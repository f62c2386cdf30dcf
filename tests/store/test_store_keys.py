"""API keys (hashed, scoped, revocable) and users (scrypt passwords, roles), tenant-scoped."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from voxwarden.store import AuthError, ConflictError, InvalidInputError, NotFoundError
from voxwarden.store.columns import utcnow
from voxwarden.store.keys import (
    authenticate_key,
    authenticate_user,
    create_api_key,
    create_tenant,
    create_user,
    disable_user,
    hash_password,
    list_api_keys,
    revoke_api_key,
    set_password,
    set_role,
    verify_password,
)
from voxwarden.store.models import ApiKey, User

PW = "correct horse battery"


def test_password_hash_roundtrip() -> None:
    h = hash_password(PW)
    assert h.startswith("scrypt$") and PW not in h
    assert verify_password(PW, h) and not verify_password(PW + "!", h)
    assert hash_password(PW) != h  # salted
    for bad in ("", "scrypt$1$2", "md5$x", "scrypt$99999999$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!$??"):
        assert not verify_password(PW, bad)
    with pytest.raises(InvalidInputError):
        hash_password("short")
    with pytest.raises(InvalidInputError):
        hash_password("x" * 5000)


def test_api_key_lifecycle(store, tenant) -> None:
    with store.session() as s:
        new = create_api_key(s, tenant, "ingest", ["scan", "rooms"])
    token = new.token
    assert token.startswith("vw_")
    with store.session() as s:
        row = s.scalars(select(ApiKey)).one()
        secret = token.split("_", 2)[2]
        assert (
            row.secret_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in row.secret_hash
        )
        key = authenticate_key(s, token, scope="scan")
        assert key.tenant_id == tenant and key.last_used_at is not None
        with pytest.raises(AuthError, match="scope"):
            authenticate_key(s, token, scope="admin")
        with pytest.raises(AuthError):
            authenticate_key(s, token[:-1] + ("A" if token[-1] != "A" else "B"))
        for junk in ("", "vw_", "Bearer x", "vw_zzzzzzzzzzzz_" + "a" * 40, None):
            with pytest.raises(AuthError):
                authenticate_key(s, junk)  # type: ignore[arg-type]
        revoke_api_key(s, tenant, key.id)
    with store.session() as s:
        with pytest.raises(AuthError):
            authenticate_key(s, token)


def test_admin_scope_and_expiry(store, tenant) -> None:
    with store.session() as s:
        admin = create_api_key(s, tenant, "ops", {"admin"}).token
        short = create_api_key(s, tenant, "tmp", ["mark"], expires_at=utcnow() + timedelta(minutes=5)).token
        assert authenticate_key(s, admin, scope="rooms").name == "ops"
        assert authenticate_key(s, short, scope="mark").name == "tmp"
        with pytest.raises(AuthError):
            authenticate_key(s, short, now=utcnow() + timedelta(hours=1))
        with pytest.raises(InvalidInputError):
            create_api_key(s, tenant, "bad", ["delete_everything"])
        with pytest.raises(InvalidInputError):
            create_api_key(s, tenant, "bad", "scan")  # type: ignore[arg-type]
        assert [k.name for k in list_api_keys(s, tenant)] == ["ops", "tmp"]


def test_users_roles_and_login(store, tenant, other_tenant) -> None:
    with store.session() as s:
        u = create_user(s, tenant, "alice", PW, "reviewer")
        with pytest.raises(ConflictError):
            create_user(s, tenant, "alice", PW, "admin")
        create_user(s, other_tenant, "alice", PW, "auditor")  # same name, other tenant: fine
        with pytest.raises(InvalidInputError):
            create_user(s, tenant, "bob", PW, "root")
        assert authenticate_user(s, tenant, "alice", PW).id == u.id
        for name, pw in (("alice", "wrong password!"), ("nobody", PW)):
            with pytest.raises(AuthError):
                authenticate_user(s, tenant, name, pw)
        set_role(s, tenant, u.id, "admin")
        set_password(s, tenant, u.id, PW + " 2")
        with pytest.raises(AuthError):
            authenticate_user(s, tenant, "alice", PW)
        assert authenticate_user(s, tenant, "alice", PW + " 2").role == "admin"
        disable_user(s, tenant, u.id)
        with pytest.raises(AuthError):
            authenticate_user(s, tenant, "alice", PW + " 2")
        with pytest.raises(NotFoundError):
            set_role(s, other_tenant, u.id, "auditor")  # other tenant cannot touch alice
        assert s.scalars(select(User).where(User.id == u.id)).one().password_hash.startswith("scrypt$")


def test_tenant_names_unique(store) -> None:
    with store.session() as s:
        create_tenant(s, "t")
        with pytest.raises(ConflictError):
            create_tenant(s, "t")
        with pytest.raises(InvalidInputError):
            create_tenant(s, " ")
