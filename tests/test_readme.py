"""The README walked as a new user would: its job file, its commands and its Python example,
as written, with only what needs the internet swapped for this suite's servers (the public
STAC API for the test archive's, the bucket for a folder). The xarray block runs on the demo's
output in ``tests/demo/test_demo.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cubehub.output.open import open_composite

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks in ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[list[str]]:
    """The ``cubehub ...`` lines of a bash block, without comments and pipes."""
    lines = (line.split("#", 1)[0].split("|", 1)[0].split() for line in block.splitlines())
    return [words for words in lines if words[:1] == ["cubehub"]]


def cubehub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cubehub", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


def offline(archive: Any, stac_api: str, output: Path) -> dict[str, Any]:
    """What the README's job reaches over the internet, on this suite's servers."""
    return {"stac_api": stac_api, "bbox": list(archive.bbox_lonlat()), "output": str(output)}


def test_the_job_file_plans_and_runs_with_the_commands_as_written(
    tmp_path: Path, store_archive: Any, store_stac_api: str
) -> None:
    (job_block,) = [b for b in blocks("yaml") if "stac_api:" in b]
    name = job_block.splitlines()[0].lstrip("# ").strip()  # "# graz-2022.yaml"
    fields = {
        **yaml.safe_load(job_block),
        **offline(store_archive, store_stac_api, tmp_path / "c.zarr"),
    }
    (tmp_path / name).write_text(yaml.safe_dump(fields))
    (run_block,) = [b for b in blocks("bash") if "cubehub run" in b]
    ran = []
    for words in commands(run_block):
        if words[1] in ("plan", "run"):  # `k8s job | kubectl apply` needs a cluster
            done = cubehub(*words[1:], cwd=tmp_path)
            assert done.returncode == 0, f"{' '.join(words)}: {done.stderr[-3000:]}"
            ran.append(words[1])
    assert ran == ["plan", "run"]
    ds = open_composite(str(tmp_path / "c.zarr"))
    assert bool(ds["complete"].all()) and {"NDVI", "NDMI"} <= set(ds.data_vars)
    # The commands that look at a store, on this one.
    (look_block,) = [b for b in blocks("bash") if "cubehub info" in b]
    for words in commands(look_block):
        args = [
            str(tmp_path / "c.zarr") if a == "demo-output/composite.zarr" else a for a in words[1:]
        ]
        done = cubehub(*args, cwd=tmp_path)
        assert done.returncode == 0, f"{' '.join(words)}: {done.stderr[-3000:]}"
    assert list(tmp_path.rglob("*.png")), "preview wrote no picture"


def test_the_python_example_runs_as_written(
    tmp_path: Path, store_archive: Any, store_stac_api: str
) -> None:
    (example,) = [b for b in blocks("python") if "cubehub.run_job" in b]
    swaps = offline(store_archive, store_stac_api, tmp_path / "p.zarr")
    code = (
        example.replace('stac_api="earth-search"', f"stac_api={swaps['stac_api']!r}")
        .replace("bbox=(15.40, 47.00, 15.50, 47.08)", f"bbox={tuple(swaps['bbox'])!r}")
        .replace('output="s3://my-bucket/composites/graz-2022.zarr"', f"output={swaps['output']!r}")
    )
    assert code.count(repr(swaps["output"])) == 1, "the README's example changed: update the swaps"
    script = tmp_path / "example.py"
    script.write_text(
        "if __name__ == '__main__':\n" + "".join(f"    {line}\n" for line in code.splitlines())
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert bool(open_composite(swaps["output"])["complete"].all())
