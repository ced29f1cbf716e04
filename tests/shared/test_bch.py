"""The watermark payload's code: its distance is counted, and decoding corrects what the distance promises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.bch import ExtendedBCHCode

CODE = ExtendedBCHCode()


def test_the_default_code_is_the_64_16_24_code() -> None:
    assert (CODE.length, CODE.message_bits) == (64, 16)
    assert CODE.minimum_distance() == 24  # every one of the 65,535 non-zero codewords weighed
    # A smaller code of the family, against its published parameters: BCH(31, 16, 7) → [32, 16, 8].
    small = ExtendedBCHCode(m=5, designed_distance=7, primitive_polynomial=0b100101)
    assert (small.length, small.message_bits, small.minimum_distance()) == (32, 16, 8)


def test_codewords_are_linear_and_distinct() -> None:
    a, b = CODE.encode(0x1234), CODE.encode(0xBEEF)
    assert np.array_equal(a ^ b, CODE.encode(0x1234 ^ 0xBEEF))
    assert np.sum(a != b) >= 24 and np.sum(CODE.encode(0)) == 0


@settings(max_examples=40, deadline=None)
@given(
    message=st.integers(min_value=0, max_value=(1 << 16) - 1),
    flips=st.lists(st.integers(min_value=0, max_value=63), max_size=11, unique=True),
    scale=st.floats(min_value=0.1, max_value=100.0),
)
def test_decoding_corrects_up_to_eleven_wrong_bits(message: int, flips: list[int], scale: float) -> None:
    """Minimum distance 24: any 11 wrong hard bits still leave the sent codeword the closest."""
    signs = 2.0 * CODE.encode(message) - 1.0
    signs[flips] *= -1.0
    decoded, score = CODE.decode(scale * signs)
    assert decoded == message
    assert score == pytest.approx(scale * (64 - 2 * len(flips)))


def test_soft_decoding_beats_bit_by_bit_reading() -> None:
    """With the same energy per message, a noise level at which reading 16 bits one by one gets the
    message right about 4 times in 10 leaves the code's maximum-likelihood decoding right 19
    times in 20 (the watermark's case: a fixed number of cells per second for the payload)."""
    rng = np.random.default_rng(7)
    trials, right, uncoded_right = 200, 0, 0
    for _ in range(trials):
        message = int(rng.integers(1 << 16))
        # Per coded bit: signal 1, noise σ = 1.2 (20 % of the bits flipped). The uncoded reading
        # gets 4 × the energy per bit (64 coded bits' worth over 16), σ = 0.6: 4.8 % flipped.
        received = 2.0 * CODE.encode(message) - 1.0 + rng.normal(0.0, 1.2, 64)
        right += CODE.decode(received)[0] == message
        bits = 1 - 2 * ((message >> np.arange(16)) & 1)
        uncoded_right += np.all(np.sign(-bits + rng.normal(0.0, 0.6, 16)) == -bits)
    assert right >= 0.9 * trials, right  # 190 of 200 with this seed
    assert uncoded_right <= 0.6 * trials, uncoded_right  # 85 of 200


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="16 bits"):
        CODE.encode(1 << 16)
    with pytest.raises(ValueError, match="64 correlations"):
        CODE.decode(np.zeros(63))
    with pytest.raises(ValueError, match="not primitive"):
        ExtendedBCHCode(primitive_polynomial=0b1000001).generator_polynomial  # noqa: B018
