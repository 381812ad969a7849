"""Every numpy dtype mirrors its C struct exactly (size and each field's offset)."""
import numpy as np
import pytest

import lobsim
import lobsim.metrics
from lobsim._core import ffi, lib


@pytest.mark.parametrize(
    "dtype, struct",
    [(lobsim.EVENT_DTYPE, "lob_event"), (lobsim.FILL_DTYPE, "lob_fill")],
)
def test_dtype_mirrors_struct(dtype, struct):
    assert dtype.itemsize == ffi.sizeof(struct)
    c_fields = dict(ffi.typeof(struct).fields)
    for name in dtype.names:
        assert dtype.fields[name][1] == ffi.offsetof(struct, name), name
        assert dtype.fields[name][0].itemsize == ffi.sizeof(c_fields[name].type), name
    assert list(c_fields) == list(dtype.names)


def test_event_dtype_survives_concatenate():
    a = lobsim.empty_events(2)
    assert np.concatenate([a, a]).dtype == lobsim.EVENT_DTYPE


def test_enums_mirror_header():
    for kind in lobsim.EventKind:
        assert getattr(lib, f"LOB_EV_{kind.name}") == kind.value
    for tif in lobsim.TimeInForce:
        assert getattr(lib, f"LOB_TIF_{tif.name}") == tif.value
    assert lib.LOB_FLAG_SNAPSHOT == lobsim.Flag.SNAPSHOT
    assert lib.LOB_FLAG_BATCH_END == lobsim.Flag.BATCH_END
    assert lib.LOB_FLAG_HIDDEN == lobsim.Flag.HIDDEN
    assert lib.LOB_FLAG_PRE_SNAPSHOT == lobsim.Flag.PRE_SNAPSHOT
    for st in lobsim.TradingStatus:
        assert getattr(lib, f"LOB_STATUS_{st.name}") == st.value
    assert lib.LOB_SIDE_BID == lobsim.Side.BID and lib.LOB_SIDE_ASK == lobsim.Side.ASK


def test_status_table_mirrors_header():
    from lobsim.errors import STATUS_INFO, Status

    assert lib.LOB_N_ERRORS == len(Status)
    for status in Status:
        assert getattr(lib, f"LOB_{status.name}" if status == Status.OK else f"LOB_ERR_{status.name}") == status
        if status != Status.OK:
            assert ffi.string(lib.lob_strerror(status)).decode() == STATUS_INFO[status][0]


@pytest.mark.parametrize(
    "dtype, struct",
    [(lobsim._types.SIM_MSG_DTYPE, "lob_sim_msg"), (lobsim._types.SIM_POS_DTYPE, "lob_sim_pos"),
     (lobsim.metrics.SIM_MARKOUT_DTYPE, "lob_sim_markout")],
)
def test_sim_dtypes_mirror_structs(dtype, struct):
    test_dtype_mirrors_struct(dtype, struct)


def test_sim_enums_mirror_header():
    for state in lobsim.OrderState:
        assert getattr(lib, f"LOB_ORD_{state.name}") == state.value
    for reason in lobsim.RejectReason:
        assert getattr(lib, f"LOB_REJ_{reason.name}") == reason.value
    # constants the Python layer writes into lob_sim_config / reads from lob_sim_msg
    from lobsim import latency, queue
    from lobsim.sim import _backtest

    assert (latency._LAT_CONSTANT, latency._LAT_LOGNORMAL, latency._LAT_EMPIRICAL) == (
        lib.LOB_LAT_CONSTANT, lib.LOB_LAT_LOGNORMAL, lib.LOB_LAT_EMPIRICAL)
    assert list(latency._KINDS.values()) == [lib.LOB_REQ_NEW, lib.LOB_REQ_CANCEL, lib.LOB_REQ_MODIFY]
    assert (queue._RISK_AVERSE, queue._POWER, queue._LOG, queue._CUSTOM) == (
        lib.LOB_QUEUE_RISK_AVERSE, lib.LOB_QUEUE_POWER, lib.LOB_QUEUE_LOG, lib.LOB_QUEUE_CUSTOM)
    assert (_backtest._MSG_ORDER, _backtest._MSG_FILL, _backtest._REQ_NEW) == (
        lib.LOB_MSG_ORDER, lib.LOB_MSG_FILL, lib.LOB_REQ_NEW)
    assert ffi.sizeof("lob_latency") == 88 and ffi.offsetof("lob_sim_config", "latency") % 8 == 0


def test_result_dtypes_carry_the_sim_fields():
    from lobsim._types import FILLS_DTYPE, ORDERS_DTYPE, POSITION_DTYPE, SIM_MSG_DTYPE, SIM_POS_DTYPE

    assert set(FILLS_DTYPE.names) <= set(SIM_MSG_DTYPE.names)
    assert set(ORDERS_DTYPE.names) <= set(SIM_MSG_DTYPE.names)
    assert set(POSITION_DTYPE.names) <= set(SIM_POS_DTYPE.names)
    assert FILLS_DTYPE["maker"] == np.bool_


def test_metrics_constants_mirror_header():
    from lobsim.metrics import _compute, _dtypes

    assert (lib.LOB_POS_FILL, lib.LOB_POS_TIMER, lib.LOB_POS_SAMPLE) == \
        (_compute.KIND_FILL, _compute.KIND_TIMER, _compute.KIND_SAMPLE)
    assert len(ffi.new("lob_sim_config *").markout_ns) == _dtypes.N_HORIZONS
