"""State journal (meter.store) and the NOR flash model (boards.nor_flash), on CPython and MicroPython.

The littlefs tests (VfsLfs2 over the NOR model, power cut at every program/erase of a run of
saves) need MicroPython's ``vfs`` module and are skipped on CPython.
"""
import os

from boards.nor_flash import NorFlash, PowerCut, BLOCK_SIZE
from meter.store import Journal, JournalError, decode_full, encode_hot, decode_hot, TIME_MAX


from fsutil import tmpdir as _tmpdir, rmtree as _rmtree  # noqa: E402
from journal_record import encode_record  # noqa: E402


def _lfs():
    try:
        import vfs
        return vfs.VfsLfs2
    except (ImportError, AttributeError):
        try:
            import pytest
            pytest.skip("littlefs (vfs.VfsLfs2) exists only on MicroPython")
        except ImportError:
            pass
        from mpy_runner import SkipTest
        raise SkipTest("no vfs.VfsLfs2")


def raises(exc, fn, *a):
    try:
        fn(*a)
    except exc:
        return True
    raise AssertionError("%s not raised" % exc.__name__)


# -- record codec -----------------------------------------------------------------------------
def test_record_round_trip_and_crc():
    rec = encode_record(7, {"mode": 5, "tok": "544b01"}, (100, 999, 12345, -1, 1767225600))
    seq, obj, hot = decode_full(rec)
    assert seq == 7 and obj == {"mode": 5, "tok": "544b01"} and hot == (100, 999, 12345, -1, 1767225600)
    for i in range(len(rec)):          # every single-byte corruption is rejected
        bad = bytearray(rec)
        bad[i] ^= 0x41
        assert decode_full(bytes(bad)) is None
    for n in range(len(rec)):          # every truncation (torn write) is rejected
        assert decode_full(rec[:n]) is None
    assert decode_full(None) is None


def test_hot_record_is_30_bytes_and_checked():
    h = encode_hot(0x01020304, (-5, 0, 2 ** 31 - 1, -2 ** 31, 0))
    assert len(h) == 30 and h[:2] == b"PU" and h[2:6] == b"\x01\x02\x03\x04"
    assert decode_hot(h) == (0x01020304, (-5, 0, 2 ** 31 - 1, -2 ** 31, 0))
    bad = bytearray(h)
    bad[10] ^= 1
    assert decode_hot(bytes(bad)) is None and decode_hot(h[:29]) is None
    raises(JournalError, encode_hot, 1, (0, 0, 0, 0))
    raises(JournalError, encode_hot, 1, (2 ** 31, 0, 0, 0, 0))


def test_time_is_unsigned_32_bit_past_2038_to_2106():
    # 2038-01-19T03:14:08Z (2**31) and 2040 fit; the last second is 2106-02-07T06:28:15Z
    for t in (2 ** 31, 2208988800, TIME_MAX):
        assert decode_hot(encode_hot(9, (1, 2, 3, -1, t))) == (9, (1, 2, 3, -1, t))
        assert decode_full(encode_record(9, {"a": 1}, (1, 2, 3, -1, t)))[2] == (1, 2, 3, -1, t)
    assert TIME_MAX == 2 ** 32 - 1
    raises(JournalError, encode_hot, 1, (0, 0, 0, 0, 2 ** 32))
    raises(JournalError, encode_hot, 1, (0, 0, 0, 0, -1))     # before 1970: refused, nothing written


def _old_full(seq, obj, hot):
    """A version 2 full record (time as signed 32-bit), as the firmware before wrote it."""
    import binascii
    import json
    import struct
    payload = json.dumps(obj).encode()
    body = b"PJ" + struct.pack(">BIH", 2, seq, len(payload)) + payload + struct.pack(">5i", *hot)
    return body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)


def _old_hot(seq, hot):
    import binascii
    import struct
    body = b"PH" + struct.pack(">I", seq) + struct.pack(">5i", *hot)
    return body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)


def test_records_of_the_earlier_format_are_read():
    assert decode_full(_old_full(3, {"m": 1}, (5, 0, 7, -1, 1767225600))) == \
        (3, {"m": 1}, (5, 0, 7, -1, 1767225600))
    assert decode_hot(_old_hot(4, (6, 1, 8, 9, 1767225700))) == (4, (6, 1, 8, 9, 1767225700))
    assert decode_hot(_old_hot(4, (6, 1, 8, 9, -5)))[1][4] == 0       # a time before 1970: 0
    d = _tmpdir("jold")
    try:
        with open(d + "/s.b", "wb") as f:
            f.write(_old_full(3, {"m": 1}, (5, 0, 7, -1, 1767225600)))
        with open(d + "/s.ha", "wb") as f:
            f.write(_old_hot(4, (4, 0, 9, -1, 1767225660)))
        j = Journal(d + "/s")
        assert j.load() == {"m": 1} and j.hot == (4, 0, 9, -1, 1767225660) and j.seq == 4
        j.save({"m": 1}, (3, 0, 10, -1, 2 ** 31 + 5))              # a field upgrade goes on
        j2 = Journal(d + "/s")
        assert j2.load() == {"m": 1} and j2.hot == (3, 0, 10, -1, 2 ** 31 + 5) and j2.seq == 5
    finally:
        _rmtree(d)


# -- journal on a plain filesystem ----------------------------------------------------------------
def test_newest_valid_wins_and_hot_overlays_full():
    d = _tmpdir("j")
    try:
        j = Journal(d + "/state")
        assert j.load() is None
        assert j.save({"mode": 5}, (1000, 0, 0, 0, 100)) is True       # full (first)
        assert j.save({"mode": 5}, (990, 500, 15, 15, 160)) is False    # same obj: hot only
        assert j.save({"mode": 5}, (980, 0, 30, 30, 220)) is False
        j2 = Journal(d + "/state")
        assert j2.load() == {"mode": 5} and j2.hot == (980, 0, 30, 30, 220) and j2.seq == 3
        # a settings change is a full record carrying the hot values of that moment
        assert j2.save({"mode": 3}, (980, 0, 30, 30, 230)) is True
        j3 = Journal(d + "/state")
        assert j3.load() == {"mode": 3} and j3.hot == (980, 0, 30, 30, 230)
        # corrupt the newest full record (seq 4; the first went to .b): the older full + its
        # newer hot records win
        with open(d + "/state.a", "r+b") as f:
            f.seek(12)
            f.write(b"\x00")
        j4 = Journal(d + "/state")
        assert j4.load() == {"mode": 5} and j4.hot == (980, 0, 30, 30, 220) and j4.seq == 3
        # next records go to the damaged slot first, never over the good one
        j4.save({"mode": 4}, (1, 2, 3, 4, 5))
        assert decode_full(open(d + "/state.b", "rb").read())[1] == {"mode": 5}
    finally:
        _rmtree(d)


def test_bytes_values_are_journaled_as_hex_text_and_unchanged_state_stays_hot():
    """A token entry journals the TID store record as bytes: the journal writes it as hex text
    in pieces (no whole-payload string, docs/MEMORY.md), reads it back as that str, and the same
    state (bytes on save, str after a load) is recognised: a hot record, not a full one."""
    d = _tmpdir("jb")
    try:
        tok = bytes(range(256)) + b"TK"
        state = {"acc": {"credit": 5, "note": 'a "quoted" text'}, "tok": tok, "none": None}
        j = Journal(d + "/state")
        assert j.save(state, (1, 2, 3, 4, 5)) is True
        j2 = Journal(d + "/state")
        back = j2.load()
        assert back == {"acc": {"credit": 5, "note": 'a "quoted" text'}, "tok": tok.hex(), "none": None}
        # the same state as bytes or as its hex text is the same payload (one key: MicroPython's
        # dicts have no insertion order)
        assert j2.save({"tok": tok}, (1, 2, 3, 4, 6)) is True
        assert j2.save({"tok": tok.hex()}, (1, 2, 3, 4, 7)) is False and j2.save({"tok": tok}, (1, 2, 3, 4, 8)) is False
        assert j2.save({}, (1, 2, 3, 4, 9)) is True and Journal(d + "/state").load() == {}
    finally:
        _rmtree(d)


def test_hot_record_older_than_full_is_ignored():
    d = _tmpdir("j")
    try:
        j = Journal(d + "/s")
        j.save({"a": 1}, (1, 1, 1, 1, 1))
        j.save({"a": 1}, (2, 2, 2, 2, 2))            # hot seq 2
        j.save({"a": 2}, (3, 3, 3, 3, 3))            # full seq 3
        j = Journal(d + "/s")
        assert j.load() == {"a": 2} and j.hot == (3, 3, 3, 3, 3)
    finally:
        _rmtree(d)


# -- NOR model ---------------------------------------------------------------------------------
def test_nor_erase_program_and_wear_counters():
    d = _tmpdir("nor")
    try:
        img = d + "/flash.img"
        nor = NorFlash(img, 4)
        assert nor.ioctl(4, 0) == 4 and nor.ioctl(5, 0) == BLOCK_SIZE
        buf = bytearray(8)
        nor.readblocks(1, buf, 16)
        assert buf == bytearray(b"\xff" * 8)          # fresh image is erased
        nor.writeblocks(1, b"\x0f\xf0\x00\xff", 16)
        nor.writeblocks(1, b"\xff\x3c\xff\xff", 16)   # program only clears bits: AND
        nor.readblocks(1, buf, 16)
        assert bytes(buf[:4]) == b"\x0f\x30\x00\xff"
        assert nor.overprogrammed == 3                 # 0x0f->0xff, 0xf0->0x3c, 0x00->0xff need 0->1
        nor.ioctl(6, 1)
        nor.readblocks(1, buf, 16)
        assert buf == bytearray(b"\xff" * 8)
        nor.ioctl(6, 1)
        nor.ioctl(6, 3)
        assert [nor.erase_count(b) for b in range(4)] == [0, 2, 0, 1]
        assert nor.erases == 3 and nor.ops == 5                   # 2 programs, 3 erases
        nor.ioctl(2, 0)
        with open(img + ".wear", "rb") as f:           # u32 BE per block
            assert f.read() == b"\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0\1"
        nor = NorFlash(img, 4)                         # counters and data survive a restart
        assert nor.erase_count(1) == 2
        nor.ioctl(2, 0)
    finally:
        _rmtree(d)


def test_nor_cut_tears_the_program_and_kills_the_device():
    d = _tmpdir("nor")
    try:
        torn = []
        for seed in range(1, 40):
            img = d + "/f%d.img" % seed
            nor = NorFlash(img, 2, cut_at=2, seed=seed)
            nor.writeblocks(0, b"\x00" * 64, 0)        # op 1: complete
            raises(PowerCut, nor.writeblocks, 0, b"\x00" * 64, 64)   # op 2: torn
            assert nor.readblocks(0, bytearray(4), 0) == -5           # no power after the cut
            assert nor.writeblocks(0, b"\x00", 0) == -5 and nor.ioctl(6, 0) == -5
            nor.ioctl(2, 0)
            nor = NorFlash(img, 2)
            buf = bytearray(128)
            nor.readblocks(0, buf, 0)
            assert buf[:64] == bytearray(64)
            k = 64
            while k < 128 and buf[k] == 0:
                k += 1
            assert all(b == 0xFF for b in buf[k + 1:])  # beyond the byte in flight: still erased
            torn.append(k - 64)
            nor.ioctl(2, 0)
        assert min(torn) < 16 and max(torn) > 48       # the torn length really varies
        img = d + "/e.img"
        nor = NorFlash(img, 2)
        nor.writeblocks(1, b"\x00" * BLOCK_SIZE, 0)
        nor.ioctl(2, 0)
        nor = NorFlash(img, 2, cut_at=1, seed=5)
        raises(PowerCut, nor.ioctl, 6, 1)              # partial erase
        nor.ioctl(2, 0)
        nor = NorFlash(img, 2)
        buf = bytearray(BLOCK_SIZE)
        nor.readblocks(1, buf, 0)
        ff = 0
        while buf[ff] == 0xFF:
            ff += 1
        assert 0 <= ff < BLOCK_SIZE and buf[BLOCK_SIZE - 1] == 0 and nor.erase_count(1) == 1
        nor.ioctl(2, 0)
    finally:
        _rmtree(d)


# -- littlefs on the NOR model with power cuts (MicroPython) -----------------------------------------
def _mount(img, blocks, cut_at=0, seed=1, fmt=False):
    VfsLfs2 = _lfs()
    import vfs
    nor = NorFlash(img, blocks, cut_at=cut_at, seed=seed)
    if fmt:
        VfsLfs2.mkfs(nor)
    fs = VfsLfs2(nor, mtime=False)
    vfs.mount(fs, "/tst")
    return nor


def _umount(nor):
    import vfs
    try:
        vfs.umount("/tst")
    except OSError:
        pass
    nor.ioctl(2, 0)


def test_journal_on_littlefs_survives_a_cut_at_every_operation():
    _lfs()
    d = _tmpdir("lfs")
    img = d + "/flash.img"
    try:
        # a workload: hot records with a full record every 4th save
        def step(j, i):
            return j.save({"mode": 5 + (i // 4)}, (1000 - i, i, 10 * i, 10 * i, 60 * i))
        base = bytearray(16 * BLOCK_SIZE)   # the image's copy, allocated before the heap fragments
        nor = _mount(img, 16, fmt=True)
        step(Journal("/tst/state"), 0)
        _umount(nor)
        with open(img, "rb") as f:
            assert f.readinto(base) == len(base)
        # count the ops of the whole workload once
        nor = _mount(img, 16)
        j = Journal("/tst/state")
        j.load()
        for i in range(1, 13):
            step(j, i)
        total = nor.ops
        _umount(nor)
        assert total >= 12
        cuts = 0
        for cut in range(1, total + 1):
            with open(img, "wb") as f:
                f.write(base)
            nor = _mount(img, 16, cut_at=cut, seed=cut)
            j = Journal("/tst/state")
            j.load()
            done = 0
            try:
                for i in range(1, 13):
                    step(j, i)
                    done = i
            except (PowerCut, OSError):   # OSError: littlefs closing a file on the dead device
                assert nor.ops == cut                # the cut came (the device is dead)
                cuts += 1
            _umount(nor)
            nor = _mount(img, 16)                       # the filesystem mounts after every cut
            j = Journal("/tst/state")
            obj = j.load()
            hot = j.hot
            # the last completed save, or the one in flight (if its commit made it)
            assert hot[1] in (done, done + 1), (cut, done, hot)
            i = hot[1]
            assert obj == {"mode": 5 + i // 4} and hot == (1000 - i, i, 10 * i, 10 * i, 60 * i)
            _umount(nor)
        assert cuts == total, (cuts, total)
    finally:
        _rmtree(d)


def test_hot_records_stay_inline_in_littlefs():
    _lfs()
    d = _tmpdir("lfs")
    try:
        nor = _mount(d + "/flash.img", 32, fmt=True)
        try:
            os.mkdir("/tst/j")
        except OSError:
            pass
        j = Journal("/tst/j/state")
        j.save({"mode": 5, "tok": "00" * 150}, (0, 0, 0, 0, 0))
        e0 = nor.erases
        for i in range(1, 601):
            j.save({"mode": 5, "tok": "00" * 150}, (i, i, i, i, i))
        per_erase = 600 / max(1, nor.erases - e0)
        _umount(nor)
        assert j.full_writes == 1
        assert per_erase >= 40, per_erase              # ~60 hot records per block erase
    finally:
        _rmtree(d)
