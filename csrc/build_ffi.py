"""cffi API-mode build of the C core (run by setuptools through cffi_modules).

The cdef is the public headers themselves (csrc/lobsim.h, then one header
per C reader) with their preprocessor lines dropped, so declarations exist in
exactly one place.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["book.c", "lobster.c", "synthetic.c", "venue.c", "jsonlines.c"]  # jsonlines.c: internal (no cdef)
# C readers: each a pair (source, header) declared through its own header.
READERS = [("binance.c", "binance.h"), ("bybit.c", "bybit.h"), ("dbn.c", "dbn.h"), ("kraken.c", "kraken.h"),
           ("tardis.c", "tardis.h")]
READERS = [(c, h) for c, h in READERS if os.path.exists(os.path.join(HERE, c))]
SOURCES += [c for c, _ in READERS]
HEADERS = ["lobsim.h"] + [h for _, h in READERS]


def header_cdef(path):
    with open(path, encoding="utf-8") as f:
        return "".join(line for line in f if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef("".join(header_cdef(os.path.join(HERE, h)) for h in HEADERS))
ffibuilder.set_source(
    "lobsim._lobsim_c",
    "".join(f'#include "{h}"\n' for h in HEADERS),
    sources=[os.path.relpath(os.path.join(HERE, s)) for s in SOURCES],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
