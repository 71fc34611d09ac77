"""Batch jobs: ``cubehub plan``, ``cubehub run``, ``cubehub k8s job`` and ``cubehub k8s gc``.

A job is a YAML file (:class:`cubehub.jobspec.CompositeJob`), validated once here at the
edge. ``JOB`` is a path, or ``env:NAME`` to read the YAML from environment variable NAME
(how the runner pod of a DaskJob gets it). Exit codes: 0 done, 2 bad input, 3 data error,
4 cluster error, 130 interrupted (Ctrl-C or SIGTERM; completed tiles are kept).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from concurrent.futures import CancelledError
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import yaml

from cubehub.errors import ClusterError, InputError

if TYPE_CHECKING:
    from cubehub.jobspec import CompositeJob

log = logging.getLogger("cubehub.cli.jobs")
_BACKENDS = ("local", "address", "kubernetes")


def read_job(spec: str) -> CompositeJob:
    """The validated job, from a path or ``env:NAME``."""
    # Imported here: the job model pulls in the STAC client, which `cubehub --help` skips.
    from cubehub.jobspec import load_job, make_job

    if not spec.startswith("env:"):
        return load_job(spec)
    name = spec.removeprefix("env:")
    text = os.environ.get(name)
    if text is None:
        raise InputError(f"environment variable {name} (from JOB {spec!r}) is not set; it should hold the job YAML")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"job in ${name} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(f"job in ${name} must hold a mapping of settings, e.g. 'output: ...'")
    return make_job(**raw)


_budget_option = click.option(
    "--task-budget", type=click.IntRange(min=1),
    help="Most tasks in one submission to the scheduler, default 100000 (about 1 GB of scheduler memory).",
)


def _budget(task_budget: int | None) -> int:
    from cubehub.pipeline import TASK_BUDGET

    return task_budget or TASK_BUDGET


@click.command()
@click.argument("job", metavar="JOB")
@_budget_option
@click.option("--threads-per-worker", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads of one worker, for the memory estimate.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (with every tile).")
def plan(job: str, task_budget: int | None, threads_per_worker: int, as_json: bool) -> None:
    """Show what a job would do, without computing any pixels.

    Searches and normalises the items, lays out the tiles and builds the task graph of a
    few representative tiles, then prints items found, tiles, tasks per tile and per
    submission against the task budget, bytes to read, output size and the estimated
    worker memory. Exits with code 2 if a tile alone exceeds the task budget.

    \b
    Example:
      cubehub plan graz-2022.yaml
      cubehub plan graz-2022.yaml --json > plan.json
    """
    from cubehub.pipeline import plan_job
    from cubehub.planning import summarize_plan

    composite_job = read_job(job)
    budget = _budget(task_budget)
    summary = summarize_plan(plan_job(composite_job), task_budget=budget, threads_per_worker=threads_per_worker)
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


def _cluster_options(composite_job: CompositeJob, backend: str | None, address: str | None) -> dict[str, Any]:
    """Keyword arguments of :func:`cubehub.cluster.cluster`: options > job file > settings."""
    options = composite_job.cluster.overrides()
    if backend is not None:
        options["backend"] = backend
    if address is not None:
        options["address"] = address
    return options


@click.command()
@click.argument("job", metavar="JOB")
@click.option("--backend", type=click.Choice(_BACKENDS),
              help="Where to run: local, address or kubernetes (default: the job's cluster.backend, then settings).")
@click.option("--address", help="Scheduler address for --backend address, e.g. tcp://10.0.0.5:8786.")
@_budget_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars, only log lines.")
def run(job: str, backend: str | None, address: str | None, task_budget: int | None, quiet: bool) -> None:
    """Run a job file tile by tile on a Dask cluster; resumable.

    Validates the job, plans it on metadata, then computes tile by tile with a bounded
    number of tiles in flight, so no submission exceeds the task budget. Completed tiles
    are recorded in the store: a rerun after an interruption skips them. Exit codes: 0
    done, 2 bad input, 3 data error, 4 cluster error, 130 interrupted (Ctrl-C, SIGTERM).

    \b
    Example:
      cubehub run graz-2022.yaml
      cubehub run graz-2022.yaml --backend address --address tcp://10.0.0.5:8786
    """
    from distributed import KilledWorker
    from distributed.comm import CommClosedError

    from cubehub.clusters import cluster
    from cubehub.pipeline import run_job

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    composite_job = read_job(job)
    options = _cluster_options(composite_job, backend, address)
    log.info("job %s: output %s, %d year(s), bbox %s", job, composite_job.output, len(composite_job.years), composite_job.bbox)
    # Kubernetes stops pods (deadline, eviction) with SIGTERM: the CLI group stops on it as
    # on Ctrl-C (cubehub.interrupts).
    try:
        with cluster(**options) as client:
            log.info("cluster %s, dashboard %s", client.scheduler_info().get("address"), client.dashboard_link)
            result = run_job(composite_job, client, task_budget=_budget(task_budget), show_progress=not quiet)
    except KilledWorker as exc:
        raise ClusterError(
            f"workers died repeatedly while running a task ({exc}); give workers more memory or lower chunk_size"
        ) from exc
    except (CommClosedError, CancelledError) as exc:
        raise ClusterError(f"lost the connection to the Dask scheduler: {exc}") from exc
    log.info("done: %d tile(s) written, %d skipped, %.1f s", len(result.tiles_written), len(result.tiles_skipped), result.seconds)
    click.echo(f"Zarr store   {result.output}")
    click.echo(f"Tiles        {len(result.tiles_written)} written, {len(result.tiles_skipped)} already complete")
    click.echo(f"Items        {result.items_found} found, {result.duplicates_dropped} duplicate(s) dropped")
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
@click.option("--secret", "secrets", multiple=True,
              help="Secret whose keys become environment variables of every pod (repeatable).")
@click.option("--deadline", type=click.IntRange(min=1), help="activeDeadlineSeconds of the runner (default 86400).")
@click.option("--ttl", type=click.IntRange(min=0), help="Seconds the finished job is kept for its logs (default 604800).")
@click.option("--owner-pod/--no-owner-pod", default=None,
              help="Delete the job with the notebook pod that renders it (default: yes inside a pod that "
                   "has $CUBEHUB_POD_UID, when the job goes to the pod's namespace).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the manifest here, not stdout.")
def k8s_job(
    job: str, name: str | None, namespace: str | None, image: str | None, workers: int | None,
    secrets: tuple[str, ...], deadline: int | None, ttl: int | None, owner_pod: bool | None, output: Path | None,
) -> None:
    """Render the DaskJob that runs JOB through the dask-kubernetes operator.

    The operator starts a Dask cluster and a runner pod that runs `cubehub run` with the
    job (carried in the manifest), and deletes the cluster when the runner ends. The
    runner is stopped after --deadline seconds; `cubehub k8s gc` deletes the finished job
    --ttl seconds after it ended. Credentials go in by Secret reference (--secret) only.
    Rendered in a notebook pod, the job belongs to that pod unless --no-owner-pod.

    \b
    Example:
      cubehub k8s job graz-2022.yaml --namespace eo --secret s3-credentials | kubectl apply -f -
    """
    from cubehub import config, kube
    from cubehub.clusters import kube_settings, pod_namespace, pod_template

    composite_job = read_job(job)
    overrides: dict[str, Any] = dict(composite_job.cluster.overrides().get("kubernetes", {}))
    overrides.update({k: v for k, v in (("namespace", namespace), ("image", image)) if v is not None})
    if secrets:
        overrides["secrets"] = list(secrets)
    try:
        here = pod_namespace()
    except ClusterError:
        here = None
    values, settings = kube_settings(overrides, here)
    owner = None
    if owner_pod or (owner_pod is None and here == settings.namespace and os.environ.get("CUBEHUB_POD_UID")):
        if here is None:
            raise InputError("--owner-pod works only inside the notebook pod that should own the job")
        owner = kube.PodOwner.from_environ(os.environ, here)
    defaults = config.get("cluster.kubernetes.job")
    stem = "job" if job.startswith("env:") else Path(job).stem.lower().replace("_", "-")
    job_name = kube.check_name(name or f"cubehub-{stem}", "DaskJob name (--name)")
    # The runner connects to the job's own cluster, whatever backend the file names.
    runner_job = composite_job.model_dump(mode="json", exclude={"cluster"}) | {"cluster": {"backend": "address"}}
    manifest = kube.daskjob_manifest(
        job_name,
        yaml.safe_dump(runner_job, sort_keys=False),
        settings,
        workers=workers or int(defaults["workers"]),
        runner=kube.PodSize.from_mapping(defaults["runner"]),
        active_deadline_seconds=deadline or int(defaults["active_deadline_seconds"]),
        ttl_seconds_after_finished=int(defaults["ttl_seconds_after_finished"]) if ttl is None else ttl,
        owner=owner,
        user=os.environ.get("CUBEHUB_USER"),
        template=pod_template(values),
    )
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

    from cubehub import config, kube
    from cubehub.clusters import pod_namespace

    target = namespace or config.get("cluster.kubernetes.namespace") or pod_namespace()
    try:
        jobs = {str(j.name): j for j in kr8s.get("daskjobs.kubernetes.dask.org", namespace=target)}
    except Exception as exc:
        raise ClusterError(f"cannot list DaskJobs in namespace {target}: {exc}") from exc
    expired = kube.expired_daskjobs([j.raw for j in jobs.values()], datetime.now(UTC))
    for job_name in expired:
        click.echo(f"{'would delete' if dry_run else 'deleting'} daskjob/{job_name}")
        if not dry_run:
            jobs[job_name].delete()
    click.echo(f"{len(expired)} of {len(jobs)} DaskJob(s) in {target} past their TTL")


COMMANDS = [plan, run, k8s]
