"""The DaskJob of a batch run, built in the library: what ``cubehub k8s job`` prints and a
notebook applies, with the hints a new user needs."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cubehub import job_manifest
from cubehub.cli import main
from cubehub.errors import ExitCode, InputError, LocalPathWarning
from cubehub.jobspec import make_job
from cubehub.testing.kubeschema import validate_dask_resource, validate_embedded

FIELDS: dict[str, Any] = {
    "stac_api": "earth-search",
    "bbox": (15.40, 47.00, 15.50, 47.08),
    "years": [2022],
    "output": "s3://my-bucket/composites/graz-2022.zarr",
}


@pytest.fixture(autouse=True)
def _outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBERNETES_SERVICE_HOST", "JUPYTER_IMAGE_SPEC", "CUBEHUB_POD_UID"):
        monkeypatch.delenv(name, raising=False)


def test_the_library_builds_a_valid_daskjob_without_a_command() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LocalPathWarning)  # an s3:// output needs no warning
        manifest = job_manifest(
            make_job(**FIELDS), namespace="eo", image="ghcr.io/cubehub/cubehub:1", workers=2
        )
    validate_dask_resource(manifest)
    validate_embedded(manifest)
    assert manifest["metadata"]["name"] == "cubehub-graz-2022"  # from the store's name
    assert manifest["metadata"]["namespace"] == "eo"
    runner = manifest["spec"]["job"]["spec"]["containers"][0]
    carried = yaml.safe_load(next(e["value"] for e in runner["env"] if e["name"] == "CUBEHUB_JOB"))
    assert make_job(**carried).output == FIELDS["output"]


def test_a_missing_namespace_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--namespace"):
        job_manifest(make_job(**FIELDS), image="x:1")
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({**FIELDS, "bbox": list(FIELDS["bbox"])}))
    result = CliRunner().invoke(main, ["k8s", "job", str(job), "--image", "x:1"])
    assert result.exit_code == ExitCode.BAD_INPUT and "--namespace" in result.output


def test_local_paths_are_warned_about(tmp_path: Path) -> None:
    job = make_job(**{**FIELDS, "output": "/tmp/graz-2022.zarr"})
    with pytest.warns(LocalPathWarning, match="/tmp/graz-2022.zarr is a path on this machine"):
        job_manifest(job, namespace="eo", image="x:1")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job.model_dump(mode="json")))
    result = CliRunner().invoke(
        main, ["k8s", "job", str(path), "--namespace", "eo", "--image", "x:1"]
    )
    assert result.exit_code == 0
    assert "warning: output /tmp/graz-2022.zarr is a path on this machine" in result.stderr
    assert yaml.safe_load(result.stdout)["kind"] == "DaskJob"  # stdout: the manifest alone
