"""Builds the optional fused CPU projection kernel (plain C, loaded with ctypes).

Everything else is in pyproject.toml. The extension is optional: where no C compiler is
available the install still succeeds and ogan falls back to its multi-tensor torch path.
"""

import sys

from setuptools import Extension, setup

compile_args = ["-O3", "-std=c11"]
link_args = []
if sys.platform.startswith("linux"):
    # OpenMP from GCC; torch ships the same libgomp soname, so one runtime serves both.
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

setup(
    ext_modules=[
        Extension(
            "ogan._ortho_cpu",
            sources=["ogan/_csrc/ortho_cpu.c"],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            optional=True,
        )
    ]
)
