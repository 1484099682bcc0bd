"""CUDA forward compatibility (train/cuda_compat.py) and the one CUDA release the images and the venv share.

No NVIDIA driver runs here: hosts are faked by the two files the decision reads, the kernel module's
version line (/proc/driver/nvidia/version, as drivers 470 and 570 print it) and the compat folder's
libcuda.so.1 link (as NVIDIA's cuda-compat package lays it out). The Docker stage checks the same
decision inside the built training image (tests/test_docker.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import REPO

from train import cuda_compat
from train.gpu import MIN_DRIVER_FOR_CUDA, usable_gpus

DRIVER_470 = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.256.02  Thu May  2 14:37:44 UTC 2024\n" \
             "GCC version:  gcc version 7.3.1 20180712 (Red Hat 7.3.1-17) (GCC)\n"
DRIVER_535 = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
DRIVER_580_OPEN = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  " \
                  "(dvs-builder@U16-I3-B03-4-3)  Sun Jul 27 07:09:00 UTC 2025\n"


def compat_folder(tmp_path: Path, driver: str = "570.124.06") -> Path:
    folder = tmp_path / "compat"
    folder.mkdir()
    (folder / f"libcuda.so.{driver}").touch()
    (folder / "libcuda.so.1").symlink_to(f"libcuda.so.{driver}")
    return folder


def version_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "version"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, version", [(DRIVER_470, "470.256.02"), (DRIVER_535, "535.183.01"),
                                           (DRIVER_580_OPEN, "580.65.06"), ("garbage\n", None)])
def test_the_host_driver_is_read_from_the_kernel_modules_line(text, version, tmp_path):
    assert cuda_compat.host_driver_version(version_file(tmp_path, text)) == version


def test_no_driver_and_no_compat_libraries_read_as_none(tmp_path):
    assert cuda_compat.host_driver_version(tmp_path / "absent") is None
    assert cuda_compat.compat_driver_version(tmp_path / "absent") is None
    assert cuda_compat.compat_driver_version(compat_folder(tmp_path)) == "570.124.06"


@pytest.mark.parametrize("driver, used", [(DRIVER_470, True), (DRIVER_535, True), (DRIVER_580_OPEN, False)])
def test_compat_libraries_go_first_only_under_an_older_driver(driver, used, tmp_path):
    folder = compat_folder(tmp_path)
    environ = {"LD_LIBRARY_PATH": "/opt/other", "PATH": "/bin"}
    result, line = cuda_compat.environment(environ, folder, version_file(tmp_path, driver))
    if used:  # 535 would run CUDA 12.8 by minor-version compatibility too; the 570 libraries are what AWS's images pick
        assert result["LD_LIBRARY_PATH"] == f"{folder}:/opt/other"
        assert "< 570.124.06: using the compatibility libraries" in line
    else:  # an older libcuda over a newer kernel module would not even initialise
        assert result == environ and ">= 570.124.06: the host's own libcuda" in line
    assert environ == {"LD_LIBRARY_PATH": "/opt/other", "PATH": "/bin"}  # the caller's environment is not changed


def test_no_driver_or_no_libraries_leave_the_environment_alone(tmp_path):
    folder = compat_folder(tmp_path)
    environ = {"PATH": "/bin"}
    assert cuda_compat.environment(environ, folder, tmp_path / "absent") == (environ, "CUDA compat: no NVIDIA driver "
                                                                                     "on this host")
    result, line = cuda_compat.environment(environ, tmp_path / "none", version_file(tmp_path, DRIVER_470))
    assert result == environ and "this image has no compatibility libraries" in line
    result, _ = cuda_compat.environment(environ, folder, version_file(tmp_path, DRIVER_470))
    assert result["LD_LIBRARY_PATH"] == str(folder)  # no empty entry (an empty entry means the current folder)


def test_a_failure_with_the_compat_libraries_in_use_says_so(tmp_path, monkeypatch):
    # A driver-470 host whose GPU forward compatibility does not cover: CUDA still sees no GPU.
    folder = compat_folder(tmp_path)
    monkeypatch.setattr(cuda_compat, "COMPAT_DIR", folder)
    monkeypatch.setenv("LD_LIBRARY_PATH", f"{folder}:/usr/lib")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(Exception, match=re.escape(f"CUDA forward-compatibility libraries of driver 570.124.06 in use "
                                                  f"({folder})")):
        usable_gpus("auto", 1)


def test_one_cuda_release_for_torch_the_compat_libraries_and_the_driver_table():
    # The venv and the training image install the same pins (pyproject.toml); the compat libraries the
    # Dockerfile takes must be of torch's CUDA release, or they would not cover what torch needs.
    cuda = torch.version.cuda
    assert cuda is not None, "the pinned torch is a CUDA build"
    dockerfile = (REPO / "docker" / "train.Dockerfile").read_text()
    image = re.search(r"^ARG CUDA_COMPAT_IMAGE=nvidia/cuda:(\d+\.\d+)\.\d+-base-\S+$", dockerfile, re.M)
    assert image and image.group(1) == cuda, (image and image.group(1), cuda)
    assert f"COPY --from=cuda-compat /usr/local/cuda-{cuda}/compat/ {cuda_compat.COMPAT_DIR}/" in dockerfile
    compose = (REPO / "docker-compose.yml").read_text()
    assert f"CUDA_COMPAT_IMAGE:-{image.group(0).split('=', 1)[1]}}}" in compose
    assert int(cuda.split(".")[0]) in MIN_DRIVER_FOR_CUDA
