"""Jupyter server settings baked into the cubehub image (/etc/jupyter/jupyter_server_config.py).

A user's Dask dashboard runs on the scheduler pod; the notebook shows it through
jupyter-server-proxy at {JUPYTERHUB_SERVICE_PREFIX}proxy/<scheduler host>:8787/status (the link
the chart's Dask config sets). The proxy forwards only to hosts allowed here: the notebook
itself, and the Dask scheduler Services that KubeCluster creates in the notebook's own namespace
($CUBEHUB_NAMESPACE, set by the hub): "<cluster>-scheduler", alone or followed by
".<namespace>", ".<namespace>.svc" or ".<namespace>.svc.cluster.local". Any other name, in
particular one outside the cluster, is refused, whatever its first label.
"""

import os
import re

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LOCAL_HOSTS = {"localhost", "127.0.0.1"}


def _scheduler_host(namespace: str) -> re.Pattern[str]:
    """Scheduler Service names of ``namespace`` (none when the namespace is unknown)."""
    if not re.fullmatch(_LABEL, namespace):
        return re.compile(r"(?!)")
    suffix = rf"(\.{re.escape(namespace)}(\.svc(\.cluster\.local)?)?)?"
    return re.compile(rf"{_LABEL}-scheduler{suffix}")


_SCHEDULER_HOST = _scheduler_host(os.environ.get("CUBEHUB_NAMESPACE", ""))


def allow_dashboard_host(handler: object, host: str) -> bool:
    """Whether jupyter-server-proxy may forward to ``host`` (a name, without the port)."""
    return host in _LOCAL_HOSTS or bool(_SCHEDULER_HOST.fullmatch(host))


c = get_config()  # type: ignore[name-defined]  # noqa: F821
c.ServerProxy.host_allowlist = allow_dashboard_host
