"""Batch jobs: ``cubehub plan``, ``cubehub run``, ``cubehub k8s job`` and ``cubehub k8s gc``.

A job is a YAML file (:class:`cubehub.jobspec.CompositeJob`), validated once here at the
edge. ``JOB`` is a path, or ``env:NAME`` to read the YAML from environment variable NAME
(how the runner pod of a DaskJob gets it). Exit codes: 0 done, 2 bad input, 3 data error,
4 cluster error, 130 interrupted (Ctrl-C or SIGTERM; completed tiles are kept).

``cubehub run`` checks everything that needs no pixels — the job, the output location, the
search, the task budget, the store — before it starts (or connects to) a cluster, so a bad
job costs no pods.
"""

from __future__ import annotations

import json
import logging
import urllib.request
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
import yaml

from cubehub.cli.logs import long_command_logging
from cubehub.clusters.spec import BACKENDS
from cubehub.credentials import redact
from cubehub.errors import ClusterError, CubehubWarning, InputError

if TYPE_CHECKING:
    from distributed import Client

    from cubehub.jobspec import CompositeJob
    from cubehub.pipeline import JobResult

log = logging.getLogger("cubehub.cli.jobs")
#: Seconds to wait for the scheduler's dashboard page before leaving its link out.
DASHBOARD_PROBE_S = 3.0


_budget_option = click.option(
    "--task-budget",
    type=click.IntRange(min=1),
    help="Most tasks in one submission to the scheduler, default 100000 (about 1 GB of scheduler memory).",
)


def _budget(task_budget: int | None) -> int:
    from cubehub.pipeline import TASK_BUDGET

    return task_budget or TASK_BUDGET


@click.command()
@click.argument("job", metavar="JOB")
@_budget_option
@click.option(
    "--threads-per-worker",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Threads of one worker, for the memory estimate.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (with every tile).")
def plan(job: str, task_budget: int | None, threads_per_worker: int, as_json: bool) -> None:
    """Show what a job would do, without computing any pixels.

    Searches and normalises the items, lays out the tiles and builds the task graph of a
    few representative tiles, then prints items found, the bands and which settings came
    from the collection profile, tiles, tasks per tile and per submission against the task
    budget, bytes to read, output size and the estimated worker memory. Exits with code 2
    if a tile alone exceeds the task budget.

    A job file sets only what differs from its collection's defaults: bands, resolution
    and the cloud mask come from the collection profile (Sentinel-2: six bands at 10 m,
    SCL classes; Landsat: the seven ODSE bands at 30 m, QA_PIXEL bits).

    \b
    Example:
      cubehub plan graz-2022.yaml
      cubehub plan graz-2022.yaml --json > plan.json
    """
    from cubehub.jobspec import load_job
    from cubehub.pipeline import plan_job
    from cubehub.planning import summarize_plan

    composite_job = load_job(job)
    budget = _budget(task_budget)
    summary = summarize_plan(
        plan_job(composite_job), task_budget=budget, threads_per_worker=threads_per_worker
    )
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=1))
    else:
        for line in summary.lines():
            click.echo(line)
    if summary.over_budget:
        worst = max(s.tasks for s in summary.over_budget)
        raise InputError(
            f"{len(summary.over_budget)} tile(s) need more than the task budget of {budget:,} tasks "
            f"each (up to {worst:,}); lower tile_size (now {composite_job.tile_size}) or raise --task-budget"
        )


def _cluster_options(
    composite_job: CompositeJob, backend: str | None, address: str | None
) -> dict[str, Any]:
    """Keyword arguments of :func:`cubehub.cluster.cluster`: options > job file > settings."""
    options = composite_job.cluster.overrides()
    if backend is not None:
        options["backend"] = backend
    if address is not None:
        options["address"] = address
    return options


@click.command()
@click.argument("job", metavar="JOB")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    help="Where to run: local, address or kubernetes (default: the job's cluster.backend, then settings).",
)
@click.option(
    "--address", help="Scheduler address for --backend address, e.g. tcp://10.0.0.5:8786."
)
@_budget_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, only log lines.")
@click.pass_context
def run(
    ctx: click.Context,
    job: str,
    backend: str | None,
    address: str | None,
    task_budget: int | None,
    quiet: bool,
) -> None:
    """Run a job file tile by tile on a Dask cluster; resumable.

    Validates the job, checks the output and plans it on metadata before any cluster is
    started, then computes tile by tile with a bounded number of tiles in flight, so no
    submission exceeds the task budget. Each tile is recorded in the store as soon as it
    is written: a rerun after an interruption skips it. Assets that could not be read
    (on_read_error: missing) are listed, and a rerun retries their tiles. Exit codes: 0
    done, 2 bad input, 3 data error, 4 cluster error, 130 interrupted (Ctrl-C, SIGTERM).

    Bands, resolution and the cloud mask a job leaves out come from its collection's
    profile (cubehub plan JOB shows which).

    \b
    Example:
      cubehub run graz-2022.yaml
      cubehub run graz-2022.yaml --backend address --address tcp://10.0.0.5:8786
    """
    from cubehub.clusters.backends import cluster
    from cubehub.jobspec import load_job
    from cubehub.pipeline import prepare_job

    long_command_logging(ctx)
    composite_job = load_job(job)
    options = _cluster_options(composite_job, backend, address)
    log.info(
        "job %s: output %s, %d year(s), bbox %s",
        job,
        redact(composite_job.output),
        len(composite_job.years),
        composite_job.bbox,
    )
    # Everything that needs no pixels, before any cluster (or pod) exists.
    prepared = prepare_job(composite_job, task_budget=_budget(task_budget))
    log.info("%d tile(s) to write, %d already complete", len(prepared.todo), len(prepared.skipped))
    # Kubernetes stops pods (deadline, eviction) with SIGTERM: the CLI group stops on it as
    # on Ctrl-C (cubehub.clusters.interrupts).
    with cluster(**options) as client:
        log.info("cluster %s%s", client.scheduler_info().get("address"), _dashboard(client))
        result = prepared.run(client, show_progress=not quiet)
    log.info(
        "done: %d tile(s) written, %d skipped, %.1f s",
        len(result.tiles_written),
        len(result.tiles_skipped),
        result.seconds,
    )
    _summary(result)


def _dashboard(client: Client) -> str:
    """``", dashboard <link>"`` when the scheduler serves a dashboard, else nothing.

    A scheduler started with ``--no-dashboard`` still has an HTTP server (health, metrics)
    and the client still makes up a link to it; only asking the page tells them apart.
    """
    from cubehub.clusters.backends import dashboard_link

    info = client.scheduler_info()
    port = info.get("services", {}).get("dashboard")
    host = urlsplit(str(info.get("address", ""))).hostname
    if port is None or host is None:
        return ""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=DASHBOARD_PROBE_S):
            return f", dashboard {dashboard_link(client)}"
    except (OSError, ValueError):  # 404 without a dashboard, or not reachable from here
        return ""


def _summary(result: JobResult) -> None:
    click.echo(f"Zarr store   {redact(result.output)}")
    click.echo(
        f"Tiles        {len(result.tiles_written)} written, {len(result.tiles_skipped)} already complete"
    )
    click.echo(
        f"Items        {result.items_found} found, {result.duplicates_dropped} duplicate(s) dropped"
    )
    if result.missing_assets:
        hrefs = sorted({h for tile in result.missing_assets.values() for h in tile})
        click.echo(
            f"Missing      {len(hrefs)} asset(s) unreadable, counted as nodata in "
            f"{len(result.missing_assets)} tile(s) ({', '.join(sorted(result.missing_assets))}); "
            "recorded in the store: run the job again to retry those tiles"
        )
        for href in hrefs:
            click.echo(f"  {href}")
    if result.gap_fill is not None:
        click.echo(
            f"Filled store {result.gap_fill.output} ({len(result.gap_fill.tiles_written)} tile(s) "
            f"filled, {len(result.gap_fill.seasons_refilled)} season(s) filled again)"
        )
    click.echo(f"Time         {result.seconds:.1f} s")


@click.group()
def k8s() -> None:
    """Kubernetes manifests for cubehub jobs, and their cleanup.

    \b
    Example:
      cubehub k8s job graz-2022.yaml --namespace eo | kubectl apply -f -
    """


@k8s.command("job")
@click.argument("job", metavar="JOB")
@click.option("--name", help="DaskJob name (default: cubehub-<job file name>); also its cluster's.")
@click.option("--namespace", help="Namespace (default: settings, then this pod's).")
@click.option("--image", help="Image of every pod (default: settings, then $JUPYTER_IMAGE_SPEC).")
@click.option("--workers", type=click.IntRange(min=1), help="Dask workers (default: settings, 4).")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    help="Secret whose keys become environment variables of every pod (repeatable).",
)
@click.option(
    "--deadline",
    type=click.IntRange(min=1),
    help="activeDeadlineSeconds of the runner (default 86400).",
)
@click.option(
    "--ttl",
    type=click.IntRange(min=0),
    help="Seconds the finished job is kept for its logs (default 604800).",
)
@click.option(
    "--owner-pod/--no-owner-pod",
    default=None,
    help="Delete the job with the notebook pod that renders it (default: yes inside a pod that "
    "has $CUBEHUB_POD_UID, when the job goes to the pod's namespace).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the manifest here, not stdout.",
)
def k8s_job(
    job: str,
    name: str | None,
    namespace: str | None,
    image: str | None,
    workers: int | None,
    secrets: tuple[str, ...],
    deadline: int | None,
    ttl: int | None,
    owner_pod: bool | None,
    output: Path | None,
) -> None:
    """Render the DaskJob that runs JOB through the dask-kubernetes operator.

    The operator starts a Dask cluster and a runner pod that runs `cubehub run` with the
    job (carried in the manifest), and deletes the cluster when the runner ends. The
    runner is stopped after --deadline seconds; `cubehub k8s gc` deletes the finished job
    --ttl seconds after it ended. Credentials go in by Secret reference (--secret) only: a
    job whose STAC API URL holds a password is refused; write `stac_api: env:NAME` and give
    the URL as key NAME of a Secret. Rendered in a notebook pod, the job belongs to that
    pod unless --no-owner-pod.

    \b
    Example:
      cubehub k8s job graz-2022.yaml --namespace eo --secret s3-credentials | kubectl apply -f -
    """
    from cubehub.batch import default_job_name, job_manifest
    from cubehub.cli.console import print_warning
    from cubehub.jobspec import load_job

    composite_job = load_job(job)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CubehubWarning)
        manifest = job_manifest(
            composite_job,
            name=name or default_job_name("job" if job.startswith("env:") else Path(job).stem),
            namespace=namespace,
            image=image,
            workers=workers,
            secrets=secrets,
            deadline_s=deadline,
            ttl_s=ttl,
            owner_pod=owner_pod,
        )
    for warning in caught:
        if issubclass(warning.category, CubehubWarning):
            print_warning(str(warning.message))
    text = yaml.safe_dump(manifest, sort_keys=False)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


@k8s.command("gc")
@click.option("--namespace", help="Namespace (default: settings, then this pod's).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted, delete nothing.")
def k8s_gc(namespace: str | None, dry_run: bool) -> None:
    """Delete finished DaskJobs made by cubehub whose time to live has passed.

    A DaskJob rendered by `cubehub k8s job` carries the annotation
    cubehub.io/ttl-seconds-after-finished; the Kubernetes TTL controller only knows batch
    Jobs, so run this from a CronJob (or by hand) to clean up. Needs list and delete on
    daskjobs in the namespace.

    \b
    Example:
      cubehub k8s gc --namespace eo --dry-run
    """
    from datetime import UTC, datetime

    import kr8s

    from cubehub import config
    from cubehub.clusters import manifests
    from cubehub.clusters.backends import pod_namespace

    target = namespace or config.get("cluster.kubernetes.namespace") or pod_namespace()
    try:
        jobs = {str(j.name): j for j in kr8s.get("daskjobs.kubernetes.dask.org", namespace=target)}
    except Exception as exc:
        raise ClusterError(f"cannot list DaskJobs in namespace {target}: {exc}") from exc
    expired = manifests.expired_daskjobs([j.raw for j in jobs.values()], datetime.now(UTC))
    for job_name in expired:
        click.echo(f"{'would delete' if dry_run else 'deleting'} daskjob/{job_name}")
        if not dry_run:
            jobs[job_name].delete()
    click.echo(f"{len(expired)} of {len(jobs)} DaskJob(s) in {target} past their TTL")


COMMANDS = [plan, run, k8s]
