"""The real one-node SLURM (tests/cluster/slurm.py) as a session fixture: started once for the tests
that ask for `slurm`, stopped after them; those tests skip with the reason where SLURM cannot start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.slurm import Slurm, SlurmUnavailable, start


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slurm]:
    """A running SLURM; `slurm.env` (SLURM_CONF) reaches it, `slurm.wait(job_id)` waits for a job."""
    try:
        cluster = start(tmp_path_factory.mktemp("slurm"))
    except SlurmUnavailable as why:
        pytest.skip(str(why))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm_clean(slurm: Slurm) -> Iterator[Slurm]:
    """The SLURM fixture, with every job cancelled after the test."""
    yield slurm
    slurm.cancel_all()
