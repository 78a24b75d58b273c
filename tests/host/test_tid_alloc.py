"""TIDs handed out once per meter: the locked store (host_tools.tidstore) under parallel vends
and interleaved batches (issue 14: "ten parallel vends produced TID 6800499 twice", "vend --csv
neither reads nor updates the per-meter last-TID store")."""
import csv
import json
import os

import pytest

from host_tools import tidstore, vend as V
from protocol.sts import StsError

from parallel_vend import DRNS, VK, parallel_vend

NOW = 1767225600                               # 2026-01-01 00:00 UTC


def _dk(drn):
    return V.derive_decoder_key(VK, V.build_pan("600727", drn), "123456", 1, 1, 2, 2014, "ea07")


def test_parallel_vends_and_batches_never_share_a_tid(tmp_path):
    found = parallel_vend(tmp_path)
    assert sum(len(v) for v in found.values()) == 8 * 200 + 2 * 100
    for drn, items in found.items():
        tids = [t for t, _ in items]
        assert len(tids) == len(set(tids)), "TID vended twice for %s" % drn
        # the store remembers the highest, so the next single vend steps past all of them
        assert tidstore.last(_dk(drn), 2014) == max(tids)
        for tid, tok in items[::97]:               # and every token is for that meter and TID
            assert V.decode_token(tok, _dk(drn), base_date=2014)["tid"] == tid


def test_batch_reserves_its_range_and_a_single_vend_follows(tmp_path):
    dk = _dk(DRNS[0])
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("drn,amount,issued\n" + "%s,1.0,2026-01-01T00:00\n" % DRNS[0] * 5)
    V.vend_csv(str(src), str(out), {"vending_key": VK, "base_date": "2014", "iin": "600727", "sgc": "123456",
                                    "ti": "1", "krn": "1", "kt": "2"})
    with open(out, newline="") as f:
        tids = [int(r["tid"]) for r in csv.DictReader(f)]
    first = V.allocate_tids(dk, 2014, 1, NOW)[0] - 5
    assert tids == list(range(first, first + 5))
    # the single vend after the batch does not reuse the batch's last TID (issue 14)
    assert V.next_tid(dk, 2014, NOW) == tids[-1] + 2


def test_explicit_tid_is_remembered_and_legacy_memory_read(tmp_path, monkeypatch):
    dk = _dk(DRNS[1])
    V.note_tid(dk, 2014, 9000000)
    assert V.next_tid(dk, 2014, NOW) == 9000001
    # the single-file memory of earlier versions is the starting point of a meter's store
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "old"))
    os.makedirs(tmp_path / "old")
    (tmp_path / "old" / "last_tid.json").write_text(json.dumps({tidstore.meter_id(dk, 2014): 8000000}))
    assert V.next_tid(dk, 2014, NOW) == 8000001


def test_rollover_and_unwritable_store(tmp_path, monkeypatch):
    dk = _dk(DRNS[0])
    V.note_tid(dk, 1993, 0xFFFFFF)
    with pytest.raises(V.VendError):
        V.next_tid(dk, 1993, NOW - 3 * 365 * 86400)
    with pytest.raises(StsError):
        tidstore.allocate(dk, 1993, [1])
    (tmp_path / "ro").write_text("a file, not a directory")
    monkeypatch.setenv("METERCTL_STATE_DIR", str(tmp_path / "ro"))
    assert V.allocate_tids(dk, 2014, 3, NOW) == [V.allocate_tids(dk, 2014, 1, NOW)[0] + k for k in range(3)]
