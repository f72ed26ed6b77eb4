"""Fixtures for the reference-document examples: sample files written where the examples open
them, and a Vertex service account whose token endpoint is the session's simulator."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "conformance"))  # conformance_kit

from conformance_kit import (  # noqa: E402
    sample_mp3, sample_mp4, sample_pdf, sample_png, service_account_json,
)


@pytest.fixture(scope="session")
def ref_vertex_account(sim, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("ref-vertex") / "service-account.json"
    path.write_text(service_account_json(sim.base_url + "/token"))
    return path


@pytest.fixture
def in_samples(tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """A working directory holding the files the examples open by name: sample.png,
    sample.mp3, sample.pdf, sample.mp4 (small, valid, made here)."""
    (tmp_path / "sample.png").write_bytes(sample_png("004"))
    (tmp_path / "sample.mp3").write_bytes(sample_mp3())
    (tmp_path / "sample.pdf").write_bytes(sample_pdf("A World of Love"))
    (tmp_path / "sample.mp4").write_bytes(sample_mp4())
    monkeypatch.chdir(tmp_path)
    return tmp_path
