"""The event log on SQLite and PostgreSQL: dense positions in commit order under concurrent
appends, each event once, and parked events that rewind to any trainer position."""

from __future__ import annotations

import threading
import time

from workers.catalog import Catalog, DeadLetter, LogEntry

WRITERS = 4
BATCHES = 15


def test_concurrent_appends_get_dense_positions_and_a_reader_misses_none(
    catalog_url: str,
) -> None:
    """Writers (each with its own engines, as API processes have) append overlapping ids
    while a reader follows the log from its head: every id gets one position, positions
    have no gap, and the reader sees each one once, in order, while they commit."""
    Catalog(catalog_url).close()  # the schema, once
    done = threading.Event()
    seen: list[LogEntry] = []
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        catalog = Catalog(catalog_url)
        try:
            for b in range(BATCHES):  # writers 0 and 1 send the same ids, so do 2 and 3
                ids = [f"e{writer // 2}-{b}-{k}" for k in range(5)]
                catalog.append_events({i: f'{{"id": "{i}"}}' for i in ids})
        except BaseException as exc:
            errors.append(exc)
        finally:
            catalog.close()

    def read() -> None:
        catalog = Catalog(catalog_url)
        try:
            position = 0
            while not done.is_set() or position < catalog.log_head():
                for entry in catalog.read_log(position, catalog.log_head(), 7):
                    assert entry.position == position + 1, (entry.position, position)
                    seen.append(entry)
                    position = entry.position
        except BaseException as exc:
            errors.append(exc)
        finally:
            catalog.close()

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    reader.join()
    assert not errors, errors
    unique = WRITERS // 2 * BATCHES * 5
    assert [e.position for e in seen] == list(range(1, unique + 1))
    assert len({e.event_id for e in seen}) == unique
    catalog = Catalog(catalog_url)
    assert catalog.log_head() == unique
    assert catalog.append_events({seen[0].event_id: "{}"}) == []  # received before
    assert catalog.prune_log(10) == 10 and catalog.read_log(0, unique, 1)[0].position == 11
    assert catalog.append_events({seen[0].event_id: "{}"}) == []  # the ledger remembers
    catalog.forget_processed(time.time() + 1)  # the ledger's retention passed
    assert catalog.append_events({seen[20].event_id: "{}"}) == []  # still in the log
    catalog.close()


def test_parked_events_rewind_to_the_position_a_trainer_resumes_from(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    entry = {p: LogEntry(p, f"e{p}", f'{{"n": {p}}}', 1.0) for p in range(1, 30)}
    for _ in range(2):  # the second: a retry after a commit whose answer was lost
        catalog.record_chunk("staged", 10, [(entry[4], "r"), (entry[8], "r")], {}, [])
    catalog.record_chunk("other", 10, [(entry[4], "r")], {}, [])
    dead = DeadLetter(12, "e12", "ValueError: bad", entry[12].payload)
    catalog.record_chunk("staged", 20, [(entry[15], "r")], {4: "trained"}, [dead])
    catalog.record_chunk("staged", 25, [], {8: "dropped"}, [dead])  # met again: kept once
    assert [e.event_id for e in catalog.parked("staged")] == ["e15"]
    assert catalog.parked_counts() == {"staged": 1, "other": 1}
    catalog.rewind_parked("staged", 20)  # resolved after 20: parked again
    assert [e.event_id for e in catalog.parked("staged")] == ["e8", "e15"]
    catalog.rewind_parked("staged", 10)  # parked after 10: gone
    assert catalog.parked("staged") == [entry[4], entry[8]]
    assert [e.event_id for e in catalog.parked("other")] == ["e4"]
    assert [(d.position, d.reason) for d in catalog.dead_letters()] == [(12, "ValueError: bad")]
    catalog.record_chunk("staged", 20, [], {4: "trained", 8: "dropped"}, [])
    assert catalog.forget_parked("staged", 19) == 0
    assert catalog.forget_parked("staged", 20) == 2 and catalog.parked_counts() == {"other": 1}
    catalog.close()
