"""cffi API-mode build of the C core (run by setuptools through cffi_modules).

The cdef is the public header itself (csrc/lobsim.h) with its preprocessor
lines dropped, so declarations exist in exactly one place.
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["book.c", "lobster.c", "synthetic.c", "venue.c"]


def header_cdef(path):
    with open(path, encoding="utf-8") as f:
        return "".join(line for line in f if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef(header_cdef(os.path.join(HERE, "lobsim.h")))
ffibuilder.set_source(
    "lobsim._lobsim_c",
    '#include "lobsim.h"',
    sources=[os.path.relpath(os.path.join(HERE, s)) for s in SOURCES],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
