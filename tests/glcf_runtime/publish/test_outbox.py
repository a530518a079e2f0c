"""The outbox on a real SQLite file: order, per-publisher state, removal only after every
acknowledgement, refusals kept, survival across a reopen, the size bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from glcf_runtime.errors import ConfigError
from glcf_runtime.outbox import Outbox, OutboxFull, new_run_id, outbox_path


def _body(run: str, frame: int, camera: str = "cam1") -> dict:
    return {"frame": frame, "message_id": f"{run}:{camera}:{frame}", "camera": camera,
            "capture_time": 1000.0 + frame, "anomalous": frame % 2 == 1}


def test_each_publisher_has_its_own_state_and_a_row_goes_after_every_ack(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as box:
        assert box.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        seqs = [box.enqueue(_body("r", i), ["a", "b"]) for i in range(3)]
        assert seqs == sorted(seqs)
        assert box.next_pending("a").body["frame"] == 0
        box.acknowledge("a", seqs[0])
        assert box.next_pending("a").body["frame"] == 1  # a moves on, b still at 0
        assert box.next_pending("b").body["frame"] == 0
        assert box.count_pending(["a"]) == 2 and box.count_pending(["b"]) == 3
        assert box.count_pending() == 3  # message 0 is kept for b
        box.acknowledge("b", seqs[0])
        assert box.count_pending() == 2
        assert box.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2


def test_a_refused_message_is_kept_and_never_resent(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as box:
        first = box.enqueue(_body("r", 0), ["hook"])
        box.enqueue(_body("r", 1), ["hook"])
        box.refuse("hook", first, "HTTP 400 Bad Request")
        assert box.next_pending("hook").body["frame"] == 1
        assert box.count_failed() == 1
        row = box.db.execute("SELECT m.message_id, f.detail FROM failed f JOIN messages m "
                             "USING (seq)").fetchone()
        assert row == ("r:cam1:0", "HTTP 400 Bad Request")


def test_undelivered_messages_survive_a_reopen_with_their_ids_first(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    old, new = new_run_id(), new_run_id()
    assert old != new
    box = Outbox(path)
    for i in range(3):
        box.enqueue(_body(old, i), ["mqtt://***@h/t", "gone"])
    del box  # no close: as after a killed process
    with Outbox(path) as box:
        box.enqueue(_body(new, 0), ["mqtt://***@h/t"])
        order = []
        while (message := box.next_pending("mqtt://***@h/t")) is not None:
            order.append(message.message_id)
            box.acknowledge("mqtt://***@h/t", message.seq)
        assert order == [f"{old}:cam1:0", f"{old}:cam1:1", f"{old}:cam1:2", f"{new}:cam1:0"]
        assert box.waiting_for(["mqtt://***@h/t"]) == {"gone": 3}


def test_full_outbox_refuses_the_message_and_stores_nothing(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", max_bytes=40_000) as box:
        stored = 0
        with pytest.raises(OutboxFull, match=r"is full .* raise --outbox-max-mb"):
            for i in range(10_000):
                box.enqueue(_body("r", i), ["p"])
                stored += 1
        assert 0 < stored < 10_000
        assert box.count_pending() == stored  # the refused message left nothing behind


def test_outbox_path_needs_jsonl_or_outbox(tmp_path: Path) -> None:
    assert outbox_path(tmp_path / "run.jsonl", None) == tmp_path / "run.jsonl.outbox.sqlite"
    assert outbox_path(None, tmp_path / "x.sqlite") == tmp_path / "x.sqlite"
    with pytest.raises(ConfigError, match=r"add --jsonl FILE .* or --outbox PATH"):
        outbox_path(None, None)


def test_a_file_that_is_not_sqlite_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "o.sqlite"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match=r"o\.sqlite: cannot open it as an SQLite outbox"):
        Outbox(bad)
