"""Instrument: exact decimal ticks and lots; refuses rather than rounds."""
from decimal import Decimal

import numpy as np
import pytest

from lobsim import DataError, Instrument
from lobsim.instrument import parse_decimal_strings


def test_scalar_conversions_are_exact():
    ins = Instrument("BTCUSDT", "0.1", "0.001")
    assert ins.tick_size == Decimal("0.1") and ins.lot_size == Decimal("0.001")
    assert ins.price_to_ticks("61659.7") == 616597
    assert ins.price_to_ticks(Decimal("0.3")) == 3  # 0.1 + 0.2 style float traps do not apply
    assert ins.qty_to_lots("1.486") == 1486
    assert ins.ticks_to_price(616597) == Decimal("61659.7")
    assert ins.lots_to_qty(1486) == Decimal("1.486")


def test_not_a_multiple_raises_naming_value_and_source():
    ins = Instrument("ES", "0.25")
    with pytest.raises(DataError, match=r"feed.csv: price 4810.1 is not a multiple of 0.25"):
        ins.price_to_ticks("4810.1", where="feed.csv")
    with pytest.raises(DataError, match="size 1.5 is not a multiple of 1"):
        ins.qty_to_lots("1.5")
    with pytest.raises(ValueError, match="positive"):
        Instrument("X", "0")
    with pytest.raises(ValueError, match="not a decimal"):
        Instrument("X", "abc")


def test_scaled_integer_arrays():
    ins = Instrument("AMZN", "0.01")
    # LOBSTER prices are USD * 10000
    assert ins.prices_from_scaled([2239500, 2239600], 10_000).tolist() == [22395, 22396]
    with pytest.raises(DataError, match=r"m.csv:.*line 3: price 223.955 is not a multiple of 0.01"):
        ins.prices_from_scaled([2239500, 2239600, 2239550], 10_000, where="m.csv")
    fine = Instrument("X", "0.0001")
    assert fine.prices_from_scaled([22395], 100).tolist() == [2239500]  # unit finer than the data: multiply
    es = Instrument("ES", "0.25")
    assert es.prices_from_scaled(np.array([4810_250_000_000], dtype=np.int64), 10**9).tolist() == [19241]


def test_decimal_strings():
    v, scale = parse_decimal_strings(["61837.63000000", "1", "-0.5", "12.3"])
    assert scale == 10**8 and v.tolist() == [6183763000000, 100000000, -50000000, 1230000000]
    ins = Instrument("X", "0.01", "0.00001")
    assert ins.prices_from_scaled(*parse_decimal_strings(["61837.63000000", "0.01"])).tolist() == [6183763, 1]
    assert ins.qtys_from_scaled(*parse_decimal_strings(["0.00100", "2"])).tolist() == [100, 200000]
    for bad in (["1.2.3"], ["abc"], ["1e5"], [""], ["1."], ["--1"]):
        with pytest.raises(DataError, match="not a decimal number"):
            parse_decimal_strings(bad, where="x.csv")
    with pytest.raises(DataError, match="line 12"):
        parse_decimal_strings(["1", "x"], where="x.csv", line_offset=11)


def test_round_trip_dict():
    ins = Instrument("ESH4", "0.25", "1")
    assert Instrument.from_dict(ins.to_dict()) == ins


def test_decimal_errors_name_the_entry():
    with pytest.raises(DataError, match="cannot share one int64 scale") as e:
        parse_decimal_strings(["1.5", "1234567890", "0.000000001"], where="x.csv")
    assert e.value.line == 2
    with pytest.raises(DataError) as e:
        parse_decimal_strings(["1", "1.0000000000000000001"], where="x.csv")
    assert e.value.line == 2
    v, scale = parse_decimal_strings(["-123456789012345678"])  # 18 digits fit, the sign does not count
    assert v.tolist() == [-123456789012345678] and scale == 1


def test_huge_values_raise_instead_of_rounding():
    """The default decimal context keeps 28 digits: 123456789012345678901234567890.013 / 0.01 used to round."""
    ins = Instrument("X", "0.01")
    with pytest.raises(DataError, match=r"price 123456789012345678901234567890.013 is too large for int64"):
        ins.price_to_ticks("123456789012345678901234567890.013")
    with pytest.raises(DataError, match=r"price 1234567890123456.013 is not a multiple of 0.01"):
        ins.price_to_ticks("1234567890123456.013")
    with pytest.raises(DataError, match=r"price 123456789012345678901234567890.01 is too large for int64"):
        ins.price_to_ticks("123456789012345678901234567890.01")
    # 39 significant digits that divide to an exact int64
    assert ins.price_to_ticks("92233720368547758.07000000000000000000") == 2**63 - 1
    with pytest.raises(DataError, match="too large for int64"):
        ins.price_to_ticks("92233720368547758.08")
    assert ins.price_to_ticks("-92233720368547758.08") == -(2**63)
    with pytest.raises(DataError, match="not a multiple"):  # 1e-999999999 / 0.01 is not 0 ticks
        ins.price_to_ticks("1E-999999999")
    with pytest.raises(DataError, match="too large"):  # bounded work, no giant int
        ins.qty_to_lots("1E+999999999")
    with pytest.raises(DataError, match="not a multiple"):  # long fraction beyond any precision
        ins.qty_to_lots("1." + "0" * 100 + "1")
    assert ins.qty_to_lots("7." + "0" * 10_000) == 7
    assert ins.price_to_ticks("0E+999999") == 0


def test_int_to_decimal_is_exact_for_any_digits():
    ins = Instrument("X", "0.01", "0.0000000000000000000000000000001")
    big = 123456789012345678901234567890123
    assert ins.ticks_to_price(big) == Decimal("1234567890123456789012345678901.23")
    assert ins.lots_to_qty(big) == Decimal("12.3456789012345678901234567890123")
    assert ins.ticks_to_price(np.int64(5)) == Decimal("0.05")
    for bad in (1.5, 2.0, "3", None):  # no silent truncation of floats or parsing of strings
        with pytest.raises(DataError, match="not an integer"):
            ins.ticks_to_price(bad)
        with pytest.raises(DataError, match="not an integer"):
            ins.lots_to_qty(bad)


def test_tick_and_lot_sizes_are_exact_and_named():
    long_tick = "0.000000000000000000000000000000123456789012345678901234567890"  # 30 significant digits
    ins = Instrument("X", long_tick)
    assert ins.tick_size == Decimal(long_tick) and len(ins.tick_size.as_tuple().digits) == 30
    seven = ins.ticks_to_price(7)  # 31 digits: more than the default context's 28
    assert seven == Decimal("0." + "0" * 30 + "864197523086419752308641975230") and ins.price_to_ticks(seven) == 7
    with pytest.raises(DataError, match="not a multiple"):  # what the default context makes of it
        ins.price_to_ticks(Decimal(long_tick) * 7)
    for bad in ("abc", "", "nan", "inf", "-inf", None, True, [1], {"a": 1}):
        with pytest.raises(DataError, match="tick_size"):
            Instrument("X", bad)
        with pytest.raises(DataError, match="lot_size"):
            Instrument("X", "0.01", bad)
    for bad in ("0", "-1", "-0.01", "0E+5"):
        with pytest.raises(DataError, match="tick_size must be positive"):
            Instrument("X", bad)
    with pytest.raises(DataError, match="tick_size 0.01 is not a decimal string"):
        Instrument.from_dict({"symbol": "X", "tick_size": 0.01, "lot_size": "1"})
    with pytest.raises(DataError, match="tick_size 'abc' is not a decimal number"):
        Instrument.from_dict({"symbol": "X", "tick_size": "abc", "lot_size": "1"})
    with pytest.raises(DataError, match="symbol"):
        Instrument.from_dict({"symbol": ["X"], "tick_size": "0.01", "lot_size": "1"})


def test_scaled_arrays_with_long_units_do_not_round():
    # 0.0100000000000000000000000000001 * 10**4 has 31 digits: the default context rounded it to 100
    odd = Instrument("X", "0.0100000000000000000000000000001")
    with pytest.raises(DataError, match="does not fit data scale"):
        odd.prices_from_scaled([100], 10_000)
    huge = Instrument("X", "1E+30")  # a step beyond int64: only zero converts
    assert huge.prices_from_scaled([0, 0], 100).tolist() == [0, 0]
    with pytest.raises(DataError, match="line 2: price 0.01 is not a multiple of 1E\\+30"):
        huge.prices_from_scaled([0, 1], 100)
    tiny = Instrument("X", "1E-30")  # finer than int64 can multiply into
    with pytest.raises(DataError, match="does not fit data scale"):
        tiny.prices_from_scaled([1], 100)


def test_decimal_strings_with_huge_values():
    for bad in (["123456789012345678901234567890.013"], ["1" * 19], ["9" * 1000], ["0." + "1" * 19]):
        with pytest.raises(DataError, match="line 1"):
            parse_decimal_strings(bad, where="x.csv")
    v, scale = parse_decimal_strings(["0" * 50 + "123456789012345678"])  # leading zeros are not digits of value
    assert v.tolist() == [123456789012345678] and scale == 1
    v, scale = parse_decimal_strings(["-0.000000000000000001", "0.000000000000000009"])
    assert v.tolist() == [-1, 9] and scale == 10**18
