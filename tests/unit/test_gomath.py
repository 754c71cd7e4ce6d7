"""Bit-exact checks of :mod:`blis_gym.gomath` against Go's ``math`` package.

``tests/data/gomath_expected.json`` holds ``math.Pow(x, y)`` and ``math.Gamma(x)``
as computed by Go 1.27 (linux/amd64), every float as its IEEE-754 bit pattern in
hex, so the comparisons below are exact. ``trunc_or`` / ``round_or`` (libm first,
exact port only when the integer is in doubt) are checked against the exact path
on random inputs and on inputs built to sit on integer and half-integer boundaries.
"""

from __future__ import annotations

import json
import math
import random
import struct
from decimal import ROUND_HALF_UP, Decimal

import pytest
from testkit import DATA

from blis_gym.gomath import MIN_INT64, go_gamma, go_int64, go_pow, go_round, round_or, trunc_or

EXPECTED = json.loads((DATA / "gomath_expected.json").read_text(encoding="utf-8"))


def unhex(h: str) -> float:
    return struct.unpack(">d", bytes.fromhex(h))[0]


def bits(x: float) -> str:
    return struct.pack(">d", x).hex()


def same_float(got: float, want: float) -> bool:
    """Bit-identical, except that any NaN equals any NaN (Go does not pin the NaN's sign bit)."""
    if math.isnan(want):
        return math.isnan(got)
    return bits(got) == bits(want)


# --- Pow and Gamma against Go -------------------------------------------------------------------


def test_expected_file_has_cases():
    assert len(EXPECTED["pow"]) > 1000 and len(EXPECTED["gamma"]) > 500


def test_go_pow_bit_exact():
    wrong = []
    for xh, yh, zh in EXPECTED["pow"]:
        x, y, want = unhex(xh), unhex(yh), unhex(zh)
        got = go_pow(x, y)
        if not same_float(got, want):
            wrong.append(f"Pow({x!r}, {y!r}) = {got!r} [{bits(got)}], Go: {want!r} [{zh}]")
    assert not wrong, f"{len(wrong)} of {len(EXPECTED['pow'])} differ:\n" + "\n".join(wrong[:20])


def test_go_gamma_bit_exact():
    wrong = []
    for xh, zh in EXPECTED["gamma"]:
        x, want = unhex(xh), unhex(zh)
        got = go_gamma(x)
        if not same_float(got, want):
            wrong.append(f"Gamma({x!r}) = {got!r} [{bits(got)}], Go: {want!r} [{zh}]")
    assert not wrong, f"{len(wrong)} of {len(EXPECTED['gamma'])} differ:\n" + "\n".join(wrong[:20])


def test_go_gamma_integers_are_factorials():
    for n in range(1, 23):  # (n-1)! is exact in a float64 up to 22!
        assert go_gamma(float(n)) == float(math.factorial(n - 1))


def test_go_gamma_rejects_non_positive():
    for x in (0.0, -1.5):
        with pytest.raises(ValueError):
            go_gamma(x)


def test_go_pow_special_cases():
    assert go_pow(2.0, 0.0) == 1.0 and go_pow(1.0, math.nan) == 1.0
    assert go_pow(7.5, 1.0) == 7.5
    assert math.isnan(go_pow(-2.0, 0.5))
    assert go_pow(0.0, -1.0) == math.inf
    assert go_pow(4.0, 0.5) == 2.0 and go_pow(4.0, -0.5) == 0.5
    assert go_pow(2.0, 10.0) == 1024.0 and go_pow(2.0, -2.0) == 0.25
    assert go_pow(0.5, math.inf) == 0.0 and go_pow(2.0, math.inf) == math.inf


# --- go_round: Go's math.Round -------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, want",
    [
        (0.5, 1.0),
        (1.5, 2.0),
        (2.5, 3.0),
        (-0.5, -1.0),
        (-1.5, -2.0),
        (-2.5, -3.0),
        (0.49999999999999994, 0.0),
        (-0.49999999999999994, 0.0),
        (0.0, 0.0),
        (2.4999999999999996, 2.0),
        (2.5000000000000004, 3.0),
        (-2.5000000000000004, -3.0),
        (4503599627370495.5, 4503599627370496.0),
        (-4503599627370495.5, -4503599627370496.0),
        (9007199254740993.0, 9007199254740992.0),  # not representable: 2**53 itself
        (1e300, 1e300),
        (-1e300, -1e300),
        (7.0, 7.0),
        (-7.0, -7.0),
    ],
)
def test_go_round_half_away_from_zero(x, want):
    assert go_round(x) == want


def test_go_round_non_finite():
    assert math.isnan(go_round(math.nan))
    assert go_round(math.inf) == math.inf and go_round(-math.inf) == -math.inf


def test_go_round_matches_decimal_half_up_on_random_values():
    rnd = random.Random(2024)
    values = [rnd.uniform(-1e6, 1e6) for _ in range(5000)]
    values += [rnd.randint(-(10**6), 10**6) + 0.5 for _ in range(2000)]  # exact ties
    values += [math.nextafter(v, s) for v in values[-2000:] for s in (-math.inf, math.inf)]
    for x in values:
        want = float(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        assert go_round(x) == want, x


# --- go_int64: Go's int64(x) on amd64 -------------------------------------------------------------


@pytest.mark.parametrize(
    "x, want",
    [
        (2.7, 2),
        (-2.7, -2),
        (0.999, 0),
        (-0.999, 0),
        (1e18, 10**18),
        (9.223372036854774784e18, 9223372036854774784),  # the largest float below 2**63
        (-9.223372036854775808e18, MIN_INT64),  # -2**63 itself is in range
        (9.223372036854775808e18, MIN_INT64),  # 2**63: out of range
        (1e19, MIN_INT64),
        (-1e19, MIN_INT64),
        (1e300, MIN_INT64),
        (math.nextafter(-9.223372036854775808e18, -math.inf), MIN_INT64),
        (math.inf, MIN_INT64),
        (-math.inf, MIN_INT64),
        (math.nan, MIN_INT64),
    ],
)
def test_go_int64(x, want):
    assert go_int64(x) == want


# --- trunc_or / round_or against the exact path ---------------------------------------------------


class Exact:
    """The exact path of trunc_or/round_or, counting its calls."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.value


def _check(approx: float, exact: float) -> None:
    assert trunc_or(approx, Exact(exact)) == go_int64(exact), (approx, exact)
    assert round_or(approx, Exact(exact)) == go_int64(go_round(exact)), (approx, exact)


def _near(v: float, rnd: random.Random) -> list[float]:
    """``v`` and libm-like approximations of it: a few ulps and up to 2**-42 relative away."""
    out = [v]
    up = down = v
    for _ in range(3):
        up, down = math.nextafter(up, math.inf), math.nextafter(down, -math.inf)
        out += [up, down]
    for _ in range(4):
        out.append(v * (1.0 + rnd.uniform(-(2.0**-42), 2.0**-42)))
    return out


def test_trunc_or_round_or_on_integer_and_half_boundaries():
    rnd = random.Random(7)
    centres = []
    for _ in range(1500):
        n = rnd.choice([rnd.randint(1, 100), rnd.randint(1, 10**6), rnd.randint(1, 2**40)])
        centres += [float(n), n + 0.5]
    centres += [1.0, 0.5, 1.5, 2.0**51, 2.0**51 + 0.5]
    checked = 0
    for c in centres:
        # exact values on the boundary and a few ulps either side; approximations around each
        for exact in _near(c, rnd)[:7]:
            for approx in _near(exact, rnd):
                _check(approx, exact)
                checked += 1
    assert checked > 100_000


def test_trunc_or_round_or_pow_results_near_boundaries():
    """The samplers' real use: s * Pow(x, y) built to land within ulps of an integer or a half."""
    rnd = random.Random(11)
    for _ in range(4000):
        target = rnd.randint(1, 50_000) + rnd.choice([0.0, 0.5])
        y = rnd.uniform(0.05, 4.0)
        s = rnd.uniform(0.5, 3000.0)
        x = (target / s) ** (1.0 / y)
        exact = s * go_pow(x, y)
        assert abs(exact - target) < 1e-6 * target
        _check(s * math.pow(x, y), exact)
        exact_div = target / go_pow(x, y)  # round_or's Pareto form: xm / Pow(u, 1/alpha)
        _check(target / math.pow(x, y), exact_div)


def test_trunc_or_round_or_random_pow_inputs():
    rnd = random.Random(5)
    for _ in range(20_000):
        x = rnd.uniform(1e-6, 60.0)
        y = rnd.uniform(0.01, 8.0)
        s = 10.0 ** rnd.uniform(-2, 6)
        _check(s * math.pow(x, y), s * go_pow(x, y))


def test_fast_path_skips_exact_only_when_settled():
    far = Exact(10.25)
    assert trunc_or(10.25, far) == 10 and round_or(10.25, far) == 10
    assert far.calls == 0, "a value far from any boundary needs no exact computation"
    for v, t, r in ((10.0, 10, 10), (10.5, 10, 11), (3.0, 3, 3), (2.5, 2, 3)):
        at = Exact(v)
        assert trunc_or(v, at) == t
        assert round_or(v, at) == r
        assert at.calls >= 1, f"{v} sits on a boundary: the exact path must decide"
    # The exact value decides even when the approximation is on the other side of the boundary.
    below = math.nextafter(7.0, 0.0)
    assert trunc_or(7.0, Exact(below)) == 6
    assert trunc_or(below, Exact(7.0)) == 7
    assert round_or(6.5, Exact(math.nextafter(6.5, 0.0))) == 6
    assert round_or(math.nextafter(6.5, 0.0), Exact(6.5)) == 7


@pytest.mark.parametrize(
    "approx, exact",
    [
        (0.0, 0.0),
        (-3.2, -3.2),
        (2.0**53, 2.0**53),
        (1e300, 1e300),
        (math.inf, math.inf),
        (math.nan, math.nan),
    ],
)
def test_out_of_fast_range_defers_to_exact(approx, exact):
    assert trunc_or(approx, Exact(exact)) == go_int64(exact)
    assert round_or(approx, Exact(exact)) == go_int64(go_round(exact))
