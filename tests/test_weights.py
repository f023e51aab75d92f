"""The weights container: immutability, conversion, arithmetic, digests and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from disco.errors import WeightsError
from disco.weights import Weights


def small() -> Weights:
    """Three tensors whose insertion order is not alphabetical."""
    return Weights(
        [
            ("zeta.kernel", np.arange(6, dtype=np.float32).reshape(2, 3)),
            ("alpha.bias", np.array([1.5, -2.0], dtype=np.float32)),
            ("mid.kernel", np.full((2, 2, 1), 0.25, dtype=np.float32)),
        ]
    )


# -- construction and immutability ----------------------------------------------------------------
def test_arrays_are_read_only_copies() -> None:
    source = np.array([1.0, 2.0], dtype=np.float32)
    w = Weights({"a": source})

    source[0] = 99.0

    assert w["a"][0] == 1.0
    assert not w["a"].flags.writeable
    with pytest.raises(ValueError):
        w["a"][0] = 5.0
    np.testing.assert_array_equal(w["a"], [1.0, 2.0])


def test_mapping_has_no_setters() -> None:
    w = small()

    with pytest.raises(TypeError):
        w["new"] = np.zeros(1)  # type: ignore[index]
    with pytest.raises(TypeError):
        del w["alpha.bias"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        w.extra = 1  # type: ignore[attr-defined]
    assert list(w) == ["zeta.kernel", "alpha.bias", "mid.kernel"]
    assert not hasattr(w, "update")
    assert not hasattr(w, "pop")


def test_values_become_little_endian_float32() -> None:
    w = Weights(
        [
            ("big_endian_f64", np.array([1.5, -3.25], dtype=">f8")),
            ("ints", np.array([[1, 2], [3, 4]], dtype=np.int64)),
            ("list", [0.1, 0.2]),
        ]
    )

    for arr in w.values():
        assert arr.dtype.str == "<f4"
        assert arr.flags.c_contiguous
    np.testing.assert_array_equal(w["big_endian_f64"], np.array([1.5, -3.25], dtype=np.float32))
    np.testing.assert_array_equal(w["ints"], [[1, 2], [3, 4]])
    assert w["list"][0] == np.float32(0.1)
    assert w.shapes == {"big_endian_f64": (2,), "ints": (2, 2), "list": (2,)}
    assert w.size == 8
    assert w.nbytes == 32


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(WeightsError, match="duplicate weight name 'a'"):
        Weights([("a", [1.0]), ("b", [2.0]), ("a", [3.0])])


@pytest.mark.parametrize("name", ["", 3, None])
def test_empty_or_non_string_names_are_rejected(name: object) -> None:
    with pytest.raises(WeightsError, match="non-empty strings"):
        Weights([(name, [1.0])])  # type: ignore[list-item]


def test_non_numeric_values_are_rejected_with_the_name() -> None:
    with pytest.raises(WeightsError, match="'bad'"):
        Weights({"bad": "not a number"})


# -- arithmetic -----------------------------------------------------------------------------------
def test_add_sub_and_scale() -> None:
    a = Weights([("x", [1.0, 2.0]), ("y", [[3.0]])])
    b = Weights([("x", [0.5, -1.0]), ("y", [[4.0]])])

    total, diff, scaled, scaled_left = a + b, a - b, a * 2.0, 3 * a

    np.testing.assert_array_equal(total["x"], [1.5, 1.0])
    np.testing.assert_array_equal(total["y"], [[7.0]])
    np.testing.assert_array_equal(diff["x"], [0.5, 3.0])
    np.testing.assert_array_equal(diff["y"], [[-1.0]])
    np.testing.assert_array_equal(scaled["x"], [2.0, 4.0])
    np.testing.assert_array_equal(scaled_left["y"], [[9.0]])
    for result in (total, diff, scaled, scaled_left):
        assert list(result) == ["x", "y"]
        assert all(arr.dtype.str == "<f4" for arr in result.values())
    np.testing.assert_array_equal(a["x"], [1.0, 2.0])  # operands untouched


def test_arithmetic_on_mismatched_weights_raises() -> None:
    a = Weights([("x", [1.0, 2.0])])

    with pytest.raises(WeightsError, match="'x'"):
        a + Weights([("x", [1.0, 2.0, 3.0])])
    with pytest.raises(WeightsError, match="missing \\['x'\\]"):
        a - Weights([("y", [1.0, 2.0])])


def test_check_like_names_the_tensor_and_both_shapes() -> None:
    reference = small()
    wrong = Weights(
        [
            ("zeta.kernel", np.zeros((2, 3))),
            ("alpha.bias", np.zeros(3)),
            ("mid.kernel", np.zeros((2, 2, 1))),
        ]
    )

    with pytest.raises(WeightsError) as info:
        wrong.check_like(reference, "update")

    message = str(info.value)
    assert message.startswith("update")
    assert "'alpha.bias'" in message
    assert "(3,)" in message
    assert "(2,)" in message


def test_check_like_reports_missing_and_unexpected_names() -> None:
    reference = Weights([("a", [1.0]), ("b", [2.0])])
    other = Weights([("a", [1.0]), ("c", [2.0])])

    with pytest.raises(WeightsError) as info:
        other.check_like(reference)

    assert "missing ['b']" in str(info.value)
    assert "unexpected ['c']" in str(info.value)
    reference.check_like(Weights([("a", [5.0]), ("b", [6.0])]))  # same names and shapes: fine


def test_check_like_rejects_a_different_order() -> None:
    with pytest.raises(WeightsError):
        Weights([("b", [1.0]), ("a", [2.0])]).check_like(Weights([("a", [1.0]), ("b", [2.0])]))


def test_l2_norm_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    w = Weights([("a", rng.normal(size=(30, 40))), ("b", rng.normal(size=7))])
    expected = np.linalg.norm(np.concatenate([w["a"].ravel(), w["b"]]).astype(np.float64))

    assert w.l2_norm() == pytest.approx(expected, rel=1e-6)
    assert Weights([("a", [3.0]), ("b", [[4.0]])]).l2_norm() == 5.0
    assert Weights({}).l2_norm() == 0.0


@pytest.mark.parametrize("scale", [1e20, 1e-30])
def test_l2_norm_does_not_overflow_or_underflow_in_float32(scale: float) -> None:
    # the squares overflow (1e20) or underflow (1e-30) float32, the norm itself fits
    w = Weights([("a", [3 * scale, 4 * scale])])

    assert w.l2_norm() == pytest.approx(5 * scale, rel=1e-6, abs=0)


# -- flat vectors ---------------------------------------------------------------------------------
def test_flatten_unflatten_round_trip() -> None:
    w = small()

    flat = w.flatten()
    again = w.unflatten(flat * 2)

    assert flat.shape == (w.size,)
    assert flat.dtype.str == "<f4"
    np.testing.assert_array_equal(flat[:6], np.arange(6))
    np.testing.assert_array_equal(flat[6:8], [1.5, -2.0])
    assert list(again) == list(w)
    assert again.shapes == w.shapes
    assert again == w * 2
    assert w.unflatten(flat).digest() == w.digest()


def test_unflatten_of_the_wrong_size_raises() -> None:
    w = small()

    with pytest.raises(WeightsError, match=f"expected {w.size}"):
        w.unflatten(np.zeros(w.size + 1))


def test_flatten_of_empty_weights() -> None:
    assert Weights({}).flatten().shape == (0,)


def test_zeros_like() -> None:
    w = small()

    zeros = Weights.zeros_like(w)

    assert zeros.shapes == w.shapes
    assert list(zeros) == list(w)
    assert zeros.l2_norm() == 0.0


# -- digest ---------------------------------------------------------------------------------------
def test_digest_equal_for_equal_weights() -> None:
    assert small().digest() == small().digest()
    assert len(small().digest()) == 64


def test_digest_changes_with_one_value_name_shape_or_order() -> None:
    base = Weights([("a", [1.0, 2.0, 3.0, 4.0]), ("b", [5.0])])
    variants = {
        "value": Weights([("a", [1.0, 2.0, 3.0, 4.5]), ("b", [5.0])]),
        "name": Weights([("a", [1.0, 2.0, 3.0, 4.0]), ("c", [5.0])]),
        "shape": Weights([("a", [[1.0, 2.0], [3.0, 4.0]]), ("b", [5.0])]),
        "order": Weights([("b", [5.0]), ("a", [1.0, 2.0, 3.0, 4.0])]),
    }

    digests = {kind: w.digest() for kind, w in variants.items()}

    for kind, digest in digests.items():
        assert digest != base.digest(), kind
    assert len(set(digests.values())) == len(digests)


def test_digest_distinguishes_where_names_end_and_values_begin() -> None:
    # "equal digests mean identical weights": the name/value boundary must be encoded
    u = np.frombuffer(b"bcde", dtype="<f4")[0]
    one = Weights([("abcdefghi", np.float32(2.5))])
    two = Weights([("a", u), ("fghi", np.float32(2.5))])

    assert one != two
    assert one.digest() != two.digest()


def test_is_finite() -> None:
    assert small().is_finite()
    assert not Weights([("a", [1.0, np.nan])]).is_finite()
    assert not Weights([("a", [1.0]), ("b", [-np.inf])]).is_finite()


# -- files ----------------------------------------------------------------------------------------
def test_save_load_round_trip_keeps_order(tmp_path: Path) -> None:
    w = small()
    path = tmp_path / "nested" / "w.safetensors"

    w.save(path)
    loaded = Weights.load(path)

    assert list(loaded) == ["zeta.kernel", "alpha.bias", "mid.kernel"]
    assert list(loaded) != sorted(loaded)
    assert loaded == w
    assert loaded.digest() == w.digest()
    assert all(not arr.flags.writeable for arr in loaded.values())
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]  # no temporary left


def test_save_load_empty(tmp_path: Path) -> None:
    Weights({}).save(tmp_path / "empty.safetensors")

    assert len(Weights.load(tmp_path / "empty.safetensors")) == 0


@pytest.mark.parametrize("cut", [0, 5, -3])
def test_load_of_a_corrupt_file_raises(tmp_path: Path, cut: int) -> None:
    good = tmp_path / "good.safetensors"
    small().save(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage" if cut == 0 else data[:cut])

    with pytest.raises(WeightsError, match=r"bad\.safetensors"):
        Weights.load(bad)


def test_load_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot read"):
        Weights.load(tmp_path / "missing.safetensors")


def test_adopt_takes_float32_arrays_without_copying_and_freezes_them() -> None:
    mine = np.arange(6, dtype=np.float32).reshape(2, 3)
    other = [1, 2]  # not a float32 array: copied as by the constructor

    w = Weights.adopt([("a", mine), ("b", other)])

    assert w["a"] is mine and not mine.flags.writeable
    assert w["b"].dtype == np.float32 and w == Weights([("a", mine), ("b", [1.0, 2.0])])
    with pytest.raises(WeightsError, match="duplicate"):
        Weights.adopt([("a", np.zeros(1, np.float32)), ("a", np.zeros(1, np.float32))])
