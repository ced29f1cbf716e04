"""Extended binary BCH codes with soft-decision maximum-likelihood decoding over every codeword.

The watermark's payload (a 16-bit job hash) is spread over a few hundred STFT cells per second.
Repeating each bit over its cells (the design until 2026-12-06, with a CRC-8 to reject bad
reads) needs every bit right; a code with a large minimum distance spends the same cells on
64 coded bits, in at least 24 of which any two payloads differ, and with only 2**16 codewords
the decoder can afford to score all of them against the soft correlations (maximum likelihood
for Gaussian noise of equal variance per cell; a few ms).

Construction (Lin & Costello, *Error Control Coding*, ch. 6): the narrow-sense primitive BCH
code of length 2**m − 1 with designed distance δ has the generator polynomial
lcm(M₁, …, M_{δ−1}) of the minimal polynomials of α¹ … α^{δ−1} over GF(2); one overall parity
bit extends it to length 2**m and raises an odd minimum distance by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class ExtendedBCHCode:
    """The extended narrow-sense BCH code of length ``2**m`` and designed distance ``designed_distance``.

    The default, m = 6 and δ = 23, is the [64, 16, 24] code: 16 message bits, 64 coded bits, and
    any two codewords differ in at least 24 places (the test suite counts them).
    """

    m: int = 6
    designed_distance: int = 23
    #: A primitive polynomial of degree m over GF(2), as a bit mask (x⁶ + x + 1).
    primitive_polynomial: int = 0b1000011

    @property
    def length(self) -> int:
        """Coded bits per codeword, n = 2**m (the BCH length 2**m − 1 plus the parity bit)."""
        return 1 << self.m

    @property
    def message_bits(self) -> int:
        """k: n − 1 − the generator's degree."""
        return self.length - 1 - (len(self.generator_polynomial) - 1)

    @cached_property
    def _field(self) -> tuple[np.ndarray, np.ndarray]:
        """exp and log tables of GF(2**m) built from the primitive polynomial."""
        order = (1 << self.m) - 1
        exp = np.zeros(2 * order, dtype=np.int64)
        log = np.zeros(order + 1, dtype=np.int64)
        value = 1
        for power in range(order):
            exp[power] = exp[power + order] = value
            log[value] = power
            value <<= 1
            if value >> self.m:
                value ^= self.primitive_polynomial
        if len(set(exp[:order].tolist())) != order:
            raise ValueError(f"{self.primitive_polynomial:#b} is not primitive of degree {self.m}")
        return exp, log

    def _minimal_polynomial(self, coset: list[int]) -> np.ndarray:
        """∏ (x + α^j) over the cyclotomic coset, lowest degree first; its coefficients are 0 or 1."""
        exp, log = self._field
        poly = [1]  # field elements, lowest degree first
        for j in coset:
            root = int(exp[j])
            shifted = [0, *poly]  # x · poly
            for i, coefficient in enumerate(poly):  # + root · poly
                if coefficient:
                    shifted[i] ^= int(exp[log[coefficient] + log[root]])
            poly = shifted
        if any(c > 1 for c in poly):
            raise ArithmeticError("a minimal polynomial left GF(2): the coset is wrong")
        return np.array(poly, dtype=np.int64)

    @cached_property
    def generator_polynomial(self) -> np.ndarray:
        """g(x) over GF(2), lowest degree first: the product of the distinct minimal polynomials."""
        order = (1 << self.m) - 1
        covered: set[int] = set()
        generator = np.array([1], dtype=np.int64)
        for power in range(1, self.designed_distance):
            if power in covered:
                continue
            coset, j = [], power
            while j not in coset:
                coset.append(j)
                j = 2 * j % order
            covered.update(coset)
            generator = np.convolve(generator, self._minimal_polynomial(coset)) % 2
        return generator

    @cached_property
    def _codewords(self) -> np.ndarray:
        """Every codeword as a uint64 bit mask (bit i = coded bit i), indexed by its message.

        Message bit p (weight 2**p) multiplies x^p·g(x); the parity bit is bit n − 1.
        """
        if self.length > 64:
            raise ValueError("codewords are held as 64-bit masks: m ≤ 6")
        generator = self.generator_polynomial
        words = np.zeros(1, dtype=np.uint64)
        for p in range(self.message_bits):
            row = int(sum(int(bit) << (p + i) for i, bit in enumerate(generator)))
            row |= (bin(row).count("1") & 1) << (self.length - 1)  # even overall parity
            words = np.concatenate([words, words ^ np.uint64(row)])
        return words

    def encode(self, message: int) -> np.ndarray:
        """The n coded bits (0/1) of ``message`` (0 ≤ message < 2**k)."""
        if not 0 <= message < 1 << self.message_bits:
            raise ValueError(f"the message must fit in {self.message_bits} bits; got {message}")
        return self.bits(self._codewords[message : message + 1])[0]

    def bits(self, words: np.ndarray) -> np.ndarray:
        """Codeword masks as (words, n) arrays of 0/1."""
        shifts = np.arange(self.length, dtype=np.uint64)
        return ((words[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.int64)

    @cached_property
    def _signs(self) -> np.ndarray:
        """(2**k, n) float32 of ±1: +1 where a coded bit is 1 (16 MB for the default code)."""
        return (2.0 * self.bits(self._codewords) - 1.0).astype(np.float32)

    def decode(self, correlations: np.ndarray) -> tuple[int, float]:
        """Maximum-likelihood message for per-coded-bit correlations (positive = 1) and its score.

        The score is Σᵢ sᵢ·correlationᵢ with sᵢ = ±1 the codeword's bits: with independent
        Gaussian noise of equal variance behind every correlation, the highest score is the most
        likely codeword.
        """
        if correlations.shape != (self.length,):
            raise ValueError(f"expected {self.length} correlations; got shape {correlations.shape}")
        scores = self._signs @ correlations.astype(np.float32)
        best = int(np.argmax(scores))
        return best, float(correlations @ self._signs[best].astype(np.float64))

    def minimum_distance(self) -> int:
        """The smallest weight of a non-zero codeword (the code is linear): counted, not assumed."""
        return int(np.bitwise_count(self._codewords[1:]).min())
