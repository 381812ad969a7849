"""The one place that imports the compiled cffi module; status codes -> exceptions.

Everything else in lobsim goes through `ffi`, `lib`, `check` and `event_buffer`
from here, so no cdata or bare int code leaks into the public API.
"""
import numpy as np

from lobsim._lobsim_c import ffi, lib
from lobsim._types import check_event_array
from lobsim.errors import (
    BookCorrupted,
    CapacityError,
    DuplicateOrderId,
    InvalidOrder,
    LobError,
    OrderNotFound,
    OrderRejected,
)

# One table: C status code -> Python exception class.
ERROR_TYPES = {
    lib.LOB_ERR_NOMEM: MemoryError,
    lib.LOB_ERR_INVALID_ARG: InvalidOrder,
    lib.LOB_ERR_UNKNOWN_ORDER: OrderNotFound,
    lib.LOB_ERR_DUPLICATE_ORDER: DuplicateOrderId,
    lib.LOB_ERR_BAD_QTY: InvalidOrder,
    lib.LOB_ERR_BAD_PRICE: InvalidOrder,
    lib.LOB_ERR_BAD_SIDE: InvalidOrder,
    lib.LOB_ERR_BAD_KIND: InvalidOrder,
    lib.LOB_ERR_BAD_TIF: InvalidOrder,
    lib.LOB_ERR_WOULD_CROSS: OrderRejected,
    lib.LOB_ERR_CAPACITY: CapacityError,
    lib.LOB_ERR_CORRUPT: BookCorrupted,
}

# Which event field each code is about, for messages naming the field.
ERROR_FIELDS = {
    lib.LOB_ERR_UNKNOWN_ORDER: "order_id",
    lib.LOB_ERR_DUPLICATE_ORDER: "order_id",
    lib.LOB_ERR_BAD_QTY: "qty",
    lib.LOB_ERR_BAD_PRICE: "price",
    lib.LOB_ERR_BAD_SIDE: "side",
    lib.LOB_ERR_BAD_KIND: "kind",
}

ERROR_NAMES = {
    code: ffi.string(lib.lob_strerror(code)).decode() for code in range(-lib.LOB_N_ERRORS + 1, 1)
}


def error_for(code, context):
    """The exception for a negative status code, with `context` leading the message."""
    cls = ERROR_TYPES.get(code, LobError)
    msg = f"{context}: {ERROR_NAMES.get(code, f'error {code}')}"
    if cls is MemoryError:
        return MemoryError(msg)
    return cls(msg)


def check(code, context):
    """Raise the mapped exception if `code` is an error; return it otherwise."""
    if code < 0:
        raise error_for(code, context)
    return code


def event_buffer(events, name="events"):
    """Validate an event array and return (array, cdata pointer, length) for C.

    Refuses anything but a 1-d, C-contiguous array of exactly EVENT_DTYPE, so
    C never reads memory of the wrong layout. An array whose memory is not
    8-byte aligned (possible with np.frombuffer at an odd offset) is copied:
    C reads its int64 fields directly. Keep the returned array alive while C
    uses the pointer.
    """
    check_event_array(events, name)
    if events.dtype.itemsize != ffi.sizeof("lob_event"):
        raise TypeError(f"{name} itemsize {events.dtype.itemsize} != sizeof(lob_event)")
    if len(events) == 0:
        return events, ffi.NULL, 0
    if events.ctypes.data % ffi.alignof("lob_event"):
        events = events.copy()  # fresh numpy allocations are aligned
    return events, ffi.cast("const lob_event *", ffi.from_buffer(events)), len(events)


def apply_error(events, result, code, context):
    """Exception for the event that stopped an apply (status `code`), naming index and field."""
    idx = result.first_error_index
    field = ERROR_FIELDS.get(code)
    ev = events[idx]
    desc = (
        f"event {idx} (kind={int(ev['kind'])}, order_id={int(ev['order_id'])}, side={int(ev['side'])}, "
        f"price={int(ev['price'])}, qty={int(ev['qty'])})"
    )
    if field:
        desc += f", field {field!r}"
    return error_for(code, f"{context}: {desc}")
