"""ONNX Runtime latency: batch 1, median over timed runs after warm-up runs."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Sequence

import numpy as np

from .runtime import make_session

__all__ = [
    "INT8_DOT_FLAGS",
    "all_threads",
    "cpu_info",
    "measure_latencies",
    "measure_latency",
    "thread_settings",
]

# CPU flags (Linux /proc/cpuinfo names) of the int8 dot-product instructions ONNX Runtime's
# int8 convolution / GEMM kernels need to beat fp32: x86 VNNI and AMX, ARM dot-product and i8mm.
# Without them (plain AVX2) QLinearConv ran no faster than fp32 Conv in our measurement.
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def all_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_settings() -> list[int]:
    """The intra-op thread counts latency is measured with: 1 and all usable CPUs."""
    n = all_threads()
    return [1] if n == 1 else [1, n]


def cpu_info(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """What the latency numbers were measured on.

    Returns:
        ``cpu`` (model name), ``machine`` (``x86_64``, ``aarch64``...), ``threads`` (usable CPUs),
        ``int8_dot`` (the :data:`INT8_DOT_FLAGS` this CPU has; ``None`` where the flags cannot be
        read, i.e. not Linux) and ``onnxruntime`` (version).
    """
    import onnxruntime

    name, flags = None, None
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware", "cpu model") and name is None:
                    name = value.strip()
                elif key in ("flags", "features") and flags is None:
                    flags = set(value.split())
    except OSError:
        pass
    return dict(
        cpu=name or platform.processor() or None,
        machine=platform.machine(),
        threads=all_threads(),
        int8_dot=None if flags is None else [f for f in INT8_DOT_FLAGS if f in flags],
        onnxruntime=onnxruntime.__version__,
    )


def measure_latency(
    path: str,
    threads: int,
    warmup: int = 10,
    runs: int = 50,
    image: np.ndarray | None = None,
) -> float:
    """Median wall time of one ``session.run`` in milliseconds.

    Args:
        path: the .onnx file (its input shape is static).
        threads: ONNX Runtime intra-op threads.
        warmup / runs: discarded runs, timed runs.
        image: the input, Array[1, 3, H, W]; default a fixed random one.
    """
    session = make_session(path, threads)
    feed = _feed(session, image)
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def measure_latencies(
    paths: Sequence[str],
    threads: Sequence[int],
    warmup: int = 10,
    runs: int = 50,
    image: np.ndarray | None = None,
    rounds: int = 5,
) -> dict[str, dict[str, float]]:
    """Latency of several models, interleaved so that machine noise hits them alike.

    For each thread setting, ``rounds`` times in turn: every model gets a fresh session,
    ``warmup`` runs and ``runs / rounds`` timed runs, then its session is closed. The median
    over all timed runs is reported.

    Only one session is alive at a time: an idle ONNX Runtime session's intra-op threads keep
    spinning for a while after each run (``session.intra_op.allow_spinning``, on by default), so
    with several multi-threaded sessions open at once they steal the cores from the one being
    timed. On 2 cores that made 2-thread medians 2-4x too slow and erratic (fp32 32 ms instead of
    7.7 ms), while one-session-at-a-time timings agree with a spinning-off check.

    Returns:
        ``{path: {str(threads): median ms}}``.
    """
    out: dict[str, dict[str, float]] = {p: {} for p in paths}
    per_round = max(1, runs // rounds)
    for t in threads:
        times: dict[str, list[float]] = {p: [] for p in paths}
        for _ in range(rounds):
            for p in paths:
                session = make_session(p, t)
                feed = _feed(session, image)
                for _ in range(warmup):
                    session.run(None, feed)
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    session.run(None, feed)
                    times[p].append(time.perf_counter() - t0)
                del session
                gc.collect()  # the session's thread pool goes with it
        for p in paths:
            out[p][str(t)] = 1000.0 * statistics.median(times[p])
    return out


def _feed(session, image: np.ndarray | None) -> dict[str, np.ndarray]:
    inp = session.get_inputs()[0]
    if image is None:
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        image = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return {inp.name: image}
