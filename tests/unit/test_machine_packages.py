"""scripts/machine-packages decides what to install, with a fake apt-get, sudo, id and docker on a fake PATH.

The real install path runs in CI itself: .ci/run -> make test -> scripts/machine-packages test.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "machine-packages"
TOOLS = ("bash", "dirname", "tee", "chmod", "rm", "env", "cat", "true", "touch", "mkdir")

FAKE_APT = """#!/bin/bash
echo "apt-get $* policy=$([ -e "$MACHINE_PACKAGES_ROOT/usr/sbin/policy-rc.d" ] && echo yes || echo no)" >> "$CALLS"
if [ "$1" = install ]; then
  for pkg in "$@"; do
    case "$pkg" in
      nginx-light) mkdir -p "$MACHINE_PACKAGES_ROOT/usr/sbin"; touch "$MACHINE_PACKAGES_ROOT/usr/sbin/nginx";
                   chmod +x "$MACHINE_PACKAGES_ROOT/usr/sbin/nginx";;
      postgresql) mkdir -p "$MACHINE_PACKAGES_ROOT/usr/lib/postgresql/15/bin";
                  touch "$MACHINE_PACKAGES_ROOT/usr/lib/postgresql/15/bin/postgres";;
    esac
  done
fi
"""


FAKE_SUDO = '#!/bin/bash\necho "sudo $*" >> "$CALLS"\n[ "$1" = -n ] && shift\n"$@"\n'


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def machine(tmp_path):
    """A fake root with nothing installed, and a PATH of the tools the script needs plus fakes."""
    root, bin_dir = tmp_path / "root", tmp_path / "bin"
    (root / "usr" / "sbin").mkdir(parents=True)
    bin_dir.mkdir()
    for tool in TOOLS:
        os.symlink(shutil.which(tool), bin_dir / tool)
    calls = tmp_path / "calls"
    calls.touch()
    executable(bin_dir / "apt-get", FAKE_APT)
    executable(bin_dir / "id", '#!/bin/bash\necho "${FAKE_UID:-0}"\n')
    executable(bin_dir / "python3", '#!/bin/bash\necho "python3 $*" >> "$CALLS"\n')

    class Machine:
        def __init__(self):
            self.root, self.bin, self.calls = root, bin_dir, calls

        def install(self, *what):
            for item in what:
                if item == "nginx":
                    executable(root / "usr" / "sbin" / "nginx", "")
                elif item == "postgres":
                    (root / "usr/lib/postgresql/15/bin").mkdir(parents=True, exist_ok=True)
                    (root / "usr/lib/postgresql/15/bin/postgres").touch()
                elif item == "dockerd":
                    executable(root / "usr" / "sbin" / "dockerd", "")
                elif item == "chromium":
                    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
                    executable(root / "usr" / "bin" / "chromium", "")
                elif item == "buildx":
                    executable(bin_dir / "docker", '#!/bin/bash\n[ "$1 $2" = "buildx version" ]\n')
                elif item == "sudo":
                    executable(bin_dir / "sudo", FAKE_SUDO)

        def run(self, purpose, *args, uid=0):
            env = {"PATH": str(bin_dir), "MACHINE_PACKAGES_ROOT": str(root), "CALLS": str(calls), "FAKE_UID": str(uid)}
            proc = subprocess.run(
                [str(bin_dir / "bash"), str(SCRIPT), purpose, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            return proc.returncode, proc.stdout + proc.stderr, calls.read_text().splitlines()

    return Machine()


def test_everything_present_installs_nothing_and_says_so(machine):
    machine.install("nginx", "postgres", "dockerd", "chromium", "buildx")
    code, output, calls = machine.run("test")
    assert code == 0, output
    assert "nothing to install" in output
    assert calls == []


def test_a_missing_package_is_installed_with_its_services_kept_from_starting(machine):
    machine.install("postgres")
    code, output, calls = machine.run("rehearsal")
    assert code == 0, output
    assert "installing nginx-light" in output
    assert calls == [
        "apt-get update -qq policy=yes",
        "apt-get install -y -qq --no-install-recommends nginx-light policy=yes",
    ]
    assert not (machine.root / "usr" / "sbin" / "policy-rc.d").exists()  # ours, removed again
    assert machine.run("rehearsal")[1].startswith("machine-packages: nothing to install")


def test_a_policy_rc_d_of_the_machine_is_left_alone(machine):
    policy = machine.root / "usr" / "sbin" / "policy-rc.d"
    executable(policy, "#!/bin/sh\nexit 101\n")
    code, output, calls = machine.run("rehearsal")
    assert code == 0, output
    assert calls[-1] == "apt-get install -y -qq --no-install-recommends nginx-light postgresql policy=yes"
    assert policy.exists()


def test_the_rehearsal_does_not_install_the_docker_engine(machine):
    machine.install("nginx", "postgres")
    code, output, calls = machine.run("rehearsal")
    assert (code, calls) == (0, []), output


def test_the_image_and_browser_tests_get_docker_buildx_and_chromium(machine):
    machine.install("nginx", "postgres")
    code, output, calls = machine.run("test")
    assert code == 0, output
    assert calls[1] == "apt-get install -y -qq --no-install-recommends docker.io chromium policy=yes"
    assert calls[2] == f"python3 {ROOT}/tests/support/docker_engine.py install-buildx"


def test_not_root_uses_sudo_when_it_needs_no_password(machine):
    machine.install("postgres", "sudo")
    code, output, calls = machine.run("rehearsal", uid=1000)
    assert code == 0, output
    assert "(with sudo -n)" in output
    assert "apt-get install -y -qq --no-install-recommends nginx-light policy=yes" in calls
    assert any(call.startswith("sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install") for call in calls)


def test_not_root_without_sudo_fails_before_anything_with_the_command_to_run(machine):
    code, output, calls = machine.run("rehearsal", uid=1000)
    assert code == 1
    assert "sudo apt-get update && sudo apt-get install -y --no-install-recommends nginx-light postgresql" in output
    assert calls == []


def test_no_apt_fails_naming_what_to_install(machine):
    (machine.bin / "apt-get").unlink()
    code, output, calls = machine.run("rehearsal")
    assert code == 1
    assert "missing: nginx-light postgresql, and this machine has no apt-get" in output


def test_dry_run_changes_nothing(machine):
    code, output, calls = machine.run("test", "--dry-run")
    assert code == 0, output
    assert "would install: nginx-light postgresql docker.io chromium docker-buildx" in output
    assert calls == []


def test_an_unknown_purpose_is_a_usage_error(machine):
    assert machine.run("everything")[0] == 2
