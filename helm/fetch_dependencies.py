"""Fetch the cubehub chart's released dependencies once, for the platform tests.

Run by ``./dev.sh setup``. The platform tests render helm/cubehub with the released Zero to
JupyterHub chart that Chart.yaml pins (tests/platform/chart_helpers.py looks for it in
helm/cubehub/charts/, then in the offline dependency cache ``shared/vendor/charts`` beside
the checkout). When it is in neither, this runs ``helm dependency update`` (Helm's own code,
through helm-python-sdk) to download it from the chart's repository. Without network the
download fails: one line says so and setup goes on (the platform tests then say how to get
the chart). Never fails setup.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent / "cubehub"
CACHE = CHART.parents[2] / "shared" / "vendor" / "charts"


def main() -> int:
    pins = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    archive = next(f"{d['name']}-{d['version']}.tgz" for d in pins if d["name"] == "jupyterhub")
    if any((folder / archive).is_file() for folder in (CHART / "charts", CACHE)):
        return 0
    import helm_python

    print(f"Downloading the chart dependencies ({archive}) into {CHART / 'charts'}...")
    try:
        helm_python.dependency_update(CHART)
    except helm_python.HelmError as exc:
        print(
            f"could not download {archive} ({exc}); the platform tests need it: run "
            "./dev.sh setup again with network, or put the archive in helm/cubehub/charts/",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
