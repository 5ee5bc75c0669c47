"""Awkward and optional dependencies, imported here, lazily, and nowhere else.

- :func:`open3d` — required, but its Linux wheel links the system library ``libusb-1.0``; where the
  system lacks it we preload the copy shipped by the ``libusb-package`` wheel, so no root is needed.
- :func:`tinycudann` — optional GPU backend; a missing package gives one line saying how to install it.
- :func:`tensorboard_writer` — optional training logs; ``None`` when TensorBoard is not installed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


class MissingDependency(ImportError):
    """An optional or system dependency is missing; the message says how to install it."""


THREADS = 0
"""Threads one native call of preprocessing may use (Open3D ray casting and closest points, scipy's
KD-tree queries); 0 = all cores. A process pool's workers use 1 each (see :func:`single_threaded`)."""


def set_threads(count: int) -> None:
    """Limit the preprocessing's native calls to ``count`` threads in this process (0 = all cores)."""
    global THREADS
    THREADS = int(count)


def single_threaded() -> None:
    """Make this process use one core: for the workers of a process pool, which is the parallelism.
    Native libraries each start a thread per core otherwise, and the workers' threads then fight
    over the cores (measured, two workers on two cores: 1.58-1.59 meshes/s before, 1.63-1.75 after). Pools
    already loaded (numpy's OpenBLAS) are limited through threadpoolctl; libraries loaded later
    read the environment (OpenMP, OpenBLAS, MKL, and libigl's ``IGL_NUM_THREADS``)."""
    import os

    from threadpoolctl import threadpool_limits

    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", IGL_NUM_THREADS="1")
    threadpool_limits(1)
    set_threads(1)


@functools.cache
def open3d():
    """Import and return the ``open3d`` module (``open3d`` or ``open3d-cpu`` wheel)."""
    if sys.platform.startswith("linux") and ctypes.util.find_library("usb-1.0") is None:
        try:
            import libusb_package

            path = libusb_package.get_library_path()
            if path is not None:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except ImportError:
            pass
    try:
        import open3d as o3d
    except ImportError as e:
        if "libusb" in str(e):
            raise MissingDependency(
                "open3d needs libusb-1.0: `pip install libusb-package` or `apt-get install libusb-1.0-0`"
            ) from None
        raise MissingDependency(f"open3d is not importable ({e}): `pip install open3d-cpu` (or open3d)") from None
    return o3d


@functools.cache
def tinycudann():
    """Import and return ``tinycudann``, or raise :class:`MissingDependency` with the install route."""
    try:
        import tinycudann as tcnn
    except ImportError:
        raise MissingDependency(
            "backend=tcnn needs tinycudann, which has no PyPI wheel: with CUDA and a compiler, "
            "pip install git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch"
        ) from None
    except OSError as e:  # the package raises EnvironmentError at import when it finds no usable GPU
        raise MissingDependency(f"tinycudann is installed but cannot run here ({str(e).splitlines()[0]}); use backend=torch") from None
    return tcnn


TENSORBOARD_INSTALL = "pip install tensorboard"


def tensorboard_writer(required: bool = False):
    """TensorBoard's ``SummaryWriter`` class, or ``None`` when TensorBoard is not installed.

    ``required``: raise :class:`MissingDependency` (one line, with the install command) instead of
    returning ``None``.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        if required:
            raise MissingDependency(f"tensorboard=on needs TensorBoard: {TENSORBOARD_INSTALL} (or tensorboard=auto to go without)") from None
        return None
    return SummaryWriter


def tune_glibc_malloc() -> None:
    """Keep glibc from returning large tensor buffers to the OS after every step.

    By default glibc serves allocations above a (dynamic) threshold with fresh ``mmap`` pages and
    unmaps them on free, so a CPU training or fitting loop page-faults its activations in again at
    every step: measured here, 12.3 s of system time and 4.4M page faults for 2M decoder queries,
    against 1.3 s and 0.2M with the thresholds raised. No-op outside glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)
