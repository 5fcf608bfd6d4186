"""ECR's registry endpoint: the Docker Registry HTTP API v2, served under ``/v2/`` on the emulator's port.

moto emulates ECR's control plane (repositories, ``DescribeImages``, ``PutImage``,
``GetAuthorizationToken``) but not the registry that ``docker push`` talks to
(``<account>.dkr.ecr.<region>.amazonaws.com``). This is that registry, small and on
loopback, so the image stage can push offline:

* ``GET /v2/`` answers 200 (``Docker-Distribution-API-Version: registry/2.0``) to the basic
  auth that ``ecr:GetAuthorizationToken`` returns (``AWS`` : ``<account>-auth-token`` in
  moto), and 401 with a ``Basic`` challenge without it, as ECR does. Every other request
  needs the same credentials; the account comes from them.
* Blobs: ``HEAD``/``GET /v2/<name>/blobs/<digest>``; uploads started with
  ``POST /v2/<name>/blobs/uploads/`` (monolithic with ``?digest=``, cross-repository
  ``?mount=``), continued with ``PATCH`` (chunked, ``Content-Range`` checked) and closed
  with ``PUT ...?digest=`` (the digest is verified). Request bodies are streamed to disk
  (``Transfer-Encoding: chunked`` included); nothing is held in memory.
* Manifests: ``PUT``/``GET``/``HEAD /v2/<name>/manifests/<tag or digest>`` for Docker
  schema 2 and OCI image manifests, manifest lists and OCI indexes. A ``PUT`` checks that
  what the manifest references was pushed, then registers the image in moto's ECR backend
  (``put_image`` with the manifest, its media type and its digest), so ``DescribeImages``,
  ``BatchGetImage`` and ``dagster_ecs.fargate.ecr_image_info`` see the tag. Manifests are
  read back from moto, so an image deleted through the ECR API is gone from the registry
  too. Tag immutability is ECR's: pushing another manifest to an existing tag of an
  ``IMMUTABLE`` repository answers ``TAG_INVALID``; pushing the same one again succeeds.
* ``GET /v2/<name>/tags/list``.

A SigV4-signed request under ``/v2/`` is an AWS API call (API Gateway v2's ``/v2/apis``...) and
goes to moto as before.

Blobs live in a temporary directory (``DAGSTER_ECS_EMULATOR_REGISTRY_DIR`` to choose it)
for the life of the process, like the rest of the emulator's state. A repository name is
looked up in every region of the account the emulator has seen; the same name in two
regions is refused (the registry has one host for all regions). Not served: blob and
manifest ``DELETE``, ``/v2/_catalog``, range requests.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote

PREFIX = "/v2/"
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
CHUNK = 1024 * 1024
MANIFEST_LIMIT = 4 * 1024 * 1024

MANIFEST_TYPES = {
    "application/vnd.docker.distribution.manifest.v2+json": "image",
    "application/vnd.oci.image.manifest.v1+json": "image",
    "application/vnd.docker.distribution.manifest.list.v2+json": "index",
    "application/vnd.oci.image.index.v1+json": "index",
}

_NAME = r"(?P<name>[a-z0-9]+(?:(?:[._-]|__|/)[a-z0-9]+)*)"
_DIGEST = r"sha256:[a-f0-9]{64}"
ROUTES = [
    ("uploads", re.compile(rf"^/v2/{_NAME}/blobs/uploads/(?P<upload>[^/]*)$")),
    ("blob", re.compile(rf"^/v2/{_NAME}/blobs/(?P<digest>{_DIGEST})$")),
    ("manifest", re.compile(rf"^/v2/{_NAME}/manifests/(?P<reference>[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,127}})$")),
    ("tags", re.compile(rf"^/v2/{_NAME}/tags/list$")),
]
_PASSWORD = re.compile(r"^(?P<account>\d{12})-auth-token$")
_STATUS = {
    200: "200 OK",
    201: "201 Created",
    202: "202 Accepted",
    204: "204 No Content",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Payload Too Large",
    416: "416 Requested Range Not Satisfiable",
}


class RegistryError(Exception):
    """An error answered in the registry's JSON error format."""

    def __init__(self, status: int, code: str, message: str, detail=None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


@dataclass
class Upload:
    name: str
    path: Path
    size: int = 0
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _credentials(environ: dict) -> tuple[str, str] | None:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def _account(environ: dict) -> str | None:
    """The account whose ECR login the request carries (``AWS`` / ``<account>-auth-token``), or None."""
    found = _credentials(environ)
    if not found or found[0] != "AWS":
        return None
    match = _PASSWORD.match(found[1])
    return match.group("account") if match else None


def _read_body(environ: dict):
    """Yield the request body in chunks: ``Content-Length`` bytes, or to the end of a chunked body."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        remaining = int(length)
        while remaining > 0:
            data = stream.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    elif environ.get("wsgi.input_terminated"):
        while data := stream.read(CHUNK):
            yield data


class Registry:
    """WSGI middleware: answers ``/v2/...`` itself, passes everything else to ``app`` (moto)."""

    def __init__(self, app, root: str | os.PathLike | None = None):
        self.app = app
        self._root = Path(root) if root else None
        self._owned = False
        self.uploads: dict[str, Upload] = {}
        self.lock = threading.Lock()

    # --- storage ----------------------------------------------------------------------
    @property
    def root(self) -> Path:
        with self.lock:
            if self._root is None:
                chosen = os.environ.get("DAGSTER_ECS_EMULATOR_REGISTRY_DIR")
                if chosen:
                    self._root = Path(chosen)
                else:
                    self._root = Path(tempfile.mkdtemp(prefix="dagster-ecs-registry-"))
                    self._owned = True
                    atexit.register(self.close)
                (self._root / "blobs").mkdir(parents=True, exist_ok=True)
                (self._root / "uploads").mkdir(parents=True, exist_ok=True)
            return self._root

    def close(self) -> None:
        """Remove the blob directory if this registry created it."""
        if self._owned and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def blob_path(self, digest: str) -> Path:
        """Where a blob is stored; only a well-formed digest names one (never a path of the caller's)."""
        if not isinstance(digest, str) or not re.fullmatch(_DIGEST, digest):
            raise RegistryError(400, "DIGEST_INVALID", f"Unsupported or malformed digest {digest!r}", digest)
        return self.root / "blobs" / digest.replace(":", "-")

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    # --- moto ---------------------------------------------------------------------------
    @staticmethod
    def backend(account: str, name: str):
        """moto's ECR backend (of the account's regions seen so far) holding repository ``name``."""
        from moto.ecr.models import ecr_backends

        regional = dict.get(ecr_backends, account) or {}
        holders = [backend for backend in dict.values(regional) if name in backend.repositories]
        if not holders:
            raise RegistryError(404, "NAME_UNKNOWN", f"The repository with name '{name}' does not exist", name)
        if len(holders) > 1:
            regions = sorted(backend.region_name for backend in holders)
            raise RegistryError(
                400, "NAME_INVALID", f"Repository '{name}' exists in several regions ({', '.join(regions)})", name
            )
        return holders[0]

    @staticmethod
    def _digest_of(image) -> str:
        return image.get_image_digest()

    def find_image(self, backend, name: str, reference: str):
        repository = backend.repositories[name]
        for image in repository.images:
            if reference.startswith("sha256:"):
                if self._digest_of(image) == reference:
                    return image
            elif reference in image.image_tags:
                return image
        return None

    # --- WSGI ---------------------------------------------------------------------------
    @staticmethod
    def is_aws_call(environ: dict) -> bool:
        """A SigV4-signed request is an AWS API call (API Gateway v2's ``/v2/apis``...), never Docker's."""
        return environ.get("HTTP_AUTHORIZATION", "").startswith("AWS4-") or "X-Amz-Signature=" in environ.get(
            "QUERY_STRING", ""
        )

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if (path != "/v2" and not path.startswith(PREFIX)) or self.is_aws_call(environ):
            return self.app(environ, start_response)
        try:
            status, headers, body = self.handle(environ)
        except RegistryError as error:
            status, headers, body = self.error(error, environ)
        headers = [API_VERSION, *headers]
        if isinstance(body, bytes):
            if not any(k.lower() == "content-length" for k, _ in headers):
                headers.append(("Content-Length", str(len(body))))
            body = [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
        start_response(_STATUS.get(status, f"{status} Error"), headers)
        return body

    def error(self, error: RegistryError, environ: dict):
        # The request body may be unread: close the connection rather than read it as the next request.
        headers = [("Content-Type", "application/json"), ("Connection", "close")]
        if error.status == 401:
            host = environ.get("HTTP_HOST", "127.0.0.1")
            headers.append(("WWW-Authenticate", f'Basic realm="http://{host}/",service="ecr.amazonaws.com"'))
        payload = {"errors": [{"code": error.code, "message": error.message, "detail": error.detail}]}
        return error.status, headers, json.dumps(payload).encode()

    def handle(self, environ):
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        account = _account(environ)
        if account is None:
            raise RegistryError(401, "UNAUTHORIZED", "Not Authorized: log in with ecr:GetAuthorizationToken")
        if path in ("/v2", PREFIX):
            if method not in ("GET", "HEAD"):
                raise RegistryError(405, "UNSUPPORTED", f"{method} {path}")
            return 200, [("Content-Type", "application/json")], b"{}"
        for kind, pattern in ROUTES:
            found = pattern.match(path)
            if found:
                name = found.group("name")
                backend = self.backend(account, name)
                handler = getattr(self, f"{kind}_{method.lower()}", None)
                if handler is None:
                    raise RegistryError(405, "UNSUPPORTED", f"{method} is not supported on {path}")
                query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
                return handler(environ, backend, name, found.groupdict(), query)
        raise RegistryError(404, "NAME_INVALID", f"No such registry path: {path}")

    # --- blobs ------------------------------------------------------------------------
    def blob_head(self, environ, backend, name, params, query):
        digest = params["digest"]
        path = self.blob_path(digest)
        if not path.is_file():
            raise RegistryError(404, "BLOB_UNKNOWN", f"Blob {digest} is not in the registry", digest)
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(path.stat().st_size)),
            ("Docker-Content-Digest", digest),
        ]
        return 200, headers, b""

    def blob_get(self, environ, backend, name, params, query):
        status, headers, _ = self.blob_head(environ, backend, name, params, query)
        return status, headers, self._stream(self.blob_path(params["digest"]))

    @staticmethod
    def _stream(path: Path):
        with open(path, "rb") as handle:
            while data := handle.read(CHUNK):
                yield data

    # --- uploads ----------------------------------------------------------------------
    def _upload_headers(self, name: str, upload_id: str, upload: Upload) -> list:
        return [
            ("Location", f"/v2/{name}/blobs/uploads/{upload_id}"),
            ("Range", f"0-{max(upload.size - 1, 0)}"),
            ("Docker-Upload-UUID", upload_id),
        ]

    def _created(self, name: str, digest: str):
        return 201, [("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest)], b""

    def _upload(self, name: str, upload_id: str) -> Upload:
        with self.lock:
            upload = self.uploads.get(upload_id)
        if upload is None or upload.name != name:
            raise RegistryError(404, "BLOB_UPLOAD_UNKNOWN", f"Upload {upload_id} is unknown", upload_id)
        return upload

    @staticmethod
    def _append(upload: Upload, environ: dict) -> None:
        with open(upload.path, "ab") as handle:
            for data in _read_body(environ):
                handle.write(data)
                upload.sha256.update(data)
                upload.size += len(data)

    def _commit(self, upload_id: str, upload: Upload, digest: str | None) -> str:
        if not digest or not re.fullmatch(_DIGEST, digest):
            raise RegistryError(400, "DIGEST_INVALID", f"Unsupported or missing digest {digest!r}", digest)
        actual = f"sha256:{upload.sha256.hexdigest()}"
        with self.lock:
            self.uploads.pop(upload_id, None)
        if actual != digest:
            upload.path.unlink(missing_ok=True)
            raise RegistryError(400, "DIGEST_INVALID", f"Content is {actual}, not {digest}", digest)
        os.replace(upload.path, self.blob_path(digest))
        return digest

    def uploads_post(self, environ, backend, name, params, query):
        if params["upload"]:
            raise RegistryError(405, "UNSUPPORTED", "POST starts an upload: /v2/<name>/blobs/uploads/")
        mount = query.get("mount")
        if mount and self.has_blob(mount):
            return self._created(name, mount)
        upload_id = str(uuid.uuid4())
        upload = Upload(name=name, path=self.root / "uploads" / upload_id)
        upload.path.touch()
        with self.lock:
            self.uploads[upload_id] = upload
        if query.get("digest"):  # monolithic: the whole blob in this request
            with upload.lock:
                self._append(upload, environ)
                return self._created(name, self._commit(upload_id, upload, query["digest"]))
        return 202, self._upload_headers(name, upload_id, upload), b""

    def uploads_patch(self, environ, backend, name, params, query):
        upload_id = params["upload"]
        upload = self._upload(name, upload_id)
        with upload.lock:
            content_range = environ.get("HTTP_CONTENT_RANGE", "")
            start = re.match(r"^(?:bytes[ =])?(\d+)-(\d+)$", content_range.strip())
            if start and int(start.group(1)) != upload.size:
                raise RegistryError(416, "BLOB_UPLOAD_INVALID", f"Upload is at {upload.size}, not {start.group(1)}")
            self._append(upload, environ)
            return 202, self._upload_headers(name, upload_id, upload), b""

    def uploads_put(self, environ, backend, name, params, query):
        upload_id = params["upload"]
        upload = self._upload(name, upload_id)
        with upload.lock:
            self._append(upload, environ)
            return self._created(name, self._commit(upload_id, upload, query.get("digest")))

    def uploads_get(self, environ, backend, name, params, query):
        upload_id = params["upload"]
        upload = self._upload(name, upload_id)
        return 204, self._upload_headers(name, upload_id, upload), b""

    def uploads_delete(self, environ, backend, name, params, query):
        upload_id = params["upload"]
        upload = self._upload(name, upload_id)
        with self.lock:
            self.uploads.pop(upload_id, None)
        upload.path.unlink(missing_ok=True)
        return 204, [], b""

    # --- manifests --------------------------------------------------------------------
    def manifest_head(self, environ, backend, name, params, query):
        reference = params["reference"]
        image = self.find_image(backend, name, reference)
        if image is None:
            raise RegistryError(404, "MANIFEST_UNKNOWN", f"Requested image not found: {name}:{reference}", reference)
        body = image.get_image_manifest().encode()
        media_type = image.image_manifest_media_type or json.loads(body).get("mediaType", "")
        digest = self._digest_of(image)
        headers = [("Content-Type", media_type), ("Docker-Content-Digest", digest), ("Content-Length", str(len(body)))]
        return 200, headers, body

    manifest_get = manifest_head

    def manifest_put(self, environ, backend, name, params, query):
        from moto.ecr.exceptions import ImageAlreadyExistsException

        reference = params["reference"]
        body = b""
        for data in _read_body(environ):
            body += data
            if len(body) > MANIFEST_LIMIT:
                raise RegistryError(413, "SIZE_INVALID", f"A manifest is at most {MANIFEST_LIMIT} bytes")
        try:
            manifest = json.loads(body)
        except ValueError as error:
            raise RegistryError(400, "MANIFEST_INVALID", f"Not JSON: {error}") from error
        media_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip() or manifest.get("mediaType", "")
        kind = MANIFEST_TYPES.get(media_type) or MANIFEST_TYPES.get(manifest.get("mediaType", ""))
        if kind is None:
            raise RegistryError(400, "MANIFEST_INVALID", f"Unsupported manifest media type {media_type!r}", media_type)
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
        is_digest = reference.startswith("sha256:")
        if is_digest and not re.fullmatch(_DIGEST, reference):
            raise RegistryError(400, "DIGEST_INVALID", f"Malformed manifest digest {reference!r}", reference)
        if is_digest and reference != digest:
            raise RegistryError(400, "DIGEST_INVALID", f"Manifest is {digest}, not {reference}", reference)
        if kind == "image":
            wanted = [manifest.get("config", {}).get("digest")] + [x.get("digest") for x in manifest.get("layers", [])]
            malformed = [d for d in wanted if not isinstance(d, str) or not re.fullmatch(_DIGEST, d)]
            if malformed:
                raise RegistryError(400, "MANIFEST_INVALID", f"Malformed blob digest {malformed[0]!r}", malformed)
            missing = [d for d in wanted if not self.has_blob(d)]
            if missing:
                raise RegistryError(400, "MANIFEST_BLOB_UNKNOWN", f"Blob unknown to registry: {missing[0]}", missing)
        else:
            children = [m.get("digest") or "" for m in manifest.get("manifests", [])]
            malformed = [d for d in children if not isinstance(d, str) or not re.fullmatch(_DIGEST, d)]
            if malformed:
                raise RegistryError(400, "MANIFEST_INVALID", f"Malformed manifest digest {malformed[0]!r}", malformed)
            missing = [d for d in children if not self.find_image(backend, name, d)]
            if missing:
                raise RegistryError(400, "MANIFEST_UNKNOWN", f"Manifest unknown to registry: {missing[0]}", missing)
        tag = None if is_digest else reference
        existing = self.find_image(backend, name, digest)
        if existing is None or (tag is not None and tag not in existing.image_tags):
            try:
                backend.put_image(name, body.decode(), tag, media_type, digest)
            except ImageAlreadyExistsException as error:  # another manifest holds this tag, and tags are immutable
                message = (
                    f"The image tag '{tag}' already exists in the '{name}' repository and cannot be overwritten"
                    " because the repository is immutable."
                )
                raise RegistryError(400, "TAG_INVALID", message, tag) from error
        headers = [("Location", f"/v2/{name}/manifests/{quote(digest)}"), ("Docker-Content-Digest", digest)]
        return 201, headers, b""

    # --- tags -------------------------------------------------------------------------
    def tags_get(self, environ, backend, name, params, query):
        tags = sorted({tag for image in backend.repositories[name].images for tag in image.image_tags})
        return 200, [("Content-Type", "application/json")], json.dumps({"name": name, "tags": tags}).encode()
