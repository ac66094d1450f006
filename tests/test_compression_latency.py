"""Latency measurement: one ONNX Runtime session alive at a time, every model timed in turn."""

import weakref

import numpy as np

from multitask_vision.compression import latency


class _FakeInput:
    name = "image"
    shape = [1, 3, 8, 8]


class _FakeSession:
    alive: "weakref.WeakSet[_FakeSession]" = weakref.WeakSet()
    max_alive = 0
    calls: list[tuple[str, int]] = []

    def __init__(self, path, threads):
        self.path, self.threads = path, threads
        _FakeSession.alive.add(self)
        _FakeSession.max_alive = max(_FakeSession.max_alive, len(_FakeSession.alive))

    def get_inputs(self):
        return [_FakeInput()]

    def run(self, outputs, feed):
        assert feed["image"].shape == (1, 3, 8, 8) and feed["image"].dtype == np.float32
        _FakeSession.calls.append((self.path, self.threads))
        return [np.zeros(1)]


def test_sessions_are_timed_one_at_a_time(monkeypatch):
    # Idle multi-threaded sessions keep spinning and slow the one being timed: each model's
    # session must be closed before the next one's is opened.
    monkeypatch.setattr(latency, "make_session", _FakeSession)
    out = latency.measure_latencies(["a.onnx", "b.onnx"], [1, 2], warmup=2, runs=6, rounds=3)
    assert _FakeSession.max_alive == 1 and not list(_FakeSession.alive)
    assert set(out) == {"a.onnx", "b.onnx"} and all(set(v) == {"1", "2"} for v in out.values())
    assert all(ms >= 0 for v in out.values() for ms in v.values())
    # 3 rounds x (2 warm-up + 2 timed) per model and thread count, models alternating.
    calls = _FakeSession.calls
    assert len(calls) == 2 * 2 * 3 * 4
    assert [p for p, _ in calls[:8]] == ["a.onnx"] * 4 + ["b.onnx"] * 4
    assert {t for _, t in calls[:24]} == {1} and {t for _, t in calls[24:]} == {2}


_X86_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 fma
"""
_X86_VNNI = _X86_AVX2.replace("avx2 fma", "avx2 fma avx512f avx512_vnni")
_ARM = """processor\t: 0
Features\t: fp asimd evtstrm aes crc32 asimddp
CPU part\t: 0xd0b
"""


def test_cpu_info_names_the_int8_dot_product_instructions(tmp_path):
    def info(text):
        p = tmp_path / "cpuinfo"
        p.write_text(text)
        return latency.cpu_info(str(p))

    avx2 = info(_X86_AVX2)
    assert avx2["cpu"] == "AMD EPYC" and avx2["int8_dot"] == []
    assert avx2["threads"] == latency.all_threads() and avx2["onnxruntime"]
    assert info(_X86_VNNI)["int8_dot"] == ["avx512_vnni"]
    assert info(_ARM)["int8_dot"] == ["asimddp"]
    assert latency.cpu_info(str(tmp_path / "missing"))["int8_dot"] is None
