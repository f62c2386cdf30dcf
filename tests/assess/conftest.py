"""Fixtures for the assessment tests: a complete, compliant evidence dict and a fresh SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _pg_support import pg_schema


def compliant_evidence() -> dict[str, Any]:
    """Evidence under which every packaged control is met (nested sections, as measuring steps return)."""
    return {
        "governance": {
            "assessment_on_change": True, "security_officer_named": True, "content_review_staff": 3,
            "real_identity_verification": True, "registration_data_retained": True,
            "personal_info_protection": True, "complaint_channel": True, "authority_liaison": True,
            "voice_consent_required": True, "voice_consent_records_kept": True,
            "biometric_model_assessment": True, "rumour_refutation": True, "algorithm_filed": True,
            "public_opinion_attributes": True, "assessment_report_filed": True,
            "labelling_in_user_agreement": True, "deep_synthesis_rules_published": True,
        },
        "logging": {
            "retention_days": 184, "audit_chain_intact": True, "audit_log_enabled": True,
            "published_content_recorded": True, "retention_purge_scheduled": True, "export_available": True,
            "fields_recorded": ["account", "operation_time", "operation_type", "source_address", "source_port",
                                "destination_address", "destination_port", "client_traits"],
        },
        "detection": {"detector_enabled": True, "disposal_workflow": True, "records_kept": True,
                      "eer": 0.08, "eval_dataset": "held-out validation set"},
        "live": {"monitoring_enabled": True, "alert_latency_p95_s": 4.5, "synthetic_voice_allowed": False},
        "labelling": {
            "explicit_audio_notice": True, "notice_positions": ["start"], "interface_notice": True,
            "metadata_label": True, "metadata_fields": ["Label", "ContentProducer", "ProduceID", "ReservedCode1"],
            "metadata_format_coverage": 1.0, "watermark": True, "watermark_detect_rate": 0.97,
            "label_signed": True, "labels_preserved_in_processing": True, "platform_checks_implicit": True,
            "platform_adds_notice": True, "user_declaration_option": True, "suspected_label": True,
            "propagation_fields_written": True,
            "unlabelled_output_on_request": True,  # allowed: agreement + 184-day logs above (LB25 art. 9)
        },
    }


@pytest.fixture
def evidence() -> dict[str, Any]:
    return compliant_evidence()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated store on SQLite (tmp dir) and on PostgreSQL (a throwaway schema)."""
    from voxwarden.store import Store

    if request.param == "sqlite":
        st = Store(data_dir=tmp_path / "data", evidence_dir=tmp_path / "data" / "evidence")
        yield st
        st.dispose()
        return
    with pg_schema("assess") as url:
        st = Store(url, evidence_dir=tmp_path / "evidence")
        try:
            yield st
        finally:
            st.dispose()


@pytest.fixture
def tenant(store: Any) -> str:
    from voxwarden.store.keys import create_tenant

    with store.session() as s:
        return create_tenant(s, "acme").id
