"""Artifacts in an S3-compatible bucket (MLOPS_S3_BUCKET): the site's S3 storage options against moto's S3 server, a
real HTTP endpoint on 127.0.0.1 speaking the S3 API, as MinIO would. Registered through the API, the object is in
the bucket under the prefix, byte for byte; the download streams it back; a registration that fails removes it."""

import hashlib
import json
import uuid

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from moto.server import ThreadedMotoServer

from registry.models import ModelVersion
from registry.services import versions

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_endpoint(monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(s3_endpoint, settings, monkeypatch):
    """STORAGES as mlops_site/settings.py builds them from the environment when MLOPS_S3_BUCKET is set; a bucket of
    the test's own (moto keeps every server's buckets in one process-wide store)."""
    bucket = f"mlops-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("MLOPS_S3_BUCKET", bucket)
    monkeypatch.setenv("MLOPS_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("MLOPS_S3_PREFIX", "prod")
    monkeypatch.setenv("MLOPS_S3_ADDRESSING_STYLE", "path")
    namespace = {"__file__": settings.BASE_DIR / "mlops_site" / "settings.py"}
    exec(compile((settings.BASE_DIR / "mlops_site" / "settings.py").read_text(), "settings.py", "exec"), namespace)  # noqa: S102
    settings.STORAGES = namespace["STORAGES"]
    return client, bucket


def objects(s3) -> dict[str, bytes]:
    client, bucket = s3
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listed}


def test_artifact_registered_with_s3_storage_lands_in_the_bucket_and_downloads_back(s3_storage, api_as, editor):
    client = api_as(editor)
    payload = bytes(range(256)) * 400

    response = client.post("/api/v1/models/fraud/versions",
                           {"artifact": SimpleUploadedFile("model.bin", payload), "meta": json.dumps({"metrics": {"auc": 0.9}})},
                           format="multipart")

    assert response.status_code == 201, response.content
    stored = objects(s3_storage)
    version = ModelVersion.objects.get(model__name="fraud", version=1)
    assert list(stored) == [f"prod/{version.artifact.name}"]
    assert version.artifact.name.startswith("artifacts/fraud/") and version.artifact.name.endswith("/model.bin")
    assert hashlib.sha256(stored[f"prod/{version.artifact.name}"]).hexdigest() == hashlib.sha256(payload).hexdigest()
    download = client.get(response.json()["artifact_url"])
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == payload


def test_artifact_of_a_registration_that_fails_after_the_upload_is_removed_from_the_bucket(s3_storage, editor, monkeypatch):
    def audit_down(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(versions, "audit_record", audit_down)

    with pytest.raises(RuntimeError):
        versions.model_version_register(model_name="fraud", actor=editor, artifact=SimpleUploadedFile("model.bin", b"weights"))

    assert objects(s3_storage) == {}
    assert not ModelVersion.objects.exists()
