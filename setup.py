# setuptools needs setup() to take cffi_modules; all metadata is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["csrc/build_ffi.py:ffibuilder"])
