"""The ``cluster:`` section of a job file: where a job runs; validated with the job.

Every key is optional: an unset key falls back to the ``cubehub.cluster`` settings
(environment variables such as ``DASK_CUBEHUB__CLUSTER__BACKEND``, then the packaged
``cubehub.yaml``). Command-line options win over this section. Example (YAML)::

    cluster:
      backend: kubernetes
      kubernetes:
        adaptive: {minimum: 0, maximum: 20}
        idle_timeout: 900
        worker: {cpu: "2", memory: 8Gi}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cubehub.errors import InputError

Backend = Literal["local", "address", "kubernetes"]
#: Where a cluster can run: this machine, an existing scheduler, the dask-kubernetes operator.
BACKENDS: tuple[Backend, ...] = ("local", "address", "kubernetes")

#: Kubernetes quantities as the API accepts them: "500m", "2", "1.5", "4Gi", "512M".
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def check_quantity(value: str, what: str) -> str:
    """``value`` if it is a Kubernetes resource quantity, else an :class:`InputError` (a
    ``ValueError``, so pydantic validators report it too) naming ``what``.

    >>> check_quantity("500m", "cpu")
    '500m'
    """
    if not _QUANTITY.match(value):
        raise InputError(
            f"{what} {value!r} is not a Kubernetes quantity; write e.g. '2', '500m', '8Gi'"
        )
    return value


class PodSizeSettings(BaseModel):
    """Requests (and equal limits) of one Dask pod."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: str | None = Field(None, description="CPU cores, e.g. '2' or '500m'")
    memory: str | None = Field(None, description="memory, e.g. '8Gi'")

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        return None if value is None else check_quantity(value, "resource")


class Adaptive(BaseModel):
    """Bounds of the number of Dask workers the operator's autoscaler may run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minimum: int | None = Field(None, ge=0, description="fewest workers (0: none while idle)")
    maximum: int | None = Field(None, ge=1, description="most workers")

    @model_validator(mode="after")
    def _ordered(self) -> Adaptive:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"adaptive minimum ({self.minimum}) is above maximum ({self.maximum})")
        return self


class KubernetesSection(BaseModel):
    """Settings of a Dask cluster started through the dask-kubernetes operator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str | None = Field(
        None, description="container image; default: the notebook's ($JUPYTER_IMAGE_SPEC)"
    )
    namespace: str | None = Field(None, description="namespace; default: the pod's own")
    adaptive: Adaptive | None = None
    idle_timeout: int | None = Field(
        None, ge=1, description="seconds idle before the operator deletes the cluster"
    )
    worker: PodSizeSettings | None = None
    scheduler: PodSizeSettings | None = None


class ClusterSection(BaseModel):
    """Where a job runs: backend and its settings (see :func:`cubehub.cluster`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Backend | None = Field(None, description="local, address or kubernetes")
    address: str | None = Field(
        None, description="scheduler address for backend address, e.g. tcp://10.0.0.5:8786"
    )
    n_workers: int | None = Field(None, ge=1, description="worker processes of a local cluster")
    threads_per_worker: int | None = Field(
        None, ge=1, description="threads per local worker process"
    )
    kubernetes: KubernetesSection | None = None

    def overrides(self) -> dict[str, Any]:
        """The keys that are set, as keyword arguments of :func:`cubehub.cluster.cluster`."""
        return self.model_dump(exclude_none=True)
