"""Security properties read from the code itself: no pickle where untrusted bytes arrive, weights loaded
with weights_only=True everywhere, a serving path that cannot reach the network, caps on by default,
pinned dependencies. (The images' layers and logs are scanned for credentials in test_docker.py.)"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from serve.config import read_config
from serve.server import mms_properties

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("train", "serve", "imaging", "scripts", "bench", "reliability", "tests", "docker")
SERVING = ("serve", "imaging")
# Modules that could fetch a URL or run pickled code; the serving path imports none of them.
NETWORK_OR_PICKLE = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal", "urllib", "urllib3", "requests",
                     "http.client", "httpx", "aiohttp", "socket", "boto3", "botocore", "ftplib", "smtplib"}


def python_files(folders) -> list[Path]:
    return sorted(path for folder in folders for path in (REPO / folder).rglob("*.py"))


def calls(tree: ast.AST, dotted: str):
    module, _, name = dotted.rpartition(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == module:
            yield node


def keyword(node: ast.Call, name: str):
    for item in node.keywords:
        if item.arg == name:
            return item.value
    return None


def test_every_torch_load_is_weights_only():
    loads = []
    for path in python_files(PACKAGES):
        for node in calls(ast.parse(path.read_text()), "torch.load"):
            value = keyword(node, "weights_only")
            loads.append(f"{path.relative_to(REPO)}:{node.lineno}")
            assert isinstance(value, ast.Constant) and value.value is True, f"{loads[-1]}: torch.load without " \
                                                                            "weights_only=True"
    assert len(loads) >= 5  # the scan sees the loads that exist (weights, checkpoints, features, tests)


def test_numpy_never_unpickles():
    for path in python_files(PACKAGES):
        for node in calls(ast.parse(path.read_text()), "np.load"):
            value = keyword(node, "allow_pickle")
            assert value is None or (isinstance(value, ast.Constant) and value.value is False), \
                f"{path.relative_to(REPO)}:{node.lineno}: np.load with allow_pickle"


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


# The launcher, not the request path: it checks that its own port is free and, before saying "ready", sends
# one request to it on loopback (serve.server.check_port_free, check_invocation, through serve.loopback).
LOOPBACK_ONLY = {"serve/server.py": {"socket"}, "serve/loopback.py": {"http.client"}}


def test_the_serving_path_imports_nothing_that_fetches_urls_or_unpickles():
    for path in python_files(SERVING):
        allowed = LOOPBACK_ONLY.get(str(path.relative_to(REPO)), set())
        found = {m for m in imported_modules(path) if m in NETWORK_OR_PICKLE or m.split(".")[0] in NETWORK_OR_PICKLE}
        assert not found - allowed, f"{path.relative_to(REPO)} imports {sorted(found - allowed)}"


def test_serving_caps_are_on_by_default():
    config = read_config({})
    assert config.max_payload_bytes == 6 << 20  # SageMaker's real-time request limit
    assert config.max_image_pixels == 40_000_000 and config.max_instances == 64
    assert config.max_request_pixels == 100_000_000 and config.max_aspect_ratio == 20
    properties = mms_properties(config, "0.0.0.0", 8080)
    # the management API is not on the serving port (a multi-model endpoint's /models is SageMaker's contract)
    assert "management_address=http://127.0.0.1:0\n" in properties
    assert "inference_address=http://0.0.0.0:8080\n" in properties
    # The model server itself refuses bodies over 4x the cap before they reach Python.
    assert f"max_request_size={4 * config.max_payload_bytes}\n" in properties


PIN = re.compile(r"^[A-Za-z0-9_.\-\[\]]+==[0-9][A-Za-z0-9.+\-]*$")
UNPINNED_ON_PURPOSE = {"setuptools<81"}  # a ceiling, not a version: sagemaker-inference needs pkg_resources


def test_every_python_dependency_is_pinned():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [r for extra in project["optional-dependencies"].values() for r in extra]
    assert requirements and not project["dependencies"]
    loose = [r for r in requirements if not PIN.match(r) and r not in UNPINNED_ON_PURPOSE]
    assert loose == [], "pin these with =="


NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*(\[[^\]]*\])?(==.+)?$")  # a package spec, as pip reads it


@pytest.mark.parametrize("dockerfile", ["train.Dockerfile", "serve.Dockerfile"])
def test_images_install_only_the_pinned_extras(dockerfile):
    text = (REPO / "docker" / dockerfile).read_text().replace("\\\n", " ")
    commands = [part.split("&&")[0].split("\n")[0] for part in text.split("pip install")[1:]]
    assert commands
    for command in commands:  # flags, "." and ".[extra]" (pyproject's pins); any package named must carry ==
        named = [token for token in command.split() if NAME.match(token)]
        assert all("==" in token for token in named), f"{dockerfile}: unpinned {named} in pip install{command}"


def test_every_image_build_targets_linux_amd64():
    # SageMaker's instances are x86_64: an arm64 image (an Apple-silicon laptop's default) fails to start there.
    builds = {path: (REPO / path).read_text() for path in ("scripts/push_and_tune.sh", ".ci/docker-stage.sh")}
    for path, text in builds.items():
        lines = [line for line in text.splitlines() if re.search(r"\bdocker build\b", line)
                 and not line.lstrip().startswith(("#", "--"))]
        assert lines, f"{path} builds no image any more: update this test"
        # push_and_tune.sh's serving build takes --platforms, checked to be linux/amd64 (the default) or linux/arm64
        assert all("--platform linux/amd64" in line or '--platform "$platform"' in line
                   for line in lines), (path, lines)
    assert "platforms=linux/amd64" in builds["scripts/push_and_tune.sh"]
    assert "[[ $platform == linux/amd64 || $platform == linux/arm64 ]]" in builds["scripts/push_and_tune.sh"]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        assert "build" in service and service.get("platform") == "linux/amd64", name
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for line in doc.read_text().splitlines():
            if line.strip().startswith("docker build"):
                assert "--platform linux/amd64" in line, (doc.name, line)
