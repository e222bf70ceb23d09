"""The multiprocess scrape reads every worker's value files: one that a worker has
made but not yet sized (or was killed between the two) must not fail it."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.core import InfoMetricFamily
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from monitor.metrics_exposition import multiprocess_exposition, value_files
from tests.helpers.metrics import parse


def record(directory: Path, pid: int, endpoint: str, hits: float) -> None:
    """A worker's counter file holding one value, as prometheus-client writes it."""
    values = MmapedDict(str(directory / f"counter_{pid}.db"))
    key = mmap_key("pm_hits", "pm_hits_total", ["endpoint"], [endpoint], "Hits.")
    values.write_value(key, hits, 0.0)
    values.close()


def test_an_unsized_value_file_is_left_out_not_a_failed_scrape(tmp_path: Path) -> None:
    record(tmp_path, 101, "7", 3)
    record(tmp_path, 102, "7", 4)
    (tmp_path / "counter_103.db").touch()  # made, not yet sized (client_python#1199)
    (tmp_path / "gauge_livesum_103.db").touch()
    assert sorted(Path(f).name for f in value_files(str(tmp_path))) == [
        "counter_101.db",
        "counter_102.db",
    ]
    info = InfoMetricFamily("pm_endpoint", "Each endpoint.", labels=["endpoint"])
    info.add_metric(["7"], {"name": "seven"})
    text = multiprocess_exposition(str(tmp_path), "eu-1", [info]).decode()
    samples = parse(text)  # also: every sample carries node="eu-1"
    assert 'node="eu-1"' in text
    assert samples["pm_hits_total", frozenset({("endpoint", "7")})] == 7
    assert samples["pm_endpoint_info", frozenset({("endpoint", "7"), ("name", "seven")})] == 1
