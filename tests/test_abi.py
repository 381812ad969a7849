"""Every numpy dtype mirrors its C struct exactly (size and each field's offset)."""
import numpy as np
import pytest

import lobsim
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
