"""``cubehub plan``, ``cubehub run`` (bad input) and ``cubehub k8s job``: messages and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask.config
import pytest
import yaml
from click.testing import CliRunner, Result

import cubehub.clusters.backends
from cubehub.cli import main
from cubehub.compute.gapfill import DEFAULT_RULES
from cubehub.demo.archive import Archive
from cubehub.demo.servers import free_port, serve_stac_api
from cubehub.errors import ClusterError, ExitCode, InputError
from cubehub.jobspec import job_from_yaml, make_job
from cubehub.output.open import open_composite
from cubehub.pipeline import run_job
from cubehub.testing.catalog import TILE_EDGE_M, synthetic_items, tile_bbox_lonlat, tile_bounds
from cubehub.testing.kubeschema import validate_dask_resource, validate_embedded


def cli(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def job_fields(store_archive: Archive, store_stac_api: str, tmp_path: Path) -> dict[str, Any]:
    """A 4-tile job on the session's archive and STAC API, writing under ``tmp_path``."""
    return {
        "stac_api": store_stac_api,
        "bbox": list(store_archive.bbox_lonlat()),
        "bounds": list(store_archive.bounds),
        "epsg": store_archive.epsg,
        "years": [2022],
        "bands": ["red", "nir"],
        "chunk_size": 32,
        "tile_size": 32,
        "output": str(tmp_path / "out.zarr"),
    }


def write_job(path: Path, fields: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(fields))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"years": "last year"}, "years"),
        ({"tile_size": "big"}, "tile_size"),
        ({"output": None}, "missing required key 'output'"),
        ({"cluster": {"backend": "k8s"}}, "cluster.backend"),
        ({"cluster": {"kubernetes": {"worker": {"memory": "lots"}}}}, "not a Kubernetes quantity"),
        ({"cluster": {"kubernetes": {"adaptive": {"minimum": 4, "maximum": 2}}}}, "above maximum"),
        ({"seasons": ["sommer"]}, "choose from winter, spring, summer, autumn"),
        ({"on_empty_season": "fill"}, "on_empty_season: fill needs gap_fill"),
        ({"gap_fill": {"order": ["annual", "annual"]}}, "at most once"),
        ({"gap_fill": {"ordr": ["annual"]}}, "unknown key 'gap_fill.ordr' (did you mean 'order'?"),
    ],
)
def test_bad_job_files_are_one_clear_line_and_exit_2(
    tmp_path: Path, job_fields: dict[str, Any], change: dict[str, Any], message: str
) -> None:
    fields = {**job_fields, **change}
    fields = {k: v for k, v in fields.items() if v is not None}
    job = write_job(tmp_path / "job.yaml", fields)
    for command in ("plan", "run"):
        result = cli(command, str(job))
        assert result.exit_code == ExitCode.BAD_INPUT, result.output
        assert message in result.output and str(job) in result.output
        assert not Path(job_fields["output"]).exists()


def test_missing_and_unparsable_job_files(tmp_path: Path) -> None:
    assert "does not exist" in cli("plan", str(tmp_path / "nope.yaml")).output
    broken = tmp_path / "broken.yaml"
    broken.write_text("output: [unclosed\n")
    result = cli("run", str(broken))
    assert result.exit_code == ExitCode.BAD_INPUT and "not valid YAML" in result.output
    result = cli("plan", "env:CUBEHUB_TEST_NO_SUCH_VARIABLE")
    assert (
        result.exit_code == ExitCode.BAD_INPUT and "CUBEHUB_TEST_NO_SUCH_VARIABLE" in result.output
    )


def test_the_real_command_line_prints_one_line_without_traceback(tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "job.yaml",
        {"stac_api": "http://127.0.0.1:9", "bbox": [15, 47, 15.1, 47.1], "years": [2022]},
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cubehub", "plan", str(job)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == ExitCode.BAD_INPUT
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "output" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_on_an_unreachable_scheduler_or_outside_kubernetes_exits_4(
    tmp_path: Path, job_fields: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(tmp_path / "job.yaml", job_fields)
    address = f"tcp://127.0.0.1:{free_port()}"
    with dask.config.set({"cubehub.cluster.connect_timeout": 1}):
        result = cli("run", str(job), "--backend", "address", "--address", address)
    assert result.exit_code == ExitCode.CLUSTER, result.output
    assert address in result.output
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    on_k8s = write_job(tmp_path / "k8s.yaml", {**job_fields, "cluster": {"backend": "kubernetes"}})
    result = cli("run", str(on_k8s))
    assert result.exit_code == ExitCode.CLUSTER and "only inside a Kubernetes pod" in result.output
    # The store is made (and checked) before any cluster exists; no tile of it is complete.
    assert not bool(open_composite(job_fields["output"])["complete"].any())


def test_run_job_without_a_client_outside_a_cluster_says_how_before_making_the_store(
    job_fields: dict[str, Any],
) -> None:
    from distributed import get_client

    with pytest.raises(ValueError):
        get_client()  # no client in this process: the test means what it says
    with pytest.raises(ClusterError, match="no Dask client"):
        run_job(make_job(**job_fields))
    assert not Path(job_fields["output"]).exists()


def test_plan_reports_items_tiles_tasks_bytes_and_memory(
    tmp_path: Path, job_fields: dict[str, Any]
) -> None:
    job = write_job(tmp_path / "job.yaml", job_fields)
    result = cli("plan", str(job), "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["items"] == 23 and plan["items_found"] == 24 and plan["duplicates_dropped"] == 1
    assert [t["id"] for t in plan["tiles"]] == [
        "r0000c0000",
        "r0000c0001",
        "r0001c0000",
        "r0001c0001",
    ]
    assert all(t["tasks"] > 100 for t in plan["tiles"])
    assert sum(len(s["tiles"]) for s in plan["submissions"]) == 4
    assert plan["max_tasks_per_submission"] <= plan["task_budget"] == 100_000
    # At most 23 items x (red, nir: 2 bytes at 10 m; SCL: 1 byte at 20 m) over 64 x 64 px of
    # 10 m; less, since the swath-edge items' footprints cover part of the window only.
    full = 23 * 64 * 64 * (2 + 2 + 1 / 4)
    assert 0.6 * full < plan["bytes_to_read"] < full
    assert plan["output_bytes"] == 64 * 64 * (
        4 * 3 * 2 * 2 + 4 * 3 * 2 + 4 * 2
    )  # red, nir, NDVI, valid_count
    assert plan["worker_memory_bytes"] > 0
    assert not Path(job_fields["output"]).exists()
    text = cli("plan", str(job)).output
    assert "Submissions" in text and "budget 100,000" in text
    # Where the settings the job leaves out come from.
    assert plan["bands"] == ["red", "nir"]
    assert (
        "Defaults     resolution, mask.keep_classes from profile earth-search/sentinel-2-l2a"
        in text
    )


def test_plan_refuses_tiles_above_the_task_budget(
    tmp_path: Path, job_fields: dict[str, Any]
) -> None:
    job = write_job(tmp_path / "job.yaml", job_fields)
    result = cli("plan", str(job), "--task-budget", "100")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "WARNING" in result.output and "lower tile_size" in result.output


def test_plan_of_thousands_of_items_stays_under_the_budget_in_seconds(tmp_path: Path) -> None:
    tiles, years = 8, 3
    items = synthetic_items(tiles * 73 * years, tiles=tiles)
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    xmin, ymin, _, _ = tile_bounds(0)
    with serve_stac_api(path) as api:
        job = write_job(
            tmp_path / "big.yaml",
            {
                "stac_api": api.url,
                "bbox": [
                    *tile_bbox_lonlat(0)[:2],
                    tile_bbox_lonlat(tiles - 1)[2],
                    tile_bbox_lonlat(0)[3],
                ],
                "epsg": 32633,
                "bounds": [xmin, ymin + 40_000, xmin + tiles * TILE_EDGE_M, ymin + 60_480],
                "years": [2022, 2023, 2024],
                "tile_size": 1024,
                "output": str(tmp_path / "never.zarr"),
            },
        )
        started = time.perf_counter()
        result = cli("plan", str(job), "--json")
        seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["items_found"] == len(items) == 1752
    assert len(plan["tiles"]) == 2 * 86
    assert all(s["tasks"] <= 100_000 for s in plan["submissions"])
    assert max(len(s["tiles"]) for s in plan["submissions"]) >= 2
    assert sum(t["tasks_exact"] for t in plan["tiles"]) <= 4  # a few graphs built, not 172
    assert seconds < 60, f"plan took {seconds:.0f} s"


def test_k8s_job_renders_a_valid_daskjob(tmp_path: Path, job_fields: dict[str, Any]) -> None:
    job = write_job(
        tmp_path / "graz_2022.yaml",
        {
            **job_fields,
            "cluster": {"backend": "kubernetes", "kubernetes": {"worker": {"memory": "6Gi"}}},
        },
    )
    out = tmp_path / "daskjob.yaml"
    env = {"AWS_SECRET_ACCESS_KEY": "canary-0c1d-never-in-manifests", "CUBEHUB_USER": "alice"}
    result = cli(
        "k8s",
        "job",
        str(job),
        "--namespace",
        "eo",
        "--image",
        "registry.example.org/cubehub:1",
        "--secret",
        "s3-credentials",
        "--workers",
        "3",
        "--deadline",
        "3600",
        "--ttl",
        "600",
        "-o",
        str(out),
        env=env,
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "canary-0c1d" not in text
    manifest = yaml.safe_load(text)
    validate_dask_resource(manifest)
    validate_embedded(manifest)
    assert manifest["metadata"]["name"] == "cubehub-graz-2022"
    assert manifest["metadata"]["namespace"] == "eo"
    assert manifest["spec"]["job"]["spec"]["activeDeadlineSeconds"] == 3600
    assert manifest["metadata"]["annotations"]["cubehub.io/ttl-seconds-after-finished"] == "600"
    cluster = manifest["spec"]["cluster"]["spec"]
    assert cluster["worker"]["replicas"] == 3
    assert cluster["worker"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "6Gi"
    assert cluster["idleTimeout"] > 0
    runner = manifest["spec"]["job"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "s3-credentials"}} in runner["envFrom"]
    carried = yaml.safe_load(next(e["value"] for e in runner["env"] if e["name"] == "CUBEHUB_JOB"))
    assert carried["cluster"] == {"backend": "address"}  # the runner uses the job's own cluster
    assert make_job(**carried).output == job_fields["output"]
    # The runner reads the job from its environment exactly as rendered.
    planned = cli("plan", "env:CUBEHUB_JOB", "--json", env={"CUBEHUB_JOB": yaml.safe_dump(carried)})
    assert planned.exit_code == 0, planned.output


def test_k8s_job_without_an_image_says_how_to_set_one(
    tmp_path: Path, job_fields: dict[str, Any]
) -> None:
    job = write_job(tmp_path / "job.yaml", job_fields)
    result = cli("k8s", "job", str(job), "--namespace", "eo", env={"JUPYTER_IMAGE_SPEC": None})
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "JUPYTER_IMAGE_SPEC" in result.output
    result = cli(
        "k8s", "job", str(job), "--namespace", "eo", "--image", "x:1", "--name", "Graz_2022"
    )
    assert result.exit_code == ExitCode.BAD_INPUT and "--name" in result.output


def test_k8s_job_rendered_in_a_notebook_pod_takes_its_namespace_image_and_owner(
    tmp_path: Path, job_fields: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    mounted = tmp_path / "namespace"
    mounted.write_text("jhub-users\n")
    monkeypatch.setattr(cubehub.clusters.backends, "NAMESPACE_FILE", mounted)
    pod = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "JUPYTER_IMAGE_SPEC": "quay.io/cubehub/notebook:2026.11",
        "HOSTNAME": "jupyter-alice",
        "CUBEHUB_POD_UID": "8c0a7f3e-1d2b-4e5f-9a6b-7c8d9e0f1a2b",
        "CUBEHUB_USER": "alice",
    }
    job = write_job(tmp_path / "graz.yaml", job_fields)
    result = cli("k8s", "job", str(job), env=pod)
    assert result.exit_code == 0, result.output
    assert "is a path on this machine" in result.stderr  # the local output, warned about
    manifest = yaml.safe_load(result.stdout)
    validate_dask_resource(manifest)
    validate_embedded(manifest)
    meta = manifest["metadata"]
    assert meta["namespace"] == "jhub-users"
    assert meta["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "jupyter-alice", "uid": pod["CUBEHUB_POD_UID"]}
    ]
    assert meta["labels"]["cubehub.io/user"] == "alice"
    assert (
        manifest["spec"]["job"]["spec"]["containers"][0]["image"]
        == "quay.io/cubehub/notebook:2026.11"
    )
    detached = yaml.safe_load(cli("k8s", "job", str(job), "--no-owner-pod", env=pod).stdout)
    assert "ownerReferences" not in detached["metadata"]
    elsewhere = cli("k8s", "job", str(job), "--namespace", "batch", "--owner-pod", env=pod)
    assert elsewhere.exit_code == ExitCode.BAD_INPUT and "cannot own" in elsewhere.output


def test_k8s_gc_without_cluster_access_exits_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = cli("k8s", "gc")
    assert result.exit_code == ExitCode.CLUSTER and "only inside a Kubernetes pod" in result.output
    result = cli(
        "k8s",
        "gc",
        "--namespace",
        "eo",
        "--dry-run",
        env={"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)},
    )
    assert (
        result.exit_code == ExitCode.CLUSTER
        and "cannot list DaskJobs in namespace eo" in result.output
    )


def test_k8s_job_carries_stac_credentials_by_secret_reference_only(
    tmp_path: Path, job_fields: dict[str, Any]
) -> None:
    base = ["k8s", "job", "--namespace", "eo", "--image", "registry.example.org/cubehub:1"]
    with_password = write_job(
        tmp_path / "plain.yaml",
        {**job_fields, "stac_api": "https://alice:canary-7f3a@stac.example.org/v1"},
    )
    refused = cli(*base, str(with_password), "--secret", "s3-credentials")
    assert refused.exit_code == ExitCode.BAD_INPUT, refused.output
    assert "stac_api holds credentials" in refused.output and "--secret" in refused.output
    assert "canary-7f3a" not in refused.output
    by_reference = write_job(
        tmp_path / "ref.yaml", {**job_fields, "stac_api": "env:CUBEHUB_STAC_API"}
    )
    unfed = cli(*base, str(by_reference))
    assert unfed.exit_code == ExitCode.BAD_INPUT and "no Secret gives it" in unfed.output
    rendered = cli(*base, str(by_reference), "--secret", "stac-api")
    assert rendered.exit_code == 0, rendered.output
    runner = yaml.safe_load(rendered.stdout)["spec"]["job"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "stac-api"}} in runner["envFrom"]
    carried = yaml.safe_load(next(e["value"] for e in runner["env"] if e["name"] == "CUBEHUB_JOB"))
    assert carried["stac_api"] == "env:CUBEHUB_STAC_API"


def test_a_year_that_has_not_begun_is_refused_before_the_search(
    tmp_path: Path, job_fields: dict[str, Any]
) -> None:
    job = write_job(tmp_path / "job.yaml", {**job_fields, "years": [2022, 2099]})
    result = cli("plan", str(job))
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "years [2099] have not begun" in result.output and "widen" not in result.output


def test_gap_fill_empty_seasons_and_season_choice_in_a_job_file() -> None:
    base = {"stac_api": "earth-search", "bbox": [15, 47, 15.1, 47.1], "years": [2022]}
    plain = make_job(**base, output="s3://b/graz.zarr")
    assert plain.gap_fill is None and plain.gap_fill_output() is None
    assert plain.empty_season_policy == "nan" and plain.seasons is None
    filled = job_from_yaml(
        "stac_api: earth-search\nbbox: [15, 47, 15.1, 47.1]\nyears: [2022]\n"
        "output: s3://b/graz.zarr\ngap_fill: true\nseasons: [summer, winter]\n"
    )
    assert filled.gap_fill is not None and filled.gap_fill.rules() == DEFAULT_RULES
    assert filled.gap_fill_output() == "s3://b/graz-filled.zarr"
    assert filled.empty_season_policy == "fill" and filled.seasons == ("summer", "winter")
    chosen = make_job(
        **base,
        output="graz",
        gap_fill={"order": ["annual"], "output": "elsewhere.zarr"},
        on_empty_season="nan",
    )
    assert chosen.gap_fill_output() == "elsewhere.zarr" and chosen.empty_season_policy == "nan"
    assert chosen.gap_fill is not None and chosen.gap_fill.rules().legend()[1] == "annual"
    assert make_job(**base, output="graz", gap_fill={}).gap_fill_output() == "graz-filled"
    with pytest.raises(InputError, match="must differ from output"):
        make_job(**base, output="a.zarr", gap_fill={"output": "a.zarr"})
