"""Jupyter server settings baked into the cubehub image (/etc/jupyter/jupyter_server_config.py).

A user's Dask dashboard runs on the scheduler pod; the notebook shows it through
jupyter-server-proxy at {JUPYTERHUB_SERVICE_PREFIX}proxy/<scheduler host>:8787/status (the link
the chart's Dask config sets). The proxy forwards only to hosts allowed here: the notebook
itself and the Dask scheduler Services that KubeCluster creates ("<cluster>-scheduler", with or
without ".<namespace>…"). The NetworkPolicies decide which schedulers answer.
"""

import re

_SCHEDULER_HOST = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?-scheduler(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LOCAL_HOSTS = {"localhost", "127.0.0.1"}


def allow_dashboard_host(handler: object, host: str) -> bool:
    """Whether jupyter-server-proxy may forward to ``host`` (a name, without the port)."""
    return host in _LOCAL_HOSTS or bool(_SCHEDULER_HOST.match(host))


c = get_config()  # type: ignore[name-defined]  # noqa: F821
c.ServerProxy.host_allowlist = allow_dashboard_host
