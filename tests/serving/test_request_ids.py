"""Request and batch ids: random bytes handed out once, never shared with a forked worker."""

from __future__ import annotations

import os
import re
import uuid

import pytest

from creditops.serving import request_ids


def test_ids_are_unique_across_many_pool_refills() -> None:
    per_pool = request_ids._POOL_BYTES // request_ids._RANDOM_BYTES
    ids = [i for _ in range(3) for i in request_ids.new_request_ids(per_pool)]
    batches = [request_ids.new_batch_id() for _ in range(5_000)]
    assert len(set(ids)) == len(ids) == 3 * per_pool
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids[:100] + batches[:100])
    assert len(set(batches)) == len(batches)
    assert {uuid.UUID(hex=b).version for b in batches} == {4}


def test_a_request_larger_than_the_pool_gets_fresh_bytes() -> None:
    big = request_ids.random_bytes(request_ids._POOL_BYTES * 2 + 3)
    assert len(big) == request_ids._POOL_BYTES * 2 + 3
    assert len(request_ids.random_bytes(0)) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_does_not_reuse_the_parents_bytes() -> None:
    request_ids.random_bytes(1)  # the pool is filled in the parent
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next bytes, to the parent
        os.write(write, request_ids.random_bytes(32))
        os._exit(0)
    os.close(write)
    from_child = os.read(read, 32)
    os.close(read)
    os.waitpid(child, 0)
    assert len(from_child) == 32
    assert from_child != request_ids.random_bytes(32)  # the parent's next bytes differ
