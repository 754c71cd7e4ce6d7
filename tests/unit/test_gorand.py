"""Bit-exact checks of ``blis_gym.gorand`` against Go's ``math/rand``.

The figures in ``tests/data/gorand_expected.json`` were produced by Go 1.27's
``math/rand`` (go1.27.3, linux/amd64) with ``rand.New(rand.NewSource(seed))``,
by a throwaway Go program kept outside this repository. Floats are stored as
IEEE-754 bit patterns in hex, so every comparison here is exact.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import struct
from typing import Any

import pytest
from testkit import DATA

from blis_gym import gomath, gorand
from blis_gym.gorand import GoRand, IntnStream, fnv1a64, subsystem_seed

DATA: dict[str, Any] = json.loads((DATA / "gorand_expected.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = DATA["cases"]
CASE_IDS = [f"seed={c['seed']}" for c in CASES]


def hx(f: float) -> str:
    """float64 bit pattern as 16 hex digits."""
    return "%016x" % struct.unpack("<Q", struct.pack("<d", f))[0]


def hx32(f: float) -> str:
    """float32 bit pattern as 8 hex digits."""
    return "%08x" % struct.unpack("<I", struct.pack("<f", f))[0]


def from_hx(h: str) -> float:
    """float64 from 16 hex digits."""
    return struct.unpack("<d", struct.pack("<Q", int(h, 16)))[0]


def test_tables_are_gos_float32_values() -> None:
    t = DATA["tables"]
    assert list(gorand._KN) == t["kn"]
    assert list(gorand._KE) == t["ke"]
    for name in ("wn", "fn", "we", "fe"):
        assert [hx32(v) for v in getattr(gorand, "_" + name.upper())] == t[name], name


def test_fnv1a64() -> None:
    for text, expected in DATA["fnv1a64"].items():
        assert fnv1a64(text) == expected, text


def test_subsystem_seed() -> None:
    for seed, name, expected in DATA["subsystem_seed"]:
        assert subsystem_seed(seed, name) == expected, (seed, name)
    assert subsystem_seed(42, "workload") == 42


def test_go_log() -> None:
    for x, expected in DATA["math"]["log"]:
        assert hx(gomath.go_log(from_hx(x))) == expected, x


@pytest.mark.parametrize("fma", [True, False])
def test_go_exp(fma: bool) -> None:
    col = 1 if fma else 2
    for row in DATA["math"]["exp"]:
        assert hx(gomath.go_exp(from_hx(row[0]), fma)) == row[col], row[0]


def test_exp_f32_shortcut_matches_exact_port() -> None:
    inputs = [from_hx(row[0]) for row in DATA["math"]["exp"]]
    inputs = [z for z in inputs if z <= 0.0]
    # Arguments whose exp lands next to a float32 rounding midpoint take the slow path.
    for k in range(1, 300):
        lo = gorand._f32(math.exp(-k / 37.0))
        lo_bits = struct.unpack("<I", struct.pack("<f", lo))[0]
        hi = struct.unpack("<f", struct.pack("<I", lo_bits + 1))[0]
        z = math.log((lo + hi) / 2)
        inputs += [z, math.nextafter(z, 0.0), math.nextafter(z, -math.inf)]
    for z in inputs:
        assert gorand._exp_f32(z) == gorand._f32(gomath.go_exp(z, gomath.GO_EXP_FMA)), z


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_raw_integers(case: dict[str, Any]) -> None:
    for method in ("int63", "uint64", "int31", "uint32"):
        r = GoRand(case["seed"])
        assert [getattr(r, method)() for _ in case[method]] == case[method], method


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_uniform_floats(case: dict[str, Any]) -> None:
    r = GoRand(case["seed"])
    assert [hx(r.float64()) for _ in case["float64"]] == case["float64"]
    r = GoRand(case["seed"])
    assert [hx32(r.float32()) for _ in case["float32"]] == case["float32"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bounded_integers(case: dict[str, Any]) -> None:
    for method in ("intn", "int31n", "int63n"):
        for n, expected in case[method].items():
            r = GoRand(case["seed"])
            fn = getattr(r, method)
            assert [fn(int(n)) for _ in expected] == expected, (method, n)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_perm_and_shuffle(case: dict[str, Any]) -> None:
    for n, expected in case["perm"].items():
        assert GoRand(case["seed"]).perm(int(n)) == expected, n
    r = GoRand(case["seed"])
    items = list(range(50))

    def swap(i: int, j: int) -> None:
        items[i], items[j] = items[j], items[i]

    r.shuffle(len(items), swap)
    r.shuffle(len(items), swap)
    assert items == case["shuffle50x2"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_norm_float64(case: dict[str, Any]) -> None:
    r = GoRand(case["seed"])
    assert [hx(r.norm_float64()) for _ in case["norm"]] == case["norm"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_exp_float64(case: dict[str, Any]) -> None:
    r = GoRand(case["seed"])
    assert [hx(r.exp_float64()) for _ in case["exp"]] == case["exp"]


def _replay(r: GoRand, op: str, arg: int) -> Any:
    """Apply one recorded call to ``r`` and return its value in the JSON encoding."""
    if op in ("float64", "norm_float64", "exp_float64"):
        return hx(getattr(r, op)())
    if op in ("intn", "int63n", "int31n", "perm"):
        return getattr(r, op)(arg)
    return getattr(r, op)()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_interleaved_calls(case: dict[str, Any]) -> None:
    r = GoRand(case["seed"])
    for step, (op, arg, expected) in enumerate(case["mix"]):
        assert _replay(r, op, arg) == expected, (step, op, arg)


@pytest.mark.parametrize("cut", [0, 1, 272, 273, 500])
def test_pickle_copy_and_reseed_keep_the_stream(cut: int) -> None:
    case = CASES[2]
    r = GoRand(case["seed"])
    for _ in range(cut):
        r.int63()
    clones = [pickle.loads(pickle.dumps(r)), copy.deepcopy(r), copy.copy(r)]
    rest = [r.int63() for _ in range(700)]
    for c in clones:
        assert [c.int63() for _ in range(700)] == rest
    r.seed(case["seed"])
    assert [r.int63() for _ in range(20)] == case["int63"]


def test_invalid_arguments() -> None:
    r = GoRand(1)
    calls = [
        lambda: r.intn(0),
        lambda: r.int31n(-1),
        lambda: r.int63n(0),
        lambda: r.int31n(1 << 31),
        lambda: r.perm(-1),
        lambda: r.shuffle(-1, lambda i, j: None),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid argument|needs 0 < n"):
            call()


@pytest.mark.parametrize("n", [128000, 1 << 20, (1 << 30) + 1])
def test_array_draws_match_scalar_draws(n: int) -> None:
    """intn_array and uint64_array hand out the stream scalar calls would, across chunk ends
    and rejections ((1 << 30) + 1 rejects about half the raw values)."""
    sizes = [0, 1, 5, 272, 273, 274, 600, 5000, 3, 9000, 1]
    a, b = GoRand(42), GoRand(42)
    for k, size in enumerate(sizes):
        got = a.intn_array(n, size).tolist() if k % 2 == 0 else a.uint64_array(size).tolist()
        want = [b.intn(n) for _ in range(size)] if k % 2 == 0 else [b.uint64() for _ in range(size)]
        assert got == want, (k, size)
        assert a.norm_float64() == b.norm_float64()
        c = pickle.loads(pickle.dumps(a))
        assert [c.int63() for _ in range(700)] == [a.int63() for _ in range(700)]
        [b.int63() for _ in range(700)]


@pytest.mark.parametrize("n", [128000, 1 << 20, (1 << 30) + 1])
def test_intn_stream_matches_the_generator(n: int) -> None:
    """IntnStream's normal draws, token runs and Intn picks are the generator's own values in
    the generator's order: across chunk ends, over rejected values, through the normal
    sampler's slow path; close() hands the position back."""
    a, b = GoRand(7), GoRand(7)
    s = IntnStream(a, n)
    sizes = [0, 1, 5, 272, 273, 274, 600, 5000, 3, 9000, 1, 20000, 2]
    for rep in range(40):
        for size in sizes:
            got = s.take(size)
            assert not got.flags.writeable
            assert got.tolist() == [b.intn(n) for _ in range(size)], (rep, size)
            assert s.norm_float64() == b.norm_float64()
            assert s.norm_float64() == b.norm_float64()
        assert s.intn(3) == b.intn(3)
    s.close()
    assert [a.uint64() for _ in range(1000)] == [b.uint64() for _ in range(1000)]
    with pytest.raises(ValueError):
        IntnStream(a, 0)


def test_inverse_of_rn_is_the_exact_quotient_rounded_once():
    from fractions import Fraction

    assert gorand._INV_RN == float(Fraction(1) / Fraction("3.442619855899"))
