"""The notebooks in ``notebooks/``: stored clean, and each runs top to bottom on the demo archive.

Each notebook is executed with nbclient in its own temporary folder, on a kernel that runs
this interpreter (the project's venv, not on PATH), and fails on the first cell error or on
a traceback or warning printed to stderr; every notebook
asserts properties of its own results in its cells. Afterwards no server it started may
be left running.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path

import fsspec
import nbformat
import psutil
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from cubehub.catalog.search import search_items
from cubehub.demo import start_demo
from cubehub.errors import InputError
from cubehub.notebook import show_progress

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = [
    "01-quickstart.ipynb",
    "02-scaling.ipynb",
    "03-batch.ipynb",
    "04-shared-outputs.ipynb",
    "05-land-cover.ipynb",
]
KERNEL = "cubehub-tests"
#: Seconds one cell may run; a whole notebook takes well under a minute on 2 cores.
CELL_TIMEOUT = 300


def _read(name: str) -> nbformat.NotebookNode:
    notebook: nbformat.NotebookNode = nbformat.read(NOTEBOOKS / name, as_version=4)
    return notebook


def test_the_five_notebooks_are_there() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_stored_without_outputs_and_valid(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name} has no code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{name}: clear the outputs before committing"
        )
    assert "widgets" not in nb.metadata, f"{name}: stored widget state; clear it"


@pytest.mark.parametrize("name", EXPECTED)
def test_opens_with_a_sentence_on_what_it_shows(name: str) -> None:
    first = _read(name).cells[0]
    assert first.cell_type == "markdown"
    text = re.sub(r"^#.*$", "", first.source, flags=re.MULTILINE).strip()
    assert text.startswith("This notebook shows"), f"{name} should open by saying what it shows"


@pytest.mark.parametrize("name", EXPECTED)
def test_asserts_its_results_and_stops_what_it_starts(name: str) -> None:
    sources = [c.source for c in _read(name).cells if c.cell_type == "code"]
    assert any(re.search(r"^\s*assert ", s, flags=re.MULTILINE) for s in sources), (
        f"{name} asserts nothing"
    )
    if any("start_demo(" in s for s in sources):
        assert "demo.close()" in sources[-1], f"{name}: stop the demo servers in the last cell"


@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec that runs this very interpreter with its scripts' folder off PATH, as a
    kernel of a virtual environment that was never activated: a notebook that calls a plain
    ``cubehub`` fails here as it would there."""
    folder = tmp_path_factory.mktemp("kernels")
    (folder / KERNEL).mkdir()
    scripts = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != scripts]
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cubehub tests",
        "language": "python",
        "env": {"PATH": os.pathsep.join(path)},
    }
    (folder / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(folder)], ensure_native_kernel=False)


# --- the notebook helpers ----------------------------------------------------------------------


def test_start_demo_serves_every_year_through_one_api_and_stops(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    with start_demo(root, size=32, years=[2022, 2021], revisit_days=16) as demo:
        assert sorted(demo.archives) == [2021, 2022] and demo.archive.spec.year == 2022
        items = search_items(
            demo.stac_api,
            collections=["sentinel-2-l2a"],
            bbox=demo.bbox,
            datetime="2020-12-02/2022-12-01",
        )
        times = [item.datetime for item in items]
        assert None not in times
        years = {t.year for t in times if t is not None}
        assert years == {2020, 2021, 2022}  # ODSE 2021 starts on 2 Dec 2020
        href = items[0].assets["red"].href
        assert href.startswith(f"{demo.files_url}/2021/")
        with urllib.request.urlopen(href) as response:  # the COG is served
            assert response.read(4) in (b"II*\x00", b"MM\x00*")
        with pytest.raises(InputError, match="serves years \\[2021, 2022\\], not 2019"):
            demo.truth(2019)
        assert _processes_mentioning(str(root)), "the STAC API should be running"
    assert not _processes_mentioning(str(root)), "close() should stop the STAC API"
    with pytest.raises(OSError):
        urllib.request.urlopen(demo.stac_api, timeout=5)


@pytest.mark.slow
def test_start_demo_s3_sets_the_environment_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9/unused")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    demo = start_demo(tmp_path / "demo", size=32, revisit_days=16, s3_buckets=["shared"])
    try:
        assert demo.s3 is not None and os.environ["AWS_ENDPOINT_URL"] == demo.s3.endpoint_url
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.pipe("shared/hello.txt", b"hello")
        assert fs.cat("shared/hello.txt") == b"hello"
    finally:
        demo.close()
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9/unused"
    assert "AWS_ACCESS_KEY_ID" not in os.environ
    assert not _processes_mentioning(str(tmp_path))


def test_bad_demo_requests_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least one year"):
        start_demo(tmp_path, years=[])
    with pytest.raises(InputError, match="multiple of 32"):
        start_demo(tmp_path, size=50)
    with pytest.raises(InputError, match="nothing to show"):
        show_progress()
    assert not list(tmp_path.iterdir()), "nothing is built for a bad request"


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of other processes that name ``text`` (a test's own folder)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if text in cmd and proc.info["pid"] != os.getpid():
            found.append(cmd)
    return found


def _execute(
    nb: nbformat.NotebookNode, folder: Path, specs: KernelSpecManager, *, allow_errors: bool = False
) -> None:
    """Run ``nb`` in ``folder``; raises CellExecutionError, with the cell and its traceback, on any error."""
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    client = NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        startup_timeout=120,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(folder)}},
    )
    try:
        client.execute()
    finally:
        km.shutdown_kernel()  # nbclient leaves a kernel it was given running


def test_a_failing_cell_fails_the_run(tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"),
            nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'arithmetic broke'"),
            nbformat.v4.new_code_cell("open('not-reached', 'w').close()"),
        ]
    )
    with pytest.raises(CellExecutionError, match="arithmetic broke"):
        _execute(nb, tmp_path, kernel_specs)
    assert nb.cells[0].outputs[0].text.strip() == sys.executable  # the venv's interpreter ran it
    assert not (tmp_path / "not-reached").exists()


def test_the_extension_shows_cubehub_errors_as_one_line(
    tmp_path: Path, kernel_specs: KernelSpecManager
) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "%load_ext cubehub.notebook\nfrom cubehub.errors import InputError"
            ),
            nbformat.v4.new_code_cell("raise InputError('band [red] is missing; add it to bands')"),
            nbformat.v4.new_code_cell("1 / 0"),
        ]
    )
    _execute(nb, tmp_path, kernel_specs, allow_errors=True)
    (ours,) = nb.cells[1].outputs
    assert (
        ours.output_type == "error" and ours.ename == "InputError"
    )  # still an error: a run stops on it
    assert (
        len(ours.traceback) == 1 and "band [red] is missing; add it to bands" in ours.traceback[0]
    )
    (other,) = nb.cells[2].outputs
    assert other.ename == "ZeroDivisionError" and len(other.traceback) > 1  # the full traceback


def test_show_progress_displays_dasks_widget_and_returns_when_the_work_is_done(
    tmp_path: Path, kernel_specs: KernelSpecManager
) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import time\n"
                "from distributed import Client, LocalCluster\n"
                "from cubehub.notebook import show_progress\n"
                "cluster = LocalCluster(n_workers=1, processes=False, dashboard_address=':0')\n"
                "client = Client(cluster)\n"
                "future = client.submit(time.sleep, 1)\n"
                "show_progress(future)\n"
                "print('done' if future.done() else 'still running')\n"
                "client.close(); cluster.close()"
            )
        ]
    )
    _execute(nb, tmp_path, kernel_specs)
    outputs = nb.cells[0].outputs
    widgets = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widgets, outputs  # the widget is displayed, not discarded
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "done" in printed and "still running" not in printed, printed


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_runs_top_to_bottom(name: str, tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    nb = _read(name)
    started = time.perf_counter()
    _execute(nb, tmp_path, kernel_specs)
    print(f"{name}: {time.perf_counter() - started:.0f} s")
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    # What a reader sees as trouble: a traceback or a warning printed by any cell.
    noisy = [
        o.text
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
        and o.name == "stderr"
        and re.search(r"Traceback|Warning", o.text)
    ]
    assert not noisy, noisy
    assert not _processes_mentioning(str(tmp_path)), "servers of the notebook are still running"
