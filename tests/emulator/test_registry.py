"""The emulator's ECR registry (dagster_ecs_emulator/registry.py), over real HTTP, without Docker.

Pushes an image the way ``docker push`` does (blob uploads, monolithic and chunked, then the
manifest), with the login that ``ecr:GetAuthorizationToken`` returns, and reads it back
through boto3's ECR client and through the registry.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
from urllib.parse import quote, urlsplit

import pytest
from support.aws_inventory import REGION, clients

REPOSITORY = "dagster-ecs"
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class Registry:
    """A minimal registry client: http.client, so bodies can be sent chunked as Docker sends them."""

    def __init__(self, endpoint: str, auth: str | None):
        self.netloc = urlsplit(endpoint).netloc
        self.auth = auth

    def request(self, method, path, body=None, headers=None, chunks=None):
        conn = http.client.HTTPConnection(self.netloc, timeout=30)
        headers = dict(headers or {})
        if self.auth:
            headers["Authorization"] = f"Basic {self.auth}"
        if chunks is not None:  # Transfer-Encoding: chunked, no Content-Length
            conn.request(method, path, body=iter(chunks), headers=headers, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def push_blob_monolithic(self, name, data):
        status, headers, _ = self.request("POST", f"/v2/{name}/blobs/uploads/?digest={digest(data)}", body=data)
        assert status == 201, headers
        assert headers["docker-content-digest"] == digest(data)

    def push_blob_chunked(self, name, parts):
        status, headers, _ = self.request("POST", f"/v2/{name}/blobs/uploads/")
        assert status == 202
        location, offset = headers["location"], 0
        for part in parts:
            content_range = {"Content-Range": f"{offset}-{offset + len(part) - 1}"}
            status, headers, _ = self.request("PATCH", location, headers=content_range, chunks=[part[:3], part[3:]])
            assert status == 202, headers
            offset += len(part)
            assert headers["range"] == f"0-{offset - 1}"
            location = headers["location"]
        status, headers, _ = self.request("PUT", f"{location}?digest={digest(b''.join(parts))}")
        assert status == 201, headers

    def put_manifest(self, name, reference, manifest: bytes, media_type=SCHEMA2):
        return self.request(
            "PUT", f"/v2/{name}/manifests/{reference}", body=manifest, headers={"Content-Type": media_type}
        )


def image(config: bytes, layers: list[bytes], media_type=SCHEMA2) -> bytes:
    layer_type = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    config_type = "application/vnd.docker.container.image.v1+json"
    if media_type == OCI_MANIFEST:
        layer_type, config_type = (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.config.v1+json",
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "size": len(config), "digest": digest(config)},
        "layers": [{"mediaType": layer_type, "size": len(x), "digest": digest(x)} for x in layers],
    }
    return json.dumps(manifest, indent=3).encode()


@pytest.fixture
def ecr_and_registry(start_emulator):
    endpoint = start_emulator().endpoint
    ecr = clients(endpoint, REGION)("ecr")
    ecr.create_repository(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return ecr, endpoint, Registry(endpoint, token)


def test_the_registry_wants_the_ecr_login(ecr_and_registry):
    _, endpoint, registry = ecr_and_registry
    status, headers, _ = Registry(endpoint, None).request("GET", "/v2/")
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic ")
    assert headers["docker-distribution-api-version"] == "registry/2.0"
    wrong = base64.b64encode(b"AWS:not-a-token").decode()
    assert Registry(endpoint, wrong).request("GET", "/v2/")[0] == 401
    status, headers, _ = registry.request("GET", "/v2/")
    assert status == 200
    assert headers["docker-distribution-api-version"] == "registry/2.0"
    status, _, body = registry.request("HEAD", f"/v2/no-such-repository/blobs/{digest(b'x')}")
    assert status == 404


def test_aws_calls_under_v2_still_reach_moto(ecr_and_registry):
    """API Gateway v2's paths start with /v2/ too; its calls are SigV4-signed, and the registry lets them through."""
    _, endpoint, _ = ecr_and_registry
    apis = clients(endpoint, REGION)("apigatewayv2")
    created = apis.create_api(Name="scenario", ProtocolType="HTTP")
    assert [api["ApiId"] for api in apis.get_apis()["Items"]] == [created["ApiId"]]


def test_a_pushed_image_is_in_ecr(ecr_and_registry):
    ecr, _, registry = ecr_and_registry
    config, layer = b'{"architecture": "amd64", "os": "linux"}', b"layer-one" * 1000
    registry.push_blob_monolithic(REPOSITORY, config)
    registry.push_blob_chunked(REPOSITORY, [layer[:4000], layer[4000:]])
    status, headers, _ = registry.request("HEAD", f"/v2/{REPOSITORY}/blobs/{digest(layer)}")
    assert (status, headers["content-length"], headers["docker-content-digest"]) == (
        200,
        str(len(layer)),
        digest(layer),
    )
    assert registry.request("GET", f"/v2/{REPOSITORY}/blobs/{digest(layer)}")[2] == layer

    manifest = image(config, [layer])
    status, headers, _ = registry.put_manifest(REPOSITORY, "0.1.0", manifest)
    assert status == 201
    assert headers["docker-content-digest"] == digest(manifest)

    found = ecr.describe_images(repositoryName=REPOSITORY, imageIds=[{"imageTag": "0.1.0"}])["imageDetails"]
    assert [(d["imageDigest"], d["imageTags"]) for d in found] == [(digest(manifest), ["0.1.0"])]
    got = ecr.batch_get_image(repositoryName=REPOSITORY, imageIds=[{"imageTag": "0.1.0"}])["images"][0]
    assert got["imageManifest"].encode() == manifest

    for reference in ("0.1.0", digest(manifest)):
        status, headers, body = registry.request("GET", f"/v2/{REPOSITORY}/manifests/{reference}")
        assert (status, body, headers["content-type"]) == (200, manifest, SCHEMA2)
        assert headers["docker-content-digest"] == digest(manifest)
        status, headers, body = registry.request("HEAD", f"/v2/{REPOSITORY}/manifests/{reference}")
        assert (status, body, headers["content-length"]) == (200, b"", str(len(manifest)))
    assert registry.request("GET", f"/v2/{REPOSITORY}/manifests/0.2.0")[0] == 404
    status, _, body = registry.request("GET", f"/v2/{REPOSITORY}/tags/list")
    assert json.loads(body) == {"name": REPOSITORY, "tags": ["0.1.0"]}


def test_immutable_tags_and_idempotent_pushes(ecr_and_registry):
    ecr, _, registry = ecr_and_registry
    config, one, two = b"{}", b"one", b"two"
    for blob in (config, one, two):
        registry.push_blob_monolithic(REPOSITORY, blob)
    first, second = image(config, [one]), image(config, [two])
    assert registry.put_manifest(REPOSITORY, "1", first)[0] == 201
    assert registry.put_manifest(REPOSITORY, "1", first)[0] == 201, "the same image again is accepted"
    status, _, body = registry.put_manifest(REPOSITORY, "1", second)
    assert status == 400
    assert json.loads(body)["errors"][0]["code"] == "TAG_INVALID"
    assert registry.put_manifest(REPOSITORY, "2", first)[0] == 201, "a second tag on the same image"
    details = ecr.describe_images(repositoryName=REPOSITORY)["imageDetails"]
    assert [sorted(d["imageTags"]) for d in details] == [["1", "2"]]


def test_what_is_refused(ecr_and_registry):
    _, _, registry = ecr_and_registry
    status, _, body = registry.request("POST", f"/v2/{REPOSITORY}/blobs/uploads/?digest={digest(b'other')}", body=b"x")
    assert (status, json.loads(body)["errors"][0]["code"]) == (400, "DIGEST_INVALID")
    status, _, body = registry.put_manifest(REPOSITORY, "1", image(b"{}", [b"never pushed"]))
    assert (status, json.loads(body)["errors"][0]["code"]) == (400, "MANIFEST_BLOB_UNKNOWN")
    # A mount or a manifest naming a path instead of a digest: refused, not a file-existence oracle.
    for mount in ("/etc/shadow", "../../../../etc/hostname", "sha256:" + "0" * 63 + "/"):
        status, _, body = registry.request("POST", f"/v2/{REPOSITORY}/blobs/uploads/?mount={quote(mount)}&from=x")
        assert (status, json.loads(body)["errors"][0]["code"]) == (400, "DIGEST_INVALID"), mount
    layer_path = json.dumps({"schemaVersion": 2, "mediaType": SCHEMA2, "config": {"digest": "/etc/hostname"},
                             "layers": []}).encode()  # fmt: skip
    status, _, body = registry.put_manifest(REPOSITORY, "2", layer_path)
    assert (status, json.loads(body)["errors"][0]["code"]) == (400, "MANIFEST_INVALID")
    status, _, body = registry.request("POST", "/v2/not-a-repository/blobs/uploads/")
    assert (status, json.loads(body)["errors"][0]["code"]) == (404, "NAME_UNKNOWN")
    status, _, body = registry.request("PATCH", f"/v2/{REPOSITORY}/blobs/uploads/unknown-upload", body=b"x")
    assert (status, json.loads(body)["errors"][0]["code"]) == (404, "BLOB_UPLOAD_UNKNOWN")
    status, headers, _ = registry.request("POST", f"/v2/{REPOSITORY}/blobs/uploads/")
    location = headers["location"]
    status, _, _ = registry.request("PATCH", location, body=b"abc", headers={"Content-Range": "5-7"})
    assert status == 416, "a chunk must start where the upload is"


def test_oci_index_and_cross_repository_mount(ecr_and_registry):
    """What buildx pushes: per-platform manifests by digest, then an index by tag."""
    ecr, _, registry = ecr_and_registry
    ecr.create_repository(repositoryName="other/base")
    config, layer = b'{"os": "linux"}', b"shared layer"
    registry.push_blob_monolithic("other/base", config)
    registry.push_blob_monolithic("other/base", layer)
    for blob in (config, layer):
        status, headers, _ = registry.request(
            "POST", f"/v2/{REPOSITORY}/blobs/uploads/?mount={digest(blob)}&from=other/base"
        )
        assert (status, headers["docker-content-digest"]) == (201, digest(blob))
    manifest = image(config, [layer], OCI_MANIFEST)
    status, headers, _ = registry.put_manifest(REPOSITORY, digest(manifest), manifest, OCI_MANIFEST)
    assert status == 201
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest(manifest),
                    "size": len(manifest),
                    "platform": {"architecture": "arm64", "os": "linux"},
                }
            ],
        }
    ).encode()
    assert registry.put_manifest(REPOSITORY, "0.1.0", index, OCI_INDEX)[0] == 201
    by_digest = {
        d["imageDigest"]: d.get("imageTags", []) for d in ecr.describe_images(repositoryName=REPOSITORY)["imageDetails"]
    }
    assert by_digest == {digest(manifest): [], digest(index): ["0.1.0"]}
    status, headers, body = registry.request("GET", f"/v2/{REPOSITORY}/manifests/0.1.0")
    assert (status, headers["content-type"], body) == (200, OCI_INDEX, index)
    dangling = index.replace(digest(manifest).encode(), digest(b"nothing").encode())
    assert registry.put_manifest(REPOSITORY, "0.2.0", dangling, OCI_INDEX)[0] == 400
