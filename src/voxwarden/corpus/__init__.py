"""Training corpus: real speech from installable sources, spoofs from many local generators.

`build_corpus` writes ``audio/*.flac`` + ``protocol.tsv`` + ``manifest.json``; `shortcut_audit` checks that
trivial properties (duration, level, bandwidth, silence, codec traces) do not give the label away;
`logo_splits` yields leave-one-generator-out folds. See docs/corpus.md.
"""

from voxwarden.corpus.audit import AuditResult, BalanceResult, balance_corpus, shortcut_audit
from voxwarden.corpus.build import (
    PROTOCOL_COLUMNS,
    SIZES,
    CorpusError,
    CorpusSummary,
    LogoFold,
    build_corpus,
    logo_splits,
    read_protocol,
    write_protocol,
)

__all__ = [
    "PROTOCOL_COLUMNS",
    "SIZES",
    "AuditResult",
    "BalanceResult",
    "CorpusError",
    "CorpusSummary",
    "LogoFold",
    "balance_corpus",
    "build_corpus",
    "logo_splits",
    "read_protocol",
    "shortcut_audit",
    "write_protocol",
]
