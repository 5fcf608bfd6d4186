"""DAG dependency layers (dagster_ecs_container.layers): declaring, resolving against the image's pins, building
per platform with the real uv, packing deterministically, unpacking safely. No package index: the wheels are in
tests/fixtures/wheels (inflection: pure Python; ujson: compiled, for x86_64 and aarch64; docopt: an sdist only).
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
from dagster_ecs_container import layers
from dagster_ecs_container import manifest as mf
from support import image_pins
from support.paths import ROOT

WHEELS = ROOT / "tests" / "fixtures" / "wheels"
LOCAL = layers.Index(find_links=(str(WHEELS),), no_index=True, timeout=120)
ARM = layers.target_from("linux/arm64", "3.11")
X86 = layers.target_from("linux/amd64", "3.11")


def write(directory: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(text)
    return directory


# --- declaring ------------------------------------------------------------------------------------------
def test_nothing_declared(tmp_path):
    assert layers.declared(tmp_path) == ()


def test_requirements_lines(tmp_path):
    write(tmp_path, {"requirements.txt": "# pins\ninflection==0.5.1  # inline\n\nujson>=5 ; python_version >= '3.8'\n"})
    assert layers.declared(tmp_path) == ("inflection==0.5.1", "ujson>=5 ; python_version >= '3.8'")


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("--index-url https://example.com/simple", "dags_index_url"),
        ("-r other.txt", "options are not read here"),
        ("-e .", "options are not read here"),
        ("git+https://example.com/x.git", "only a package name"),
        ("pkg @ https://example.com/pkg.whl", "only a package name"),
        ("./local/pkg", "only a package name"),
    ],
)
def test_requirements_refused(tmp_path, line, words):
    write(tmp_path, {"requirements.txt": f"inflection\n{line}\n"})
    with pytest.raises(layers.LayerError, match=re.escape(words)) as error:
        layers.declared(tmp_path)
    assert "requirements.txt:2" in str(error.value)


def test_pyproject_dependencies_refused_beside_or_instead_of_requirements(tmp_path):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "d"\ndependencies = ["inflection"]\n'})
    with pytest.raises(layers.LayerError, match="declared in requirements.txt only"):
        layers.declared(tmp_path)
    write(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length = 100\n", "requirements.txt": "inflection\n"})
    assert layers.declared(tmp_path) == ("inflection",)


# --- the image's pins ---------------------------------------------------------------------------------------
def test_image_pins_are_current():
    """container/dagster_ecs_container/image-pins.txt is what the container package installs (make constraints)."""
    assert layers.image_pins_text() == image_pins.render()
    pins = layers.image_pins()
    assert pins["dagster"] == pins["dagster-webserver"] == "1.13.27" and pins["boto3"]


def test_python_version_is_the_images():
    dockerfile = (ROOT / "container" / "Dockerfile").read_text()
    image = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)\.", dockerfile).group(1)
    defaults = (ROOT / "roles" / "dags" / "defaults" / "main.yml").read_text()
    assert f'dags_python_version: "{image}"' in defaults


def test_a_pin_of_an_image_package_must_admit_the_images_version():
    pins = {"dagster": "1.13.27", "six": "1.17.0"}
    layers.check_pins(("dagster>=1.13", "six", "inflection==0.5.1"), pins)
    with pytest.raises(layers.LayerError) as error:
        layers.check_pins(("dagster==1.12.0",), pins)
    message = str(error.value)
    assert "'dagster==1.12.0' conflicts with the image's pin dagster==1.13.27" in message
    assert "container/pyproject.toml" in message


def test_source_key_changes_with_requirements_and_pins():
    key = layers.source_key(("inflection",), "six==1\n")
    assert key == layers.source_key(("inflection",), "six==1\n")
    assert key != layers.source_key(("inflection==0.5.1",), "six==1\n")
    assert key != layers.source_key(("inflection",), "six==2\n")


def test_platforms():
    assert ARM.name == "cp311-linux-aarch64" and X86.name == "cp311-linux-x86_64"
    assert "--python-platform" in ARM.uv_args() and "aarch64-manylinux_2_28" in ARM.uv_args()
    host = layers.host_target()
    assert host.native and "--python-platform" not in host.uv_args()
    assert layers.task_target("ARM64", "3.11") == ARM
    with pytest.raises(layers.LayerError, match="expected linux/arm64, linux/amd64 or host"):
        layers.target_from("windows/amd64", "3.11")


# --- building with uv ---------------------------------------------------------------------------------------
def test_pure_python_layer_is_deterministic():
    first = layers.build(("inflection==0.5.1",), ARM, LOCAL)
    again = layers.build(("inflection==0.5.1",), ARM, LOCAL)
    assert first.packages == ("inflection==0.5.1",)
    assert first.data == again.data and first.sha256 == mf.sha256_bytes(first.data)
    with tarfile.open(fileobj=io.BytesIO(first.data)) as tar:
        names = tar.getnames()
        assert "inflection/__init__.py" in names and not any("__pycache__" in n or n.startswith("bin") for n in names)
        assert {m.mtime for m in tar.getmembers()} == {0}


def test_a_layer_is_the_same_from_another_copy_of_the_wheels_and_another_cache(tmp_path):
    """Two machines (or two clones) publishing the same requirements build the same layer: uv records a local
    wheel's mtime in its uv_cache.json, which is not content and is left out (found by a fresh-clone CI run)."""
    copy = tmp_path / "wheels"
    copy.mkdir()
    (copy / "inflection-0.5.1-py2.py3-none-any.whl").write_bytes(
        (WHEELS / "inflection-0.5.1-py2.py3-none-any.whl").read_bytes()
    )
    here = layers.build(("inflection==0.5.1",), ARM, LOCAL, cache=tmp_path / "cache-a")
    there = layers.build(
        ("inflection==0.5.1",), ARM, layers.Index(find_links=(str(copy),), no_index=True), cache=tmp_path / "cache-b"
    )
    assert here.sha256 == there.sha256
    with tarfile.open(fileobj=io.BytesIO(here.data)) as tar:
        assert not [name for name in tar.getnames() if name.endswith("uv_cache.json")]
        record = tar.extractfile("inflection-0.5.1.dist-info/RECORD").read().decode()
    assert "uv_cache.json" not in record and "inflection/__init__.py," in record


def test_compiled_package_gets_one_layer_per_platform():
    arm = layers.build(("ujson",), ARM, LOCAL)
    x86 = layers.build(("ujson",), X86, LOCAL)
    assert arm.packages == x86.packages == ("ujson==5.10.0",)
    assert arm.sha256 != x86.sha256

    def extension(built):
        with tarfile.open(fileobj=io.BytesIO(built.data)) as tar:
            return [n for n in tar.getnames() if n.endswith(".so")]

    assert "aarch64" in extension(arm)[0] and "x86_64" in extension(x86)[0]


def test_unknown_package_fails_naming_it():
    with pytest.raises(layers.LayerError) as error:
        layers.build(("nosuchpackage-dagster-ecs",), ARM, LOCAL)
    assert "cannot be resolved for cp311-linux-aarch64" in str(error.value)
    assert "nosuchpackage-dagster-ecs was not found" in str(error.value)


def test_package_without_a_wheel_fails_naming_it_and_the_platform():
    with pytest.raises(layers.LayerError) as error:
        layers.build(("docopt",), X86, LOCAL)
    assert "cp311-linux-x86_64" in str(error.value) and "docopt" in str(error.value)
    assert "no usable wheels" in str(error.value)


def test_conflicting_dagster_pin_fails_before_uv(monkeypatch):
    monkeypatch.setattr(layers, "uv_binary", lambda: pytest.fail("uv must not run"))
    with pytest.raises(layers.LayerError, match="conflicts with the image's pin dagster==1.13.27"):
        layers.build(("dagster==1.12.0",), ARM, LOCAL)


def test_packages_the_image_has_are_not_in_the_layer():
    pins = layers.image_pins()
    six = f"six=={pins['six']}"
    assert layers.installable(["inflection==0.5.1", six], pins) == ["inflection==0.5.1"]


def test_a_module_shadowing_the_image_is_refused():
    with pytest.raises(layers.LayerError, match="would replace modules of the image or of Python itself: inflection"):
        layers.build(("inflection==0.5.1",), ARM, LOCAL, image_modules={"inflection"})


def test_the_index_url_is_not_in_arguments_and_masked_in_errors(monkeypatch):
    index = layers.Index(url="https://user:s3cret@index.example/simple", timeout=5)
    seen = {}

    def fake_run(command, **kwargs):
        seen["command"], seen["env"] = command, kwargs["env"]

        class Done:
            returncode, stdout = 2, ""
            stderr = "error: Failed to fetch https://user:s3cret@index.example/simple/x"

        return Done()

    monkeypatch.setattr(layers.subprocess, "run", fake_run)
    with pytest.raises(layers.LayerError) as error:
        layers.resolve(("x",), ARM, index)
    assert "s3cret" not in " ".join(seen["command"]) and seen["env"]["UV_DEFAULT_INDEX"] == index.url
    assert "s3cret" not in str(error.value) and "<index>" in str(error.value)


def test_plan_reuses_the_live_layers_for_the_same_requirements(monkeypatch):
    first = layers.plan_dependencies(("inflection==0.5.1",), None, [ARM, X86], LOCAL)
    assert sorted(first.built) == ["cp311-linux-aarch64", "cp311-linux-x86_64"]
    monkeypatch.setattr(layers, "build", lambda *a, **k: pytest.fail("nothing to build"))
    again = layers.plan_dependencies(("inflection==0.5.1",), first.dependencies, [ARM, X86], LOCAL)
    assert again.built == {} and again.dependencies == first.dependencies
    assert layers.plan_dependencies((), first.dependencies, [ARM], LOCAL).dependencies is None


# --- using (the task) -----------------------------------------------------------------------------------------
def test_unpack_once_and_pythonpath(tmp_path):
    built = layers.build(("inflection==0.5.1",), layers.host_target(), LOCAL)
    site = layers.unpack(built.data, tmp_path / "layer")
    assert (site / "inflection" / "__init__.py").is_file()
    assert layers.unpack(b"not even gzip", tmp_path / "layer") == site  # already there: kept, not read
    version = tmp_path / "v1"
    version.mkdir()
    assert "PYTHONPATH" not in layers.pythonpath(version, {})
    layers.attach(version, site)
    assert layers.pythonpath(version, {"PYTHONPATH": "/x"})["PYTHONPATH"] == f"{site}:/x"
    layers.attach(version, None)
    assert not (version / layers.LINK).exists()


def test_unpack_refuses_links_and_escapes(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(layers.LayerError, match="cannot be unpacked"):
        layers.unpack(raw.getvalue(), tmp_path / "layer")
    assert not (tmp_path / "escape.py").exists() and not (tmp_path / "layer").exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left
