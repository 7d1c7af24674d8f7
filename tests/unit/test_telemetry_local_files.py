"""The embedded default's files: layout, rotation, the size cap, and several writing processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from cde_otel.settings import load_settings
from cde_otel.telemetry._local_files import RotatingLines, local_exporter, metric_preferences, rotated_files
from cde_otel.telemetry._pipeline import select_exporters


def _signal_files(directory: Path, signal: str) -> list[Path]:
    """What a reader reads: the rotated files oldest first, then the live one."""
    live = directory / f"{signal}.jsonl"
    return rotated_files(directory, signal) + ([live] if live.exists() else [])


def _lines(paths: list[Path]) -> list[bytes]:
    return [line for path in paths for line in path.read_bytes().splitlines()]


def test_lines_rotate_and_the_oldest_files_go_first_within_the_cap(tmp_path: Path) -> None:
    files = RotatingLines(tmp_path, "traces", max_bytes=4_000)  # rolls over at 1,000 bytes
    written = [orjson.dumps({"n": n, "pad": "x" * 90}) + b"\n" for n in range(200)]
    for line in written:
        assert files.write(line)
    files.close()
    kept = _signal_files(tmp_path, "traces")
    assert len(kept) > 2  # rotated, several times
    assert all(path.name.startswith("traces.") and path.name.endswith(".jsonl") for path in kept)
    assert sum(path.stat().st_size for path in kept) <= 4_000
    lines = _lines(kept)
    numbers = [orjson.loads(line)["n"] for line in lines]
    # The newest survive, in order, with nothing missing between the first kept and the last written.
    assert numbers == list(range(numbers[0], 200))
    assert numbers[0] > 0
    assert all(len(path.read_bytes()) <= 1_000 for path in kept)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(p.name for p in kept)


def test_a_line_larger_than_the_signals_share_is_refused_not_split(tmp_path: Path) -> None:
    files = RotatingLines(tmp_path, "logs", max_bytes=1_000)
    assert not files.write(b"y" * 2_000 + b"\n")
    assert files.dropped_lines == 1
    assert files.write(b"small\n")
    assert (tmp_path / "logs.jsonl").read_bytes() == b"small\n"


def test_a_partial_last_line_left_by_a_cut_write_is_dropped_before_the_next_line(tmp_path: Path) -> None:
    (tmp_path / "logs.jsonl").write_bytes(b'{"whole":1}\n{"cut sh')  # e.g. the disk was full
    files = RotatingLines(tmp_path, "logs", max_bytes=10_000)
    assert files.write(b'{"next":2}\n')
    assert (tmp_path / "logs.jsonl").read_bytes() == b'{"whole":1}\n{"next":2}\n'
    (tmp_path / "traces.jsonl").write_bytes(b"no newline at all")
    assert RotatingLines(tmp_path, "traces", max_bytes=10_000).write(b"{}\n")
    assert (tmp_path / "traces.jsonl").read_bytes() == b"{}\n"


def test_a_file_rotated_by_another_writer_is_never_written_again(tmp_path: Path) -> None:
    first = RotatingLines(tmp_path, "metrics", max_bytes=400)  # 100-byte segments
    second = RotatingLines(tmp_path, "metrics", max_bytes=400)
    assert first.write(b"a" * 60 + b"\n")
    assert second.write(b"b" * 60 + b"\n")  # rotates the file the first writer still holds open
    rotated = rotated_files(tmp_path, "metrics")
    assert len(rotated) == 1
    before = rotated[0].read_bytes()
    assert first.write(b"c" * 10 + b"\n")  # goes to the new live file, not the rotated one
    assert rotated[0].read_bytes() == before
    assert (tmp_path / "metrics.jsonl").read_bytes() == b"b" * 60 + b"\n" + b"c" * 10 + b"\n"


WRITER = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path
    from cde_otel.telemetry._local_files import RotatingLines

    directory, tag, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    files = RotatingLines(directory, "traces", max_bytes=200_000)
    start = Path(sys.argv[4])
    while not start.exists():  # both writers start together
        time.sleep(0.001)
    for n in range(count):
        line = ('{"w":"%s","n":%d,"pad":"%s"}' % (tag, n, tag * (50 + n % 400))).encode() + b"\\n"
        assert files.write(line)
    files.close()
    """
)


def test_two_processes_write_at_once_whole_lines_within_the_cap(tmp_path: Path) -> None:
    start = tmp_path / "go"
    count = 1_500
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path / "dir"), tag, str(count), str(start)],
            env={**os.environ, "CDE_OTEL_ENABLED": "false"},
        )
        for tag in ("A", "B")
    ]
    start.touch()
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    kept = _signal_files(tmp_path / "dir", "traces")
    kept_bytes = sum(path.stat().st_size for path in kept)
    written_bytes = 2 * sum(len(f'{{"w":"A","n":{n},"pad":""}}') + 51 + n % 400 for n in range(count))
    assert len(kept) > 3  # rotated mid-run
    assert kept_bytes <= 200_000 < written_bytes
    seen: dict[str, list[int]] = {"A": [], "B": []}
    for line in _lines(kept):
        record = json.loads(line)  # every line complete: never two writers' bytes in one line
        assert record["pad"] == record["w"] * (50 + record["n"] % 400)
        seen[record["w"]].append(record["n"])
    assert seen["A"] or seen["B"]
    # Each writer's newest lines survive, in order and without gaps (the oldest files went first);
    # a writer that finished early may have had all of its lines rotated out.
    for numbers in (found for found in seen.values() if found):
        assert numbers == list(range(numbers[0], count))
    print(f"written {written_bytes:,} bytes, kept {kept_bytes:,} in {len(kept)} files")


def test_the_local_exporters_write_one_request_per_line(tmp_path: Path) -> None:
    exporter = local_exporter("traces", tmp_path, max_mb=1)
    provider = TracerProvider(resource=Resource({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for name in ("one", "two"):
        with tracer.start_as_current_span(name):
            pass
    provider.shutdown()
    requests = [json.loads(line) for line in (tmp_path / "traces.jsonl").read_text().splitlines()]
    assert [r["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] for r in requests] == ["one", "two"]
    assert exporter.files.max_bytes == 1024 * 1024 // 3


def test_the_cap_setting_is_shared_by_the_three_signals(tmp_path: Path) -> None:
    settings = load_settings({"CDE_OTEL_LOCAL_DIR": str(tmp_path), "CDE_OTEL_LOCAL_MAX_MB": "30"})
    exporters, _, _ = select_exporters(settings, {})
    shares = [exporters[signal].files.max_bytes for signal in ("traces", "metrics", "logs")]
    assert sum(shares) <= 30 * 1024 * 1024
    assert min(shares) == 10 * 1024 * 1024
    assert load_settings({}).local_max_mb == 100.0


def test_metric_temporality_and_histogram_follow_the_standard_variables() -> None:
    temporality, aggregation = metric_preferences(
        {
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
        }
    )
    assert temporality[Histogram] is AggregationTemporality.DELTA
    assert isinstance(aggregation[Histogram], ExponentialBucketHistogramAggregation)
    cumulative, _ = metric_preferences({})
    assert set(cumulative.values()) == {AggregationTemporality.CUMULATIVE}
