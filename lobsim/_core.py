"""The one place that imports the compiled cffi module; status codes -> exceptions.

Everything else in lobsim goes through `ffi`, `lib`, `check` and `event_buffer`
from here, so no cdata or bare int code leaks into the public API.
"""
import os
import sys

try:
    from lobsim._lobsim_c import ffi, lib
except ImportError as exc:
    # Typical cause: Python started in the repository root after `pip install .`
    # imports this source tree, where the compiled module was never built.
    _here = os.path.dirname(os.path.abspath(__file__))
    if isinstance(exc, ModuleNotFoundError) and exc.name == "lobsim._lobsim_c":
        _why = f"lobsim's C core is not built in {_here}"
    else:  # present but unloadable (stale build, wrong platform): say what the loader said
        _why = f"lobsim's C core in {_here} cannot be loaded ({' '.join(str(exc).split())})"
    raise ImportError(f"{_why}: run `pip install -e .` from the repository root "
                      "(or install lobsim and run Python outside the source tree)") from None
from lobsim._types import check_event_array
from lobsim.errors import STATUS_INFO, event_error, status_error

# Names of the status codes, the keys of ApplyResult.by_reason.
ERROR_NAMES = {int(code): name for code, (name, _, _) in STATUS_INFO.items()}


def check(code, context):
    """Raise the mapped exception if `code` is an error; return it otherwise."""
    if code < 0:
        raise status_error(code, context)
    return code


def unwrap_events(events):
    """The array of a lobsim.data.Events, anything else unchanged (no import of lobsim.data)."""
    mod = sys.modules.get("lobsim.data.events")  # an Events exists only once its module is loaded
    if mod is not None and isinstance(events, mod.Events):
        return events.array
    return events


def event_buffer(events, name="events"):
    """Validate an event array (or an Events: its array) and return (array, cdata pointer, length) for C.

    Refuses anything but a 1-d, C-contiguous array of exactly EVENT_DTYPE, so
    C never reads memory of the wrong layout. An array whose memory is not
    8-byte aligned (possible with np.frombuffer at an odd offset) is copied:
    C reads its int64 fields directly. Keep the returned array alive while C
    uses the pointer.
    """
    events = unwrap_events(events)
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
    idx = int(result.first_error_index)
    return event_error(code, idx, events[idx], context)
