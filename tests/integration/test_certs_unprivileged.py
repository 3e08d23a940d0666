"""`wayfinder certs` as an unprivileged user, as the image runs it (UID 65532) or an operator does.

The suite runs as root; each test runs the command as UID/GID 65534
(nobody) with util-linux's setpriv, in a folder under /tmp that the test
makes and removes.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from tests.integration.live import ROOT

UNPRIVILEGED = 65534
TIMEOUT = 60


def as_unprivileged(*argv: str, cwd: str) -> subprocess.CompletedProcess:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv is missing: tests/run installs util-linux"
    return subprocess.run(
        [setpriv, f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups", *argv],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": "/nonexistent"},
        capture_output=True, text=True, timeout=TIMEOUT,
    )


def certs(directory: str, cwd: str) -> subprocess.CompletedProcess:
    return as_unprivileged(sys.executable, "-m", "discovery", "certs", "-dir", directory, cwd=cwd)


@pytest.fixture
def place():
    """A folder under /tmp that every user may enter (the user's own, or root's, as the test makes it)."""
    made = tempfile.mkdtemp(prefix="wayfinder-certs-")
    os.chmod(made, 0o755)
    yield made
    shutil.rmtree(made)


def test_into_a_folder_it_cannot_write_fails_naming_it_and_the_way_out(place):
    """A mounted folder of another user's, mode 0755: exit 1, naming the folder, both UIDs and `--user`; nothing written."""
    result = certs(place, cwd=place)
    assert result.returncode == 1, result.stderr
    assert place in result.stderr and f"UID {UNPRIVILEGED}" in result.stderr and "UID 0" in result.stderr
    assert '--user "$(id -u):$(id -g)"' in result.stderr
    assert os.listdir(place) == []


def test_into_a_writable_folder_of_another_user_fails_before_writing_keys(place):
    """Mode 0777 but another user's: refused, since that user could not read the keys written; nothing written."""
    os.chmod(place, 0o777)
    result = certs(os.path.join(place, "tls"), cwd=place)
    assert result.returncode == 1
    assert "belongs to UID 0" in result.stderr
    assert os.listdir(place) == []


def test_into_its_own_folder_writes_files_it_can_read(place):
    """In a folder of its own, the four files are the user's and it reads every one, the 0600 keys included."""
    os.chown(place, UNPRIVILEGED, UNPRIVILEGED)
    result = certs("tls", cwd=place)
    assert result.returncode == 0, result.stderr
    folder = os.path.join(place, "tls")
    for name in ("ca.crt", "ca.key", "tls.crt", "tls.key"):
        path = os.path.join(folder, name)
        assert os.stat(path).st_uid == UNPRIVILEGED
        read = as_unprivileged("cat", path, cwd=place)
        assert read.returncode == 0 and "-----BEGIN" in read.stdout, read.stderr
    assert stat.S_IMODE(os.stat(os.path.join(folder, "tls.key")).st_mode) == 0o600


def test_a_new_folder_in_a_shared_sticky_folder_is_allowed(place):
    """Under a sticky world-writable folder like /tmp, the folder it makes is its own: it succeeds."""
    os.chmod(place, 0o1777)
    result = certs(os.path.join(place, "tls"), cwd=place)
    assert result.returncode == 0, result.stderr
    assert os.stat(os.path.join(place, "tls", "tls.key")).st_uid == UNPRIVILEGED
