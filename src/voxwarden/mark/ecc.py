"""Error correction for the watermark payload: a K=7, rate-1/2 convolutional code with soft Viterbi.

Why this code: it is the industry-standard (NASA/802.11) code with generators 133/171 (octal), gains
~5 dB over uncoded bits with soft decisions, tolerates erased (zero-confidence) positions without any
special handling, and decodes 58 bits in well under a millisecond with numpy. The watermark gives each
coded bit a signed soft value (positive = 0, negative = 1, magnitude = reliability); an erased bit is 0.0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CONSTRAINT", "TAIL", "conv_encode", "viterbi_decode", "bits_from_bytes", "bytes_from_bits"]

CONSTRAINT = 7
TAIL = CONSTRAINT - 1
_G = (0o133, 0o171)
_NSTATES = 1 << TAIL


def _parity(v: np.ndarray) -> np.ndarray:
    v = v.copy()
    out = np.zeros_like(v)
    while np.any(v):
        out ^= v & 1
        v >>= 1
    return out


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """prev[ns, x]: predecessor state; outs[ns, x, 2]: expected code bits; bit[ns]: input bit into ns."""
    ns = np.arange(_NSTATES)
    bit = ns & 1
    prev = np.stack([(ns >> 1) | (x << (TAIL - 1)) for x in (0, 1)], axis=1)
    reg = (prev << 1) | bit[:, None]  # 7-bit register: oldest bit high, newest bit low
    outs = np.stack([_parity(reg & g) for g in _G], axis=-1)
    return prev, outs, bit


_PREV, _OUTS, _BIT = _tables()
_SIGNS = (1 - 2 * _OUTS).astype(np.float64)  # +1 for code bit 0, -1 for code bit 1


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Encode 0/1 bits (tail of K-1 zeros appended) -> 2*(len+K-1) coded 0/1 bits (uint8)."""
    b = np.concatenate([np.asarray(bits, dtype=np.int64) & 1, np.zeros(TAIL, dtype=np.int64)])
    state = 0
    out = np.empty(2 * len(b), dtype=np.uint8)
    for i, x in enumerate(b):
        reg = (state << 1) | int(x)
        out[2 * i] = bin(reg & _G[0]).count("1") & 1
        out[2 * i + 1] = bin(reg & _G[1]).count("1") & 1
        state = reg & (_NSTATES - 1)
    return out


def viterbi_decode(soft: np.ndarray, n_bits: int) -> tuple[np.ndarray, float]:
    """Soft-decision Viterbi for a zero-terminated code word.

    `soft` has 2*(n_bits+K-1) values: > 0 means code bit 0, < 0 means 1, |value| = confidence.
    Returns (n_bits decoded 0/1 bits, path metric of the survivor normalised by sum |soft|).
    """
    soft = np.asarray(soft, dtype=np.float64)
    steps = n_bits + TAIL
    if soft.shape != (2 * steps,):
        raise ValueError(f"expected {2 * steps} soft values, got {soft.shape}")
    pairs = soft.reshape(steps, 2)
    pm = np.full(_NSTATES, -1e18)
    pm[0] = 0.0
    decisions = np.empty((steps, _NSTATES), dtype=np.int8)
    for i in range(steps):
        bm = _SIGNS @ pairs[i]  # (ns, x) branch metrics
        cand = pm[_PREV] + bm  # (ns, x)
        choice = np.argmax(cand, axis=1)
        decisions[i] = choice
        pm = cand[np.arange(_NSTATES), choice]
    state = 0  # terminated by the tail
    metric = float(pm[0])
    bits = np.empty(steps, dtype=np.uint8)
    for i in range(steps - 1, -1, -1):
        bits[i] = _BIT[state]
        state = int(_PREV[state, decisions[i, state]])
    total = float(np.abs(soft).sum())
    return bits[:n_bits], (metric / total if total > 0 else 0.0)


def bits_from_bytes(data: bytes) -> np.ndarray:
    """Bytes -> 0/1 array, most significant bit first."""
    return np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8)).astype(np.uint8)


def bytes_from_bits(bits: np.ndarray) -> bytes:
    """0/1 array (length a multiple of 8), most significant bit first -> bytes."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
