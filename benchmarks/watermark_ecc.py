"""How far the watermark's error correction is from the best any code of its size could do.

    python benchmarks/watermark_ecc.py [--blocks 2000] [--seed 0]

The mark's code word carries N_INFO = 56 information bits (32 payload + 24 MAC) in N_CODED = 124 code bits
(K=7, rate-1/2 convolutional code, zero-terminated). Misses at the right alignment read 15-23 % of the code
bits wrong (docs/watermark.md). Is a stronger code the lever? This prints, for a binary-input AWGN channel
(soft values = ±a + unit Gaussian noise, hard code-bit error p = Q(a)):

- the code-bit error rate at which *any* (124, 56) code reaches a block error rate of 10 % and 1 %
  (normal approximation of Polyanskiy, Poor and Verdú 2010, with the ½·log2 n term), and the capacity limit
  of the rate 56/124 alone;
- the block error rate of the shipped decoder (`_viterbi_batch`, the one the detector uses) at several p.

Equal reliabilities are assumed: the watermark's own soft values vary in reliability from bit to bit, so
matching a detection to a row by its hard error rate is approximate.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import norm

from voxwarden.mark import ecc
from voxwarden.mark.watermark import N_CODED, N_INFO, _viterbi_batch


def biawgn(es_n0: float) -> tuple[float, float]:
    """Capacity (bits per channel use) and dispersion of BPSK on AWGN at Es/N0 (linear)."""
    sd = np.sqrt(1.0 / (2.0 * es_n0))
    y = np.linspace(1 - 12 * sd, 1 + 12 * sd, 20001)
    pdf = norm.pdf(y, 1.0, sd)
    dens = 1.0 - np.logaddexp(0.0, -2.0 * y / sd**2) / np.log(2.0)  # information density, bits
    cap = float(np.trapezoid(pdf * dens, y))
    return cap, float(np.trapezoid(pdf * (dens - cap) ** 2, y))


def _solve(ok) -> float:
    """Smallest Es/N0 (linear) in [0.01, 10] for which ok(snr) holds (bisection on a log scale)."""
    lo, hi = 0.01, 10.0
    for _ in range(60):
        mid = float(np.sqrt(lo * hi))
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def limit_error_rate(n: int, k: int, bler: float) -> float:
    """Hard code-bit error rate at which the best (n, k) code reaches `bler` (normal approximation)."""
    def fits(snr: float) -> bool:
        cap, disp = biawgn(snr)
        return n * cap - np.sqrt(n * disp) * norm.isf(bler) + 0.5 * np.log2(n) >= k
    return float(norm.sf(np.sqrt(2 * _solve(fits))))


def capacity_error_rate(rate: float) -> float:
    """Hard code-bit error rate at which BPSK-AWGN capacity equals `rate` (infinitely long codes)."""
    return float(norm.sf(np.sqrt(2 * _solve(lambda s: biawgn(s)[0] >= rate))))


def viterbi_bler(p: float, blocks: int, rng: np.random.Generator) -> float:
    """Block error rate of the shipped K=7 decoder at hard code-bit error rate p."""
    a = norm.isf(p)
    info = rng.integers(0, 2, (blocks, N_INFO))
    code = np.stack([ecc.conv_encode(b) for b in info]).astype(np.float64)
    soft = (1.0 - 2.0 * code) * a + rng.standard_normal(code.shape)
    return float(np.mean(np.any(_viterbi_batch(soft, N_INFO) != info, axis=1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(f"code: {N_INFO} information bits in {N_CODED} code bits")
    for bler in (0.1, 0.01):
        print(f"best ({N_CODED}, {N_INFO}) code, block error {bler:.0%}: "
              f"code-bit error rate up to {limit_error_rate(N_CODED, N_INFO, bler):.1%}")
    print(f"capacity limit at rate {N_INFO / N_CODED:.3f}: {capacity_error_rate(N_INFO / N_CODED):.1%}")
    rng = np.random.default_rng(a.seed)
    print("| code-bit error rate | K=7 Viterbi block error rate |")
    print("| --- | --- |")
    for p in (0.06, 0.08, 0.10, 0.12, 0.15, 0.18, 0.21):
        print(f"| {p:.0%} | {viterbi_bler(p, a.blocks, rng):.1%} |")


if __name__ == "__main__":
    main()
