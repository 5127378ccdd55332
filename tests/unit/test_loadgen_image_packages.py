"""What the loadgen image copies from this environment (loadgen/mesh/images.py): pyproject's runtime
dependencies and theirs, less what a canary in a container never uses; no docker needed."""

from __future__ import annotations

from loadgen.mesh.images import LOADGEN_IMAGE_LEAVES_OUT, _copy_distributions, runtime_distributions


def test_the_packages_are_the_dependency_closure_less_envoy_and_matplotlib():
    names = {d.metadata["Name"].lower().replace("_", "-") for d in runtime_distributions()}
    # pyproject's own dependencies that canary imports, and some of theirs (httpx -> httpcore, anyio).
    assert {"click", "rich", "httpx", "httpcore", "anyio", "aiohttp", "numpy", "scipy", "hdrhistogram",
            "prometheus-client", "uvloop", "httptools", "psutil", "docker", "pyhcl"} <= names
    assert not names & LOADGEN_IMAGE_LEAVES_OUT
    assert not names & {"pillow", "fonttools", "kiwisolver", "contourpy", "cycler"}  # matplotlib's alone
    assert not names & {"pytest", "ruff", "locust", "check-jsonschema"}  # extras are not runtime


def test_copying_a_distribution_copies_its_files_without_byte_code(tmp_path):
    (click,) = [d for d in runtime_distributions() if d.metadata["Name"].lower() == "click"]
    _copy_distributions([click], tmp_path)
    assert (tmp_path / "click" / "__init__.py").is_file()
    assert any(p.name == "METADATA" for p in tmp_path.glob("click-*.dist-info/*"))
    assert not list(tmp_path.rglob("__pycache__"))
