"""The image's build, done with the tools the Dockerfile uses, since no Docker engine runs here.

The build context is the work tree less what .dockerignore excludes (Docker's
matching rules, below); the Dockerfile's build-stage RUN commands run on a
copy of it, with the image's /opt/wayfinder mapped to a temporary directory:
`python -m venv --copies`, then `pip install .` from PyPI. What comes out
must run `wayfinder`, import every module with only the declared
dependencies, and, given the final stage's file capability, bind port 53
without any capability of its own, as kubeadm's securityContext runs it.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from discovery import __version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
#: Where the image keeps its virtualenv; mapped to a temporary directory here.
IMAGE_VENV = "/opt/wayfinder"
PIP_TIMEOUT = 600
COMMAND_TIMEOUT = 60


# --- reading the Dockerfile ----------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuations joined and ARG defaults substituted."""
    arguments: dict[str, str] = {}
    stages: list[list[tuple[str, str]]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        instruction, _, rest = (pending + stripped).partition(" ")
        pending = ""
        instruction = instruction.upper()
        rest = re.sub(r"\$\{(\w+)\}", lambda m: arguments.get(m.group(1), m.group(0)), rest.strip())
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            arguments[name] = default
        elif instruction == "FROM":
            stages.append([(instruction, rest)])
        else:
            stages[-1].append((instruction, rest))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [rest for instruction, rest in stage if instruction == name]


def exec_form(text: str) -> list[str]:
    return yaml.safe_load(text)


# --- the build context (Docker's .dockerignore rules) -------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern as a regex: Go's filepath.Match, plus ** for any number of directories."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out += "(.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    """(is an exception, pattern) per line, in order; patterns are cleaned as Docker cleans them."""
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line[1:] if exception else line).lstrip("/")
        rules.append((exception, _pattern_regex(pattern)))
    return rules


def excluded(relative: str, rules) -> bool:
    """Docker's rule: the last pattern that matches the path, or one of its parent directories, decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for exception, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            verdict = not exception
    return verdict


def copy_build_context(destination: pathlib.Path) -> list[str]:
    """Copy what `docker build .` would send; return the relative paths copied."""
    rules = dockerignore_rules()
    copied = []
    for directory, _, files in os.walk(ROOT):
        for name in files:
            source = pathlib.Path(directory, name)
            relative = source.relative_to(ROOT).as_posix()
            if not excluded(relative, rules):
                (destination / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination / relative)
                copied.append(relative)
    return sorted(copied)


# --- the build ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The build stage run here: (build context, virtualenv), /opt/wayfinder mapped to the virtualenv."""
    root = tmp_path_factory.mktemp("image")
    context, venv, tools = root / "src", root / "opt-wayfinder", root / "bin"
    context.mkdir()
    tools.mkdir()
    copy_build_context(context)
    # The image's `python` is its Python 3.11; here it is the one running the tests.
    (tools / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (tools / "python").chmod(0o755)
    environment = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "PIP_NO_INPUT": "1"}
    environment.pop("PYTHONPATH", None)
    build_stage = dockerfile_stages()[0]
    for command in instructions(build_stage, "RUN"):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command.replace(IMAGE_VENV, str(venv))],
            cwd=context, env=environment, capture_output=True, text=True, timeout=PIP_TIMEOUT,
        )
        assert result.returncode == 0, f"RUN {command}\n{result.stdout}\n{result.stderr}"
    return context, venv


def run_installed(venv: pathlib.Path, *argv: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    """Run a program of the virtualenv away from the source tree, so that only the installed package is importable."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]], cwd=cwd, env=environment,
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )


def test_build_context_holds_what_pip_install_needs_and_nothing_else(tmp_path):
    """.dockerignore sends the package sources and their metadata, and no tests, virtualenvs, git data or bytecode."""
    copied = copy_build_context(tmp_path)
    for needed in ("pyproject.toml", "setup.cfg", "README.md", "discovery/__init__.py", "discovery/cli.py",
                   "discovery/dns/README.md", "webhook/__init__.py"):
        assert needed in copied
    assert {path.split("/")[0] for path in copied} == {
        "pyproject.toml", "setup.cfg", "constraints.txt", "README.md", "discovery", "webhook"}
    assert not [path for path in copied if "__pycache__" in path or path.endswith((".pyc", ".pyo"))]


def test_build_stage_installs_the_context_with_pip(build):
    """The build stage's `pip install .` leaves a `wayfinder` command that reports this source's version."""
    _, venv = build
    result = run_installed(venv, "wayfinder", "-version", cwd=venv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Wayfinder-{__version__}"


def pinned() -> dict[str, str]:
    """constraints.txt as {normalised name: version}."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_build_installs_exactly_the_pinned_versions(build):
    """Every package the build stage installs (but Wayfinder and pip's own) is in constraints.txt, at that version."""
    _, venv = build
    result = run_installed(venv, "python", "-m", "pip", "list", "--format=json", cwd=venv)
    assert result.returncode == 0, result.stderr
    pins = pinned()
    installed = {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(result.stdout)}
    for name in ("wayfinder", "pip", "setuptools", "wheel"):
        installed.pop(name, None)
    assert installed and {name: pins.get(name) for name in installed} == installed


def test_tests_run_installs_with_the_same_pins():
    """tests/run installs the test environment with -c constraints.txt, so the tests run what the image ships."""
    assert "pip install -q -c constraints.txt -e '.[test]'" in (ROOT / "tests" / "run").read_text()


def test_installed_package_imports_every_module(build):
    """Every module of discovery and webhook imports from the install alone: install_requires names every dependency."""
    _, venv = build
    script = (
        "import importlib, pkgutil, discovery, webhook\n"
        "for package in (discovery, webhook):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        # Importing __main__ would run the program.
        "        if not module.name.endswith('.__main__'):\n"
        "            importlib.import_module(module.name)\n"
        "            print(module.name)\n"
        "print(discovery.__file__)\n"
    )
    result = run_installed(venv, "python", "-I", "-c", script, cwd=venv)
    assert result.returncode == 0, result.stderr
    *modules, location = result.stdout.split()
    assert pathlib.Path(location).is_relative_to(venv)
    assert {"discovery.app", "discovery.certs", "discovery.cli", "webhook.server", "webhook.admission"} <= set(modules)


def test_installed_command_knows_every_directive(build):
    """`wayfinder -plugins` from the install lists the directives of the kubeadm Corefile and the webhook."""
    _, venv = build
    result = run_installed(venv, "wayfinder", "-plugins", cwd=venv)
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    assert {"errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "loadbalance", "webhook"} <= listed


# --- the final stage -----------------------------------------------------------------------


def test_image_is_a_slim_python_311():
    """Both stages start from a slim Python 3.11 image (Debian, for libcap2-bin and setcap)."""
    for stage in dockerfile_stages():
        image = stage[0][1].split()[0]
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", image), image


def test_guide_names_the_dockerfiles_base_image():
    """docs/operators-guide.md's "Build the image" names the image the Dockerfile starts from, tag and all."""
    (image,) = {stage[0][1].split()[0] for stage in dockerfile_stages()}
    guide = (ROOT / "docs" / "operators-guide.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Build the image"):guide.index("## Check your Corefile")]
    assert f"`{image}`" in section


def test_image_runs_as_a_numeric_non_root_user():
    """USER is numeric (the kubelet checks runAsNonRoot on it) and not 0, and matches the manifests' runAsUser."""
    (user,) = instructions(dockerfile_stages()[-1], "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or gid.isdigit())
    deployment = yaml.safe_load((ROOT / "manifests" / "base" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_image_starts_like_the_coredns_image():
    """ENTRYPOINT is the installed `wayfinder`, CMD `-conf /etc/coredns/Corefile`: what the Deployment passes too."""
    final = dockerfile_stages()[-1]
    (entrypoint,) = instructions(final, "ENTRYPOINT")
    (command,) = instructions(final, "CMD")
    assert exec_form(entrypoint) == [f"{IMAGE_VENV}/bin/wayfinder"]
    assert exec_form(command) == ["-conf", "/etc/coredns/Corefile"]
    deployment = yaml.safe_load((ROOT / "manifests" / "base" / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == exec_form(command)


def setcap_command() -> tuple[str, str]:
    """(capability, path) from the final stage's `setcap CAP "$(readlink -f PATH)"`."""
    commands = " ".join(instructions(dockerfile_stages()[-1], "RUN"))
    match = re.search(r'setcap (\S+) "\$\(readlink -f (\S+)\)"', commands)
    assert match, "the final stage sets no file capability on the interpreter"
    return match.group(1), match.group(2)


BIND_53 = (
    "import socket\n"
    "udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "udp.bind(('0.0.0.0', 53))\n"
    "print('bound', udp.getsockname()[1])\n"
)


def without_privileges(*argv: str) -> subprocess.CompletedProcess:
    """Run argv as kubeadm runs CoreDNS: no capabilities but what the program file carries, NET_BIND_SERVICE alone
    in the bounding set, no_new_privs; in a network namespace of its own, whose port 53 is nobody's.

    The process stays UID 0, so that it can read this machine's interpreter (installed under /root), but
    SECBIT_NOROOT takes away what UID 0 has at exec: capabilities then come from the file alone, as for UID 65532.
    """
    return subprocess.run(
        ["unshare", "--net", "--",
         "setpriv", "--securebits", "+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked",
         "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+net_bind_service", "--no-new-privs",
         "--", *argv],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )


def test_file_capability_lets_the_unprivileged_interpreter_bind_port_53(build):
    """Without the Dockerfile's setcap the interpreter cannot bind port 53 under kubeadm's capabilities; with it, it can."""
    if os.geteuid() != 0:
        pytest.skip("setting a file capability and dropping root's privileges need root")
    for tool in ("setcap", "setpriv", "unshare"):
        assert shutil.which(tool), f"{tool} is not installed: tests/run installs it"
    _, venv = build
    capability, path = setcap_command()
    interpreter = os.path.realpath(path.replace(IMAGE_VENV, str(venv)))

    before = without_privileges(interpreter, "-c", BIND_53)
    assert before.returncode != 0 and "Permission denied" in before.stderr, before.stdout + before.stderr

    subprocess.run(["setcap", capability, interpreter], check=True, timeout=COMMAND_TIMEOUT)
    after = without_privileges(interpreter, "-c", BIND_53)
    assert after.returncode == 0, after.stderr
    assert after.stdout.split() == ["bound", "53"]
