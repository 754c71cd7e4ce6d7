"""Go's ``math`` functions, computed with Go's exact operation sequences.

Go's amd64 ``Log`` and ``Exp`` are assembly routines that are not correctly
rounded, and ``Pow`` and ``Gamma`` are built on them, so a libm call can differ
from Go in the last bit. Where a workload turns such a value into an integer
(a token count, a tick) one bit can change the integer, so every sampler that
must match the reference computes through these ports. ``trunc_or`` and
``round_or`` let a caller try the fast libm value first and fall back to the
exact port only when the integer is not settled by it.
"""

from __future__ import annotations

import math
import struct

__all__ = [
    "go_log",
    "go_exp",
    "go_pow",
    "go_gamma",
    "go_round",
    "go_int64",
    "GO_EXP_FMA",
    "MIN_INT64",
    "SMALLEST_NONZERO",
]

_INF = math.inf
_F64 = struct.Struct("<d")
_U64 = struct.Struct("<Q")
MIN_INT64 = -(1 << 63)
SMALLEST_NONZERO = 5e-324  # Go's math.SmallestNonzeroFloat64


# --- Go's amd64 math.Log (log_amd64.s) -------------------------------------

_HSQRT2 = 7.07106781186547524401e-01
_LN2HI = 6.93147180369123816490e-01
_LN2LO = 1.90821492927058770002e-10
_L1 = 6.666666666666735130e-01
_L2 = 3.999999999940941908e-01
_L3 = 2.857142874366239149e-01
_L4 = 2.222219843214978396e-01
_L5 = 1.818357216161805012e-01
_L6 = 1.531383769920937332e-01
_L7 = 1.479819860511658591e-01
_MIN_NORMAL = 2.2250738585072014e-308


def go_log(x: float) -> float:
    """Natural log computed with the exact operation sequence of Go's amd64 math.Log."""
    if not 0.0 < x < _INF:
        if x == 0.0:
            return -_INF
        if x != x or x == _INF:
            return x
        return math.nan
    if x >= _MIN_NORMAL:
        f1, ki = math.frexp(x)
    else:  # subnormal input: the assembly does not normalise the mantissa
        bits = _U64.unpack(_F64.pack(x))[0]
        f1 = _F64.unpack(_U64.pack((bits & 0xFFFFFFFFFFFFF) | 0x3FE0000000000000))[0]
        ki = -0x3FE
    if f1 <= _HSQRT2:
        f1 *= 2.0
        ki -= 1
    f = f1 - 1.0
    k = float(ki)
    s = f / (2.0 + f)
    s2 = s * s
    s4 = s2 * s2
    t1 = s2 * (_L1 + s4 * (_L3 + s4 * (_L5 + s4 * _L7)))
    t2 = s4 * (_L2 + s4 * (_L4 + s4 * _L6))
    r = t1 + t2
    hfsq = 0.5 * f * f
    return k * _LN2HI - ((hfsq - (s * (hfsq + r) + k * _LN2LO)) - f)


# --- Go's amd64 math.Exp (exp_amd64.s) -------------------------------------

_LOG2E = 1.4426950408889634073599246810018920
_LN2U = 0.69314718055966295651160180568695068359375
_LN2L = 0.28235290563031577122588448175013436025525412068e-12
_EXP_OVERFLOW = 7.09782712893384e02
# Taylor coefficients 1/n! for n = 8 down to 3 (then 1/2 and 1).
_EXP_C = (
    2.4801587301587301587e-5,
    1.9841269841269841270e-4,
    1.3888888888888888889e-3,
    8.3333333333333333333e-3,
    4.1666666666666666667e-2,
    1.6666666666666666667e-1,
    0.5,
)


def _fma(a: float, b: float, c: float) -> float:
    """Return ``a * b + c`` rounded once, like a hardware fused multiply-add."""
    na, da = a.as_integer_ratio()
    nb, db = b.as_integer_ratio()
    nc, dc = c.as_integer_ratio()
    return (na * nb * dc + nc * da * db) / (da * db * dc)


def go_exp(x: float, fma: bool = True) -> float:
    """e**x with the operation sequence of Go's amd64 math.Exp.

    Go takes the fused multiply-add branch when the CPU has AVX and FMA (every
    x86-64 CPU since about 2013); ``fma=False`` gives the plain SSE2 branch.
    """
    if x != x or x == _INF:
        return x
    if x == -_INF:
        return 0.0
    if x > _EXP_OVERFLOW:
        return _INF
    t = x * _LOG2E
    k = round(t) if -2147483648.0 <= t <= 2147483647.0 else -(1 << 31)  # CVTSD2SL
    e = k + 0x3FF
    if e < -52:
        return 0.0
    if e >= 0x7FF:
        return _INF
    kf = float(k)
    if fma:
        r = _fma(-kf, _LN2L, x - kf * _LN2U)  # exact product: 41-bit constant, |k| < 2**11
        r *= 0.0625
        p = _EXP_C[0]
        for c in _EXP_C[1:]:
            p = _fma(p, r, c)
        p = _fma(p, r, 1.0)
        r *= p
        r *= r + 2.0
        r *= r + 2.0
        r *= r + 2.0
        r = _fma(r + 2.0, r, 1.0)
    else:
        r = x - kf * _LN2U
        r -= kf * _LN2L
        r *= 0.0625
        p = _EXP_C[0]
        for c in _EXP_C[1:]:
            p = p * r + c
        p = p * r + 1.0
        r *= p
        r *= r + 2.0
        r *= r + 2.0
        r *= r + 2.0
        r *= r + 2.0
        r += 1.0
    if e <= 0:  # subnormal result: scaled in two steps, as the assembly does
        return (r * math.ldexp(1.0, k + 1022)) * math.ldexp(1.0, -1022)
    return r * math.ldexp(1.0, k)


# Go picks the FMA branch of math.Exp on CPUs with AVX and FMA.
GO_EXP_FMA = True


# --- Go's math.Pow (pow.go, pure Go on amd64, built on Exp and Log) -------------


def _is_odd_int(x: float) -> bool:
    if abs(x) >= 2.0**53:
        return False  # every float this large is even
    xi, xf = math.modf(x)
    return xf == 0 and int(xi) & 1 == 1


def go_pow(x: float, y: float) -> float:
    """x**y with Go's algorithm: exp(yf * log x) for the fraction, repeated squaring for the rest."""
    if y == 0 or x == 1:
        return 1.0
    if y == 1:
        return x
    if x != x or y != y:
        return math.nan
    if x == 0:
        if y < 0:
            if math.copysign(1.0, x) < 0 and _is_odd_int(y):
                return -_INF
            return _INF
        if math.copysign(1.0, x) < 0 and _is_odd_int(y):
            return x
        return 0.0
    if math.isinf(y):
        if x == -1:
            return 1.0
        if (abs(x) < 1) == (y > 0):
            return 0.0
        return _INF
    if math.isinf(x):
        if x < 0:
            return go_pow(1 / x, -y)
        return 0.0 if y < 0 else _INF
    if y == 0.5 or y == -0.5:
        root = math.sqrt(x) if x >= 0 else math.nan
        return root if y > 0 else 1 / root
    yf, yi = math.modf(abs(y))
    if yf != 0 and x < 0:
        return math.nan
    if yi >= 2.0**63:
        if x == -1:
            return 1.0
        if (abs(x) < 1) == (y > 0):
            return 0.0
        return _INF
    a1 = 1.0
    ae = 0
    if yf != 0:
        if yf > 0.5:
            yf -= 1
            yi += 1
        a1 = go_exp(yf * go_log(x))
    x1, xe = math.frexp(x)
    i = int(yi)
    while i != 0:
        if xe < -(1 << 12) or (1 << 12) < xe:
            ae += xe
            break
        if i & 1 == 1:
            a1 *= x1
            ae += xe
        x1 *= x1
        xe <<= 1
        if x1 < 0.5:
            x1 += x1
            xe -= 1
        i >>= 1
    if y < 0:
        a1 = 1 / a1
        ae = -ae
    return _ldexp(a1, ae)


def _ldexp(frac: float, exp: int) -> float:
    """Go's Ldexp: saturates to 0 or Inf instead of raising."""
    try:
        return math.ldexp(frac, exp)
    except OverflowError:
        return math.copysign(_INF, frac)


# --- Go's math.Gamma (gamma.go) ---------------------------------------------------
# The Cephes rational approximation Go uses, carried as published figures.

_GAM_P = (
    1.60119522476751861407e-04,
    1.19135147006586384913e-03,
    1.04213797561761569935e-02,
    4.76367800457137231464e-02,
    2.07448227648435975150e-01,
    4.94214826801497100753e-01,
    9.99999999999999996796e-01,
)
_GAM_Q = (
    -2.31581873324120129819e-05,
    5.39605580493303397842e-04,
    -4.45641913851797240494e-03,
    1.18139785222060435552e-02,
    3.58236398605498653373e-02,
    -2.34591795718243348568e-01,
    7.14304917030273074085e-02,
    1.00000000000000000320e00,
)
_GAM_S = (
    7.87311395793093628397e-04,
    -2.29549961613378126380e-04,
    -2.68132617805781232825e-03,
    3.47222221605458667310e-03,
    8.33333333333482257126e-02,
)
_EULER = 0.57721566490153286060651209008240243104215933593992
_SQRT_TWO_PI = 2.506628274631000502417
_MAX_STIRLING = 143.01608


def _stirling(x: float) -> tuple[float, float]:
    if x > 200:
        return _INF, 1.0
    s = _GAM_S
    w = 1 / x
    w = 1 + w * ((((s[0] * w + s[1]) * w + s[2]) * w + s[3]) * w + s[4])
    y1 = go_exp(x)
    y2 = 1.0
    if x > _MAX_STIRLING:
        v = go_pow(x, 0.5 * x - 0.25)
        y1, y2 = v, v / y1
    else:
        y1 = go_pow(x, x - 0.5) / y1
    return y1, _SQRT_TWO_PI * w * y2


def go_gamma(x: float) -> float:
    """Go's ``math.Gamma`` for x > 0 (the workload samplers' only domain)."""
    if not x > 0:
        raise ValueError(f"go_gamma is ported for x > 0 only, got {x}")
    if x == _INF:
        return _INF
    if x > 33:
        y1, y2 = _stirling(x)
        return y1 * y2
    z = 1.0
    while x >= 3:
        x = x - 1
        z = z * x
    while x < 2:
        if x < 1e-09:
            return z / ((1 + _EULER * x) * x)
        z = z / x
        x = x + 1
    if x == 2:
        return z
    x = x - 2
    p, q = _GAM_P, _GAM_Q
    num = (((((x * p[0] + p[1]) * x + p[2]) * x + p[3]) * x + p[4]) * x + p[5]) * x + p[6]
    den = ((((((x * q[0] + q[1]) * x + q[2]) * x + q[3]) * x + q[4]) * x + q[5]) * x + q[6]) * x + q[7]
    return z * num / den


# --- conversions ------------------------------------------------------------------


def go_round(x: float) -> float:
    """Go's ``math.Round``: half away from zero (Python's ``round`` is half to even)."""
    if x >= 0.0:
        if x == _INF:
            return x
        whole = math.floor(x)  # x - whole is exact below 2**52 and 0 above
        return float(whole + 1) if x - whole >= 0.5 else float(whole)
    if x != x or x == -_INF:
        return x
    whole = math.ceil(x)
    return float(whole - 1) if whole - x >= 0.5 else float(whole)


def go_int64(x: float) -> int:
    """Go's ``int64(x)`` on amd64: truncation, and MinInt64 for NaN or out-of-range values."""
    if x != x or not -9.223372036854775808e18 <= x < 9.223372036854775808e18:
        return MIN_INT64
    return int(x)


# The libm functions agree with Go's to a few ulps (well under 2**-40 relative, even
# for Pow's error growth at the samplers' arguments); an integer that every value
# within 2**-36 of the libm result maps to is therefore Go's integer too.
_LO = 1.0 - 2.0**-36
_HI = 1.0 + 2.0**-36
_SAFE = 2.0**52


def trunc_or(approx: float, exact) -> int:
    """``go_int64`` of a positive quantity: from ``approx`` when settled, else ``go_int64(exact())``."""
    if 0.0 < approx < _SAFE:
        lo = int(approx * _LO)
        if lo == int(approx * _HI):
            return lo
    return go_int64(exact())


def round_or(approx: float, exact) -> int:
    """``go_int64(go_round(v))`` of a positive quantity, like ``trunc_or``."""
    if 0.0 < approx < _SAFE:
        lo = int(approx * _LO + 0.5)
        if lo == int(approx * _HI + 0.5):
            return lo
    return go_int64(go_round(exact()))
