"""Fixtures for the shmring Python tests.

Every ring gets a unique name ("/shmt_<pid>_py_<n>", the tests' prefix, see
tests/support) and is unlinked after the test, passed or failed.
"""
import itertools
import os

import pytest

import shmring

_counter = itertools.count()


def unique_name(tag="r"):
    return f"/shmt_{os.getpid()}_py_{tag}_{next(_counter)}"


@pytest.fixture
def ring_name():
    names = []

    def make(kind="spsc", capacity=1 << 16, **kw):
        name = unique_name(kind)
        shmring.create(name, kind=kind, capacity=capacity, **kw)
        names.append(name)
        return name

    yield make
    for name in names:
        try:
            shmring.unlink(name)
        except shmring.NotFound:
            pass


@pytest.fixture
def ring(ring_name):
    """An spsc ring of 64 KiB."""
    return ring_name()
