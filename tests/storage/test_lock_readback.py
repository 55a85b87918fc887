"""The S3 lock's read-back (``StudyLock._verify``) against a server that ignores ``If-None-Match``.

moto honours the condition, so a create never overwrites there and the read-back never decides
anything. Here the client drops the condition, as a server without conditional writes would:
of two drivers whose creates both "succeed", the one whose write was overwritten must find the
other's token when it reads back, and be refused."""

from __future__ import annotations

import pytest

from storage.lock import LockHeldError, StudyLock


class IgnoresConditionalCreate:
    """A boto3 S3 client that writes every ``put_object`` unconditionally, and can run a hook
    once, right after its first write (to interleave another driver there)."""

    def __init__(self, client, after_first_put=None):
        self._client = client
        self._after_first_put = after_first_put

    def put_object(self, **kwargs):
        kwargs.pop("IfNoneMatch", None)
        result = self._client.put_object(**kwargs)
        hook, self._after_first_put = self._after_first_put, None
        if hook is not None:
            hook()
        return result

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_create_overwritten_by_a_racing_driver_is_refused_on_read_back(s3_bucket):
    uri = f"s3://{s3_bucket}/studies/results"
    first = StudyLock(uri, "s", heartbeat_seconds=3600)
    second = StudyLock(uri, "s", heartbeat_seconds=3600)
    second.backend.client = IgnoresConditionalCreate(second.backend.client)
    # first writes its lock; second then writes over it and reads its own token back; then first reads back.
    first.backend.client = IgnoresConditionalCreate(first.backend.client, after_first_put=second.acquire)
    try:
        with pytest.raises(LockHeldError, match="is being run by another driver"):
            first.acquire()
        assert first.holder is None
        assert second.holder is not None and second.read().token == second.holder.token
    finally:
        second.release()
        first.release()
