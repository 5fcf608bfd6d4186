"""The image stage with a real Docker engine: build, log in, push to the emulator's ECR registry.

``site.yml --tags registry,image`` against a private emulator that the offline profile starts,
building a tiny image (a Dockerfile ``FROM scratch`` with two COPY layers, through the role's
``image_context`` / ``image_dockerfile``) instead of the Dagster image, so that it takes seconds
and needs no base image. Then: ECR lists the tag, the registry serves the image back
(``docker pull``), a second run changes nothing, and so does check mode.

The engine: one that answers already (``docker info``) is used as is; otherwise, when
Debian's docker.io is installed, tests/support/docker_engine.py starts a private ``dockerd`` (no
bridge, no iptables, its own socket and directories) and stops it afterwards. The docker CLI
needs the buildx plugin (``python tests/support/docker_engine.py install-buildx``). Without an engine
or buildx the tests are skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from support.aws_inventory import clients
from support.docker_engine import Engine, buildx_answers, docker_answers, find_buildx
from support.playbook import offline_environment, run_playbook

pytestmark = pytest.mark.integration

PROJECT = "dagster-ecs"
TAG = "0.1.0"
HOST_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}[os.uname().machine]


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs a Docker engine for the image tests: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    """The environment for docker and ansible-playbook: DOCKER_HOST, and a DOCKER_CONFIG of the test's own."""
    engine = Engine.existing()
    if engine is None:
        if not shutil.which("dockerd"):
            _unavailable("no Docker engine answers and dockerd is not installed (apt-get install -y docker.io)")
        if os.geteuid() != 0:
            _unavailable("no Docker engine answers, and starting dockerd needs root")
        try:
            engine = Engine.start()
        except RuntimeError as error:
            _unavailable(f"dockerd did not start: {error}")
    # The registry logins the role writes go to a config of the test's own, not ~/.docker.
    config = tmp_path_factory.mktemp("docker-config")
    buildx = find_buildx()
    if buildx is not None:
        (config / "cli-plugins").mkdir()
        (config / "cli-plugins" / "docker-buildx").symlink_to(buildx)
    env = engine.env()
    env["DOCKER_CONFIG"] = str(config)
    try:
        if not buildx_answers(env):
            _unavailable("the docker CLI has no buildx plugin (python tests/support/docker_engine.py install-buildx)")
        yield env
    finally:
        if engine.started:
            engine.stop()
            shutil.rmtree(engine.root, ignore_errors=True)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """A tiny build context; its content is unique, so the image is new to any engine."""
    path = tmp_path_factory.mktemp("context")
    (path / "Dockerfile").write_text("FROM scratch\nCOPY marker.txt /marker.txt\nCOPY app /app\n")
    (path / "marker.txt").write_text(f"{uuid.uuid4()}\n")
    (path / "app").mkdir()
    (path / "app" / "hello.txt").write_text("hello from the image stage\n")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory, docker, context):
    more = {
        "image_context": str(context),
        "image_dockerfile": "Dockerfile",
        # The machine's own platform: building linux/arm64 elsewhere needs QEMU (binfmt_misc).
        "image_platform": HOST_PLATFORM,
    }
    with offline_environment(tmp_path_factory, **more) as environment:
        image = f"{environment['endpoint'].removeprefix('http://')}/{PROJECT}"
        yield {**environment, "docker": docker, "image": image}
        if docker_answers(docker):  # an engine we did not start keeps nothing of ours
            subprocess.run(["docker", "rmi", "--force", f"{image}:{TAG}"], env=docker, capture_output=True, check=False)


def site(env, *args):
    return run_playbook("site.yml", "--tags", "registry,image", *args, extra_vars=env["extra"], env=env["docker"])


@pytest.fixture(scope="module")
def first_run(env):
    started = time.monotonic()
    run = site(env)
    run.seconds = time.monotonic() - started
    return run


def test_first_run_builds_and_pushes(first_run, env):
    assert first_run.returncode == 0, first_run.output[-6000:]
    changed = first_run.changed_tasks()
    assert any(name.startswith("image : Build the image") for name in changed), changed
    assert any(name.startswith("image : Push the image") for name in changed), changed
    assert f"{env['image']}:{TAG}" in first_run.output, "the image is tagged for the emulator's registry"
    pushes = [line for line in first_run.output.splitlines() if line.startswith("TASK [image : Push the image")]
    assert pushes and not any(".dkr.ecr." in line for line in pushes), "never the ECR host, which is public DNS"
    print(f"first run (build + push of the tiny image): {first_run.seconds:.1f} s")


def test_ecr_lists_the_tag(first_run, env):
    ecr = clients(env["endpoint"])("ecr")
    details = ecr.describe_images(repositoryName=PROJECT, imageIds=[{"imageTag": TAG}])["imageDetails"]
    assert [d["imageTags"] for d in details] == [[TAG]]
    local = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .RepoDigests}}", f"{env['image']}:{TAG}"],
        env=env["docker"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert details[0]["imageDigest"] in local, "ECR's digest is the digest docker pushed"


def test_the_registry_serves_the_image_back(first_run, env):
    docker = env["docker"]
    reference = f"{env['image']}:{TAG}"
    subprocess.run(["docker", "rmi", reference], env=docker, capture_output=True, check=True)
    pulled = subprocess.run(["docker", "pull", reference], env=docker, capture_output=True, text=True, check=False)
    assert pulled.returncode == 0, pulled.stderr
    name = f"image-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "create", "--network", "none", "--name", name, reference, "x"],
        env=docker,
        capture_output=True,
        check=True,
    )
    try:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run(["docker", "cp", f"{name}:/app/hello.txt", out], env=docker, check=True)
            assert (Path(out) / "hello.txt").read_text() == "hello from the image stage\n"
    finally:
        subprocess.run(["docker", "rm", name], env=docker, capture_output=True, check=False)


def test_second_run_changes_nothing(first_run, env):
    second = site(env)
    assert second.returncode == 0, second.output[-4000:]
    assert second.recap["changed"] == 0, second.changed_tasks()


def test_check_mode_changes_nothing(first_run, env):
    preview = site(env, "--check", "--diff")
    assert preview.returncode == 0, preview.output[-4000:]
    assert preview.recap["changed"] == 0, preview.changed_tasks()
