"""What the loadgen image copies from this environment (loadgen/mesh/images.py): pyproject's runtime
dependencies and theirs, less what a canary in a container never uses; no docker needed."""

from __future__ import annotations

from pathlib import Path

from loadgen.mesh.images import LOADGEN_IMAGE_LEAVES_OUT, _copy_distributions, copied_to_site, runtime_distributions


def test_the_packages_are_the_dependency_closure_less_what_the_image_never_imports():
    names = {d.metadata["Name"].lower().replace("_", "-") for d in runtime_distributions()}
    # pyproject's own dependencies that canary, run, shift, serve and worker import, and some of theirs.
    assert {"click", "rich", "httpx", "httpcore", "anyio", "aiohttp", "numpy", "scipy", "hdrhistogram",
            "prometheus-client", "uvloop", "httptools", "psutil", "pyhcl", "certifi"} <= names
    assert not names & LOADGEN_IMAGE_LEAVES_OUT
    assert not names & {"pillow", "fonttools", "kiwisolver", "contourpy", "cycler"}  # matplotlib's alone
    assert not names & {"requests", "urllib3", "charset-normalizer"}  # docker's alone
    assert not names & {"mdurl"}  # markdown-it-py's
    assert not names & {"pytest", "ruff", "locust", "check-jsonschema", "ruamel.yaml"}  # extras are not runtime


def test_copying_a_distribution_copies_its_files_without_byte_code(tmp_path):
    (click,) = [d for d in runtime_distributions() if d.metadata["Name"].lower() == "click"]
    _copy_distributions([click], tmp_path)
    assert (tmp_path / "click" / "__init__.py").is_file()
    assert any(p.name == "METADATA" for p in tmp_path.glob("click-*.dist-info/*"))
    assert not list(tmp_path.rglob("__pycache__"))


def test_test_suites_stubs_and_sources_stay_out():
    kept = ["numpy/__init__.py", "numpy/testing/__init__.py", "scipy/stats/_stats.cpython-311-x86_64-linux-gnu.so",
            "numpy.libs/libscipy_openblas64_-32a4b2a6.so", "numpy-2.4.6.dist-info/METADATA", "aiohttp/py.typed"]
    dropped = ["numpy/_core/tests/test_api.py", "scipy/stats/tests/data/x.npz", "numpy/__init__.pyi",
               "scipy/special/cython_special.pxd", "numpy/_core/include/numpy/ndarrayobject.h",
               "scipy/_lib/__pycache__/x.cpython-311.pyc", "../../../bin/loadgen"]
    assert [copied_to_site(Path(p)) for p in kept] == [True] * len(kept)
    assert [copied_to_site(Path(p)) for p in dropped] == [False] * len(dropped)
