"""Output locations and their options: protocols, options without secrets, redaction."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import pytest

from cubehub.credentials import redact
from cubehub.errors import InputError
from cubehub.jobspec import make_job
from cubehub.output.encoding import provenance_attrs
from cubehub.output.storage import check_no_secrets, filesystem, protocol_of, storage_options

JOB: dict[str, Any] = {
    "stac_api": "http://127.0.0.1:1",
    "bbox": (15.6, 47.0, 15.7, 47.07),
    "years": [2022],
}


def test_protocols() -> None:
    assert protocol_of("/data/c.zarr") == "file"
    assert protocol_of("relative/c.zarr") == "file"
    assert protocol_of("s3://bucket/c.zarr") == "s3"
    assert protocol_of("GS://bucket/c.zarr") == "gs"


def test_s3_options_name_where_never_who() -> None:
    opts = storage_options(
        "s3://b/c.zarr",
        endpoint_url="http://127.0.0.1:8333",
        profile="team",
        anonymous=True,
        extra={"client_kwargs": {"region_name": "eu-central-1"}},
    )
    assert opts == {
        "client_kwargs": {"region_name": "eu-central-1"},
        "endpoint_url": "http://127.0.0.1:8333",
        "profile": "team",
        "anon": True,
    }
    assert storage_options("gs://b/c.zarr", anonymous=True) == {"token": "anon"}
    assert storage_options("/tmp/c.zarr") == {}


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("/tmp/c.zarr", {"endpoint_url": "http://x:1"}, "s3:// outputs only"),
        ("s3://b/c.zarr", {"endpoint_url": "127.0.0.1:8333"}, "http"),
        ("s3://b/c.zarr", {"extra": {"key": "AKIA", "secret": "s"}}, "key, secret"),
        (
            "s3://b/c.zarr",
            {"extra": {"client_kwargs": {"aws_secret_access_key": "s"}}},
            "client_kwargs.aws_secret_access_key",
        ),
    ],
)
def test_bad_options_are_refused(url: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        storage_options(url, **kwargs)


def test_secrets_are_named_and_masked() -> None:
    with pytest.raises(InputError, match="environment"):
        check_no_secrets({"account_key": "x"})
    check_no_secrets({"anon": True, "token": "anon", "endpoint_url": "http://a:1", "profile": "p"})
    masked = redact(
        {
            "key": "AKIA",
            "nested": {"session_token": "t", "endpoint_url": "http://u:pw@host:1/x"},
            "anon": True,
        }
    )
    assert masked == {
        "key": "***",
        "nested": {"session_token": "***", "endpoint_url": "http://***@host:1/x"},
        "anon": True,
    }


def test_botocore_request_logs_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    line = "headers={'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc123'}"
    with caplog.at_level(logging.DEBUG, logger="botocore.endpoint"):
        logging.getLogger("botocore.endpoint").debug("Sending http request: %s", line)
    assert "AKIAEXAMPLE" not in caplog.text and "abc123" not in caplog.text
    assert "Credential=***" in caplog.text


def test_missing_fsspec_packages_and_unknown_protocols_say_what_to_do() -> None:
    if importlib.util.find_spec("gcsfs") is None:
        with pytest.raises(InputError, match="pip install gcsfs"):
            filesystem("gs://bucket/c.zarr")
    if importlib.util.find_spec("adlfs") is None:
        with pytest.raises(InputError, match="pip install adlfs"):
            filesystem("az://container/c.zarr")
    with pytest.raises(InputError, match="s3://, gs://, az://"):
        filesystem("s4://bucket/c.zarr")


def test_job_storage_fields() -> None:
    job = make_job(
        **JOB,
        output="s3://b/c.zarr",
        endpoint_url="http://127.0.0.1:8333",
        anonymous=True,
        storage_options={"requester_pays": True},
        store_kind="icechunk",
    )
    assert job.output_storage_options() == {
        "requester_pays": True,
        "endpoint_url": "http://127.0.0.1:8333",
        "anon": True,
    }
    with pytest.raises(InputError, match="storage_options must not hold credentials"):
        make_job(**JOB, output="s3://b/c.zarr", storage_options={"secret": "x"})
    with pytest.raises(InputError, match="store_kind"):
        make_job(**JOB, output="s3://b/c.zarr", store_kind="netcdf")
    with pytest.raises(InputError, match="zarr_format"):
        make_job(**JOB, output="s3://b/c.zarr", zarr_format=4)


def test_provenance_masks_secrets_and_keeps_the_job() -> None:
    attrs = provenance_attrs(
        {"output": "https://user:pw@host/c.zarr", "token": "t", "method": "linear"},
        "s2",
        ["b", "a"],
    )
    assert "pw" not in attrs["cubehub_job"] and '"token": "***"' in attrs["cubehub_job"]
    assert '"method": "linear"' in attrs["cubehub_job"]
    assert attrs["stac_item_ids"] == '["a", "b"]'
