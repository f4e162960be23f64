# setuptools reads cffi_modules only from setup(); everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["dpdk_shim/build_core.py:ffi", "dpdk_shim/build_dpdk.py:ffi", "dpdk_shim/build_xsk.py:ffi"])
