"""Exceptions of lobsim. Each also derives from the builtin a caller would expect."""


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
