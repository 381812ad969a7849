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
