"""The distribution as a user installs it: a wheel, in a fresh virtual environment,
beside another distribution that owns a top-level `widgets` package (issue 16: noc's
folders used to install as top-level `widgets`, `collectors` and `themes` and silently
overwrote such a package). noc's own folders install as noc_widgets, noc_collectors
and noc_themes; nothing of the other package is touched; `noc check` and
`noc demo --help` run from the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from paths import ROOT

import noc

MARKER = "# the other distribution's own widgets package\n"


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # Whatever noc writes (its log) goes under the test's own directory.
    state = {"XDG_STATE_HOME": str(cwd / "state")} if cwd else {}
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**os.environ, **state},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", out, ROOT,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("noc-*.whl")
    return path


def test_the_wheel_holds_noc_names_only_and_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.startswith("noc-")}
    assert tops == {"noc", "noc_widgets", "noc_collectors", "noc_themes"}
    data = {"noc_widgets/data/landmask.bin", "noc_themes/noc.tcss", "noc/playbook.toml"}
    data |= {f"{top}/py.typed" for top in tops}
    assert data <= set(names)
    assert f"noc-{noc.__version__}.dist-info/METADATA" in names


def other_widgets(where: Path) -> Path:
    """A distribution that owns a top-level `widgets` package, as a wheel."""
    source = where / "other-widgets"
    (source / "widgets").mkdir(parents=True)
    (source / "widgets" / "__init__.py").write_text(MARKER)
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=70.1"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "other-widgets"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["widgets"]\n'
    )
    out = where / "other-dist"
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "-w", out, source)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("other_widgets-*.whl")
    return path


def test_installed_beside_a_package_that_owns_widgets(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    # The dependencies come from this interpreter's site-packages; noc itself and the
    # other package are installed into the new environment, from their wheels.
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env)
    python = env / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    other = other_widgets(tmp_path)
    for package in (other, wheel):
        installed = run(*pip, "install", "--no-deps", "--no-index", package)
        assert installed.returncode == 0, installed.stdout + installed.stderr
    site = Path(
        run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        ).stdout.strip()
    )
    assert (site / "widgets" / "__init__.py").read_text() == MARKER
    assert (site / "noc_widgets" / "__init__.py").exists()
    imports = "import noc, noc_widgets, widgets; print(noc.__file__, noc_widgets.__file__, widgets.__file__)"  # noqa: E501
    where = run(python, "-c", imports, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(str(site)) for path in where.stdout.split())
    noc_command = env / "bin" / "noc"
    version = run(noc_command, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"noc {noc.__version__}"
    demo_help = run(noc_command, "demo", "--help", cwd=tmp_path)
    assert demo_help.returncode == 0 and "usage: noc demo" in demo_help.stdout
    config = tmp_path / "noc.toml"
    config.write_text(
        '[estate]\nname = "wheel-test"\n[[regions]]\nid = "ro"\nrole = "primary"\n'
        '[[regions.checks]]\nurl = "http://127.0.0.1:9/health"\ntimeout_seconds = 0.5\n'
    )
    check = run(noc_command, "check", "--config", config, cwd=tmp_path)
    # Nothing listens on port 9: noc cannot reach anything, a clean UNKNOWN.
    assert check.returncode == 3, check.stdout + check.stderr
    assert check.stdout.startswith("NOC UNKNOWN - ") and "Traceback" not in check.stderr
