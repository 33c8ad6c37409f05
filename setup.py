"""Build the tq._tq extension: the library's C sources plus python/tq/_tq.c.

Metadata lives in pyproject.toml; this file only describes the extension,
because its source list is a glob over src/ (the same one CMakeLists.txt uses).
"""
import glob
import os
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def rel_glob(pattern):
    # setuptools wants source paths relative to setup.py
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern)))


sources = []
for part in ("core", "kernels", "quant", "index", "kv", "io"):
    sources += rel_glob(os.path.join("src", part, "*.c"))
sources.append(os.path.join("python", "tq", "_tq.c"))

depends = rel_glob(os.path.join("include", "*.h")) + rel_glob(os.path.join("src", "*", "*.h"))

ext = Extension(
    "tq._tq",
    sources=sources,
    depends=depends,
    include_dirs=["include", "src"],
    # -ffp-contract=off keeps codes bit-identical across machines (as in
    # CMakeLists.txt). No -mavx*/-march flags: the kernels use per-function
    # target attributes and pick the table at run time. TQ_HAVE_HDF5 is not
    # defined: HDF5 input reports "built without HDF5 support".
    extra_compile_args=["-std=c11", "-O2", "-ffp-contract=off", "-fvisibility=hidden"],
    libraries=["m", "pthread"],
    # tq.h gives the tq_* API default visibility, so the module exports it too;
    # -Bsymbolic binds the module's own calls to its own copy even if another
    # libtq.so is already loaded into the process.
    extra_link_args=["-Wl,-Bsymbolic"] if sys.platform.startswith("linux") else [],
)

setup(
    ext_modules=[ext],
    # keep setuptools' objects out of build/, which is the CMake build directory
    options={
        "build": {"build_base": os.path.join("python", "build")},
        "egg_info": {"egg_base": "python"},
    },
)
