"""Powertools travels in the Lambdas' zips at the release requirements.txt pins: the code the tests run is the code
deployed. No AWS-managed layer: its version number names no Powertools release."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.alerting import (
    POWERTOOLS_PACKAGES,
    SHARED_CODE,
    check_pins,
    lambda_files,
    requirement_pins,
    vendored_package,
)
from tests.unit.pulumi_harness import REPO_ROOT, Run, run_program

# Every function under lambdas/ (the program makes one of each), not the code they share.
FUNCTIONS = sorted(
    folder.parent.name for folder in (REPO_ROOT / "lambdas").glob("*/app.py") if folder.parent.name != SHARED_CODE
)
REQUIREMENTS = (REPO_ROOT / "requirements.txt").read_text()
# What the Lambda Python runtime itself provides: the AWS SDK and the packages it depends on.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "dateutil", "six", "urllib3", "jmespath")


def powertools_pin() -> str:
    return requirement_pins(REQUIREMENTS)["aws-lambda-powertools"]


def bundled_powertools_version(files: dict[str, Path]) -> str:
    source = files["aws_lambda_powertools/shared/version.py"].read_text()
    (version,) = re.findall(r'^VERSION = "([^"]+)"', source, re.MULTILINE)
    return version


@pytest.fixture(scope="module")
def run() -> Run:
    return run_program()


def test_requirements_pin_powertools():
    assert re.fullmatch(r"3\.\d+\.\d+", powertools_pin())


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_zip_holds_the_pinned_powertools_and_what_it_imports(function):
    files = lambda_files(REPO_ROOT, function)
    assert bundled_powertools_version(files) == powertools_pin()
    assert "jmespath/__init__.py" in files
    assert "typing_extensions.py" in files, "a package of one module is bundled as its file"


def test_the_deployed_functions_use_no_layer_and_ship_the_pinned_powertools(run):
    functions = run.of_type("aws:lambda/function:Function")
    assert {"notify-function", "warmup-function"} <= {function.name for function in functions}
    for function in functions:
        assert not function.inputs.get("layers")
        assets = function.inputs["code"].assets
        assert (
            bundled_powertools_version({path: Path(asset.path) for path, asset in assets.items()}) == powertools_pin()
        )


def unpack(function: str, folder: Path, without: str | None = None) -> Path:
    """The function's zip, as Lambda unpacks it into /var/task."""
    for relative, source in lambda_files(REPO_ROOT, function).items():
        if without and (relative == without or relative.startswith(f"{without}/")):
            continue
        target = folder / "task" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return folder / "task"


def lambda_runtime(folder: Path) -> Path:
    """The packages the Lambda runtime brings, and nothing else of this virtualenv."""
    runtime = folder / "runtime"
    runtime.mkdir()
    for package in RUNTIME_PACKAGES:
        location = vendored_package(package)
        (runtime / location.name).symlink_to(location)
    return runtime


def import_app(task: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    """`import app` as Lambda does: the zip first, then the runtime's packages; no site-packages (-S)."""
    code = "import sys; sys.path[:0] = sys.argv[1:3]; import app, aws_lambda_powertools as p; print(p.__file__)"
    command = [sys.executable, "-I", "-S", "-c", code, str(task), str(runtime)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60, cwd=task)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_imports_from_its_zip_and_the_runtime_alone(function, tmp_path):
    result = import_app(unpack(function, tmp_path), lambda_runtime(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "task" / "aws_lambda_powertools" / "__init__.py")


def test_without_the_bundled_typing_extensions_powertools_would_not_import(tmp_path):
    """The control: the test above passes because of what the zip holds, not because of the machine."""
    result = import_app(unpack("notify", tmp_path, without="typing_extensions.py"), lambda_runtime(tmp_path))
    assert result.returncode != 0
    assert "No module named 'typing_extensions'" in result.stderr


def test_a_virtualenv_out_of_step_with_requirements_is_refused():
    out_of_step = REQUIREMENTS.replace(f"aws-lambda-powertools=={powertools_pin()}", "aws-lambda-powertools==3.0.0")
    assert out_of_step != REQUIREMENTS
    with pytest.raises(
        RuntimeError, match=rf"aws.lambda.powertools {powertools_pin()} is installed but .* pins 3\.0\.0"
    ):
        check_pins(POWERTOOLS_PACKAGES, out_of_step)
    check_pins(POWERTOOLS_PACKAGES, REQUIREMENTS)


def test_pins_are_read_whatever_their_spelling():
    assert requirement_pins("Foo_Bar[x,y] == 1.2  # why\nmoto[ec2]==5.2.5\n# baz==1\nqux>=2\n") == {
        "foo-bar": "1.2",
        "moto": "5.2.5",
    }
