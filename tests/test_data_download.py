"""scripts/download_data.sh without internet: a local mirror, resume, checksums, bad targets.

(The .mat conversion it runs is tested in test_data_nyu.py on a small .mat.)
"""

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "download_data.sh"


def run(tmp_path, command, **env):
    env = dict(
        os.environ, DATA_DIR=str(tmp_path / "data"), DATA_MIRROR=str(tmp_path / "mirror"), **env
    )
    return subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def mirror(tmp_path):
    (tmp_path / "mirror").mkdir()
    blob = os.urandom(100_000)
    (tmp_path / "mirror" / "blob.bin").write_bytes(blob)
    return blob


def test_resumes_a_partial_download_and_checks_md5(tmp_path, mirror):
    downloads = tmp_path / "data" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "blob.bin.part").write_bytes(mirror[:40_000])  # an interrupted download
    md5 = hashlib.md5(mirror).hexdigest()
    r = run(tmp_path, f"source {SCRIPT}; fetch blob.bin {md5} http://unused")
    assert r.returncode == 0, r.stderr
    assert "Resuming transfer from byte position 40000" in r.stderr
    assert "[data] blob.bin: md5 ok" in r.stdout
    assert (downloads / "blob.bin").read_bytes() == mirror
    assert not (downloads / "blob.bin.part").exists()


def test_checksum_mismatch_deletes_the_file(tmp_path, mirror):
    (tmp_path / "mirror" / "VOCtrainval_11-May-2012.tar").write_bytes(b"not the VOC tarball")
    r = run(tmp_path, f"bash {SCRIPT} voc2012")
    assert r.returncode == 1
    assert (
        "VOCtrainval_11-May-2012.tar: checksum mismatch (md5 "
        f"{hashlib.md5(b'not the VOC tarball').hexdigest()}, expected "
        "6cd6e144f989b92b3379bac3b3de84fd); deleted it" in r.stderr
    )
    assert not (tmp_path / "data" / "downloads" / "VOCtrainval_11-May-2012.tar").exists()


def test_unpublished_checksums_are_recorded_then_verified(tmp_path, mirror):
    r = run(tmp_path, f"source {SCRIPT}; fetch blob.bin - http://unused")
    sha = hashlib.sha256(mirror).hexdigest()
    assert f"no published checksum; recorded sha256 {sha}" in r.stdout
    r = run(tmp_path, f"source {SCRIPT}; fetch blob.bin - http://unused")
    assert "blob.bin: sha256 matches" in r.stdout
    (tmp_path / "data" / "downloads" / "blob.bin").write_bytes(b"tampered")
    r = run(tmp_path, f"source {SCRIPT}; fetch blob.bin - http://unused")
    assert r.returncode == 1 and "differs from the one recorded" in r.stderr


def test_unknown_target(tmp_path):
    r = run(tmp_path, f"bash {SCRIPT} voc2013")
    assert r.returncode == 1
    assert "unknown target 'voc2013'; choose from: demo voc2012 voc2007 nyu all" in r.stderr
