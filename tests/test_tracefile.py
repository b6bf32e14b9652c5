"""The streamed event trace: one msgpack document, whatever the chunks it was written in."""

import msgpack
import pytest

from sim.tracefile import FIELDS, TraceWriter


@pytest.mark.parametrize("chunks", [[], [0], [1], [15, 1], [16], [3, 70_000, 2]])
def test_chunks_of_every_msgpack_array_size_read_back_as_one_list(tmp_path, chunks):
    path = tmp_path / "t.msgpack"
    expected = []
    with TraceWriter(path) as w:
        for size in chunks:  # fixarray (< 16), array16 (< 65,536) and array32 chunk headers
            events = [(len(expected) + i, 1, 2 ** 40 + i, 3, "Kind") for i in range(size)]
            w.write(events)
            expected.extend(list(e) for e in events)
    assert w.events == len(expected)
    assert msgpack.unpackb(path.read_bytes(), raw=False) == {"fields": FIELDS,
                                                              "events": expected}


def test_a_writer_closed_twice_or_by_an_exception_leaves_a_valid_file(tmp_path):
    path = tmp_path / "t.msgpack"
    with pytest.raises(RuntimeError), TraceWriter(path) as w:
        w.write([(1, 0, 1, 0, "Tick")])
        raise RuntimeError("the run failed")
    w.close()
    assert msgpack.unpackb(path.read_bytes(), raw=False)["events"] == [[1, 0, 1, 0, "Tick"]]


def test_a_run_that_fails_before_any_event_leaves_no_file(tmp_path):
    path = tmp_path / "t.msgpack"
    with pytest.raises(ValueError), TraceWriter(path):
        raise ValueError("a trace arrivals file is missing")
    assert not path.exists()
