"""Exceptions of lobsim. Each also derives from the builtin a caller would expect."""
import enum



class LobError(Exception):
    """Base class of every lobsim error."""


class OrderNotFound(LobError, KeyError):
    """The order id is not in the book."""

    def __str__(self):  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class DuplicateOrderId(LobError, ValueError):
    """The order id is already resting in the book."""


class InvalidOrder(LobError, ValueError):
    """A field of an order or event is out of range (qty, price, side, kind, tif)."""


class OrderRejected(LobError, ValueError):
    """The order was refused by matching rules (e.g. post-only that would cross)."""


class CapacityError(LobError, ValueError):
    """An output buffer was too small."""


class BookCorrupted(LobError, AssertionError):
    """The book's invariant checker found a violation."""


class DataError(LobError, ValueError):
    """Input data is malformed or inconsistent; names file, line/record and reason."""

    def __init__(self, reason, *, file=None, line=None, detail=None):
        self.reason = reason
        self.file = None if file is None else str(file)
        self.line = line
        self.detail = detail
        where = []
        if self.file is not None:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        msg = reason if detail is None else f"{reason}: {detail}"
        super().__init__(f"{':'.join(where)}: {msg}" if where else msg)


class Status(enum.IntEnum):
    """The C core's status codes (csrc/lobsim.h `LOB_OK` / `LOB_ERR_*`).

    Mirrored in pure Python so the reference book raises exactly what the C
    book raises without needing the compiled core; tests/test_abi.py checks
    the values and names against the header and lob_strerror().
    """

    OK = 0
    NOMEM = -1
    INVALID_ARG = -2
    UNKNOWN_ORDER = -3
    DUPLICATE_ORDER = -4
    BAD_QTY = -5
    BAD_PRICE = -6
    BAD_SIDE = -7
    BAD_KIND = -8
    BAD_TIF = -9
    WOULD_CROSS = -10
    CAPACITY = -11
    CORRUPT = -12


# The one table: status -> (name as lob_strerror() gives it, exception class, event field it is about).
STATUS_INFO = {
    Status.NOMEM: ("out of memory", MemoryError, None),
    Status.INVALID_ARG: ("invalid argument", InvalidOrder, None),
    Status.UNKNOWN_ORDER: ("unknown order id", OrderNotFound, "order_id"),
    Status.DUPLICATE_ORDER: ("duplicate order id", DuplicateOrderId, "order_id"),
    Status.BAD_QTY: ("invalid quantity", InvalidOrder, "qty"),
    Status.BAD_PRICE: ("invalid price", InvalidOrder, "price"),
    Status.BAD_SIDE: ("invalid side", InvalidOrder, "side"),
    Status.BAD_KIND: ("invalid event kind for this book", InvalidOrder, "kind"),
    Status.BAD_TIF: ("invalid time in force", InvalidOrder, None),
    Status.WOULD_CROSS: ("post-only order would cross", OrderRejected, None),
    Status.CAPACITY: ("output buffer too small", CapacityError, None),
    Status.CORRUPT: ("book invariant violated", BookCorrupted, None),
}


def status_error(code, context):
    """The exception for a negative status code, with `context` leading the message."""
    name, cls, _ = STATUS_INFO.get(code, (f"error {code}", LobError, None))
    return cls(f"{context}: {name}")


def event_error(code, index, event, context):
    """The exception for event `index` (a mapping or record with the event fields) refused with `code`.

    It carries `event_index` (the index in the array given) and `event_detail`
    (what follows "event <index>" in the message), so a caller that applied a
    chunk of a larger file can name the event by its index in the file."""
    field = STATUS_INFO.get(code, (None, None, None))[2]
    detail = (
        f"(kind={int(event['kind'])}, order_id={int(event['order_id'])}, "
        f"side={int(event['side'])}, price={int(event['price'])}, qty={int(event['qty'])})"
    )
    if field:
        detail += f", field {field!r}"
    err = status_error(code, f"{context}: event {index} {detail}")
    detail += f": {STATUS_INFO.get(code, (f'error {code}',))[0]}"
    err.event_index, err.event_detail = index, detail
    return err
