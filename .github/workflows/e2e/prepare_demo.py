"""Put the demo archive where the end-to-end cluster can read it, and write the job for it.

Builds the synthetic Sentinel-2 archive (cubehub.demo.archive), uploads its COGs to the
cluster's S3 store (reached through `kubectl port-forward`; endpoint and keys from the AWS_*
environment), and writes into WORKDIR:

- items.json, collection.json: the STAC items (assets at s3://demo/archive/...) for rustac;
- job.yaml: the `cubehub run` job file, writing s3://outputs/demo.zarr.

Usage: python prepare_demo.py WORKDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import s3fs
import yaml

from cubehub.demo.archive import ArchiveSpec, build_archive

STAC_API = "http://stac.demo-data.svc.cluster.local:7822"
ARCHIVE = "demo/archive"
OUTPUT = "s3://outputs/demo.zarr"


def main(workdir: Path) -> None:
    spec = ArchiveSpec(size=256)
    archive = build_archive(workdir / "archive", spec)
    store = s3fs.S3FileSystem()
    for bucket in ("demo", "outputs"):
        store.mkdir(bucket)
    store.put(f"{archive.root}/", f"{ARCHIVE}/", recursive=True)
    archive.write_item_collection(workdir / "items.json", f"s3://{ARCHIVE}")
    (workdir / "collection.json").write_text(json.dumps(archive.collection_dict()))
    job = {
        "stac_api": STAC_API,
        "collection": "sentinel-2-l2a",
        "bbox": list(archive.bbox_lonlat()),
        "bounds": list(archive.bounds),
        "epsg": archive.epsg,
        "years": [spec.year],
        "output": OUTPUT,
        "overwrite": True,
    }
    (workdir / "job.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    print(f"uploaded {len(store.find(ARCHIVE))} files; job: {job}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
