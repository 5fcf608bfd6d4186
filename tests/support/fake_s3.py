"""A fake bucket for the container's DagSync: conditional GETs answered as S3 does, every GET recorded."""

from __future__ import annotations

import io

from dagster_ecs_container import manifest as mf


class S3Error(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class S3:
    """The objects of one bucket (``objects``: key -> bytes); ``gets``: every key asked for, in order."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.gets: list[str] = []

    def get_object(self, Bucket, Key, IfNoneMatch=None):  # noqa: N803 - boto3's names
        self.gets.append(Key)
        if Key not in self.objects:
            raise S3Error("NoSuchKey")
        etag = f'"{mf.sha256_bytes(self.objects[Key])[:32]}"'
        if IfNoneMatch == etag:
            raise S3Error("304")
        return {"Body": io.BytesIO(self.objects[Key]), "ETag": etag}
