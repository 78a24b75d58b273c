"""Event log ring (meter.events): record codec, ring wrap, IC 7 entry/range reads, restart, and
power cuts on littlefs (MicroPython only), on CPython and MicroPython."""

from meter.events import EventLog, EventLogError, encode_into, decode_at, REC


from fsutil import tmpdir as _tmpdir, rmtree as _rmtree  # noqa: E402


def raises(exc, fn, *a):
    try:
        fn(*a)
    except exc:
        return True
    raise AssertionError("%s not raised" % exc.__name__)


def test_record_codec_int_text_none_and_crc():
    buf = bytearray(3 * REC)
    # codes: credit added 10, relay open 42, power up 3 (meter.events)
    encode_into(buf, 0, 7, 1767225600, 10, 5000)
    encode_into(buf, REC, 8, 1767225601, 42, "remote")
    encode_into(buf, 2 * REC, 9, 1767225602, 3, None)
    assert decode_at(buf, 0) == (7, 1767225600, 10, 5000, 1)
    assert decode_at(buf, REC) == (8, 1767225601, 42, "remote", 1)
    assert decode_at(buf, 2 * REC) == (9, 1767225602, 3, None, 1)
    # big-endian layout: seq, epoch, code
    assert bytes(buf[0:10]) == b"\x00\x00\x00\x07\x69\x55\xb9\x00\x00\x0a"
    encode_into(buf, 0, 1, 0, 51, "key_change_pending")     # text is cut to 8 bytes
    assert decode_at(buf, 0)[3] == "key_chan"
    encode_into(buf, 0, 1, 0, 10, -2 ** 40)                  # clamped to i32
    assert decode_at(buf, 0)[3] == -2 ** 31
    # repeated events: the count in the first 4 detail bytes, the detail (int, text <= 4, none) after
    encode_into(buf, 0, 1, 2 ** 32 - 1, 30, None, 1000)
    assert decode_at(buf, 0) == (1, 2 ** 32 - 1, 30, None, 1000)    # epoch u32: 2106-02-07
    encode_into(buf, 0, 1, 0, 51, "crc_fail", 3)
    assert decode_at(buf, 0) == (1, 0, 51, "crc_", 3)
    encode_into(buf, 0, 1, 0, 90, -7, 2)
    assert decode_at(buf, 0) == (1, 0, 90, -7, 2)
    for i in range(REC):
        b = bytearray(buf)
        b[i] ^= 0x10
        assert decode_at(b, 0) is None
    raises(EventLogError, encode_into, buf, 0, 1, 0, 1, [1])


def test_ring_wraps_and_reads_by_entry_and_time():
    d = _tmpdir("ev")
    try:
        log = EventLog(d + "/ev", segments=4)             # 20 entries
        assert log.count() == 0 and log.capacity == 20 and list(log.entries()) == []
        for i in range(1, 24):                            # 23 events: the oldest 5 dropped once
            log.append(1000 + 10 * i, 100 + i, i)
        # 23 written; the ring started a 5th segment over the oldest: 3 + 5*3 = 18 kept
        assert log.count() == 18
        got = list(log.entries())
        assert [e[2] for e in got] == list(range(6, 24))
        assert got[0] == (1060, 106, 6, 1) and got[-1] == (1230, 123, 23, 1)
        assert [e[2] for e in log.entries(2, 4)] == [7, 8, 9]
        assert [e[2] for e in log.entries(17, 0)] == [22, 23]        # 0 = to the newest
        assert [e[2] for e in log.entries(16, 99)] == [21, 22, 23]   # clipped
        assert list(log.entries(19, 0)) == []
        assert [e[2] for e in log.by_time(1100, 1140)] == [10, 11, 12, 13, 14]
        assert list(log.by_time(0, 999)) == []
        # a restart finds the same ring and continues the sequence
        log2 = EventLog(d + "/ev", segments=4)
        assert log2.count() == 18 and list(log2.entries()) == got
        assert log2.append(2000, 1, None) == 24
        assert log2.count() == 19 and list(log2.entries(19, 0)) == [(2000, 1, None, 1)]
        log2.clear()
        assert log2.count() == 0 and list(EventLog(d + "/ev", segments=4).entries()) == []
    finally:
        _rmtree(d)


def test_damaged_record_ends_its_segment():
    d = _tmpdir("ev")
    try:
        log = EventLog(d + "/ev", segments=3)
        for i in range(1, 8):
            log.append(i, 1, i)
        # damage entry 3 (segment e00, third record): it and the rest of that segment are dropped
        with open(d + "/ev/e00", "r+b") as f:
            f.seek(2 * REC + 5)
            f.write(b"\xee")
        log2 = EventLog(d + "/ev", segments=3)
        assert [e[2] for e in log2.entries()] == [1, 2, 6, 7]
        assert log2.append(9, 1, 8) == 8
    finally:
        _rmtree(d)


def test_event_log_on_littlefs_survives_cuts():
    try:
        import vfs
        vfs.VfsLfs2
    except (ImportError, AttributeError):
        try:
            import pytest
            pytest.skip("littlefs only on MicroPython")
        except ImportError:
            from mpy_runner import SkipTest
            raise SkipTest("no VfsLfs2")
    from boards.nor_flash import NorFlash, PowerCut
    d = _tmpdir("evl")
    img = d + "/f.img"

    def mount(cut=0):
        nor = NorFlash(img, 16, cut_at=cut, seed=cut + 3)
        vfs.mount(vfs.VfsLfs2(nor, mtime=False), "/tev")
        return nor

    def umount(nor):
        vfs.umount("/tev")
        nor.ioctl(2, 0)

    try:
        nor = NorFlash(img, 16)
        vfs.VfsLfs2.mkfs(nor)
        nor.ioctl(2, 0)
        base = open(img, "rb").read()
        nor = mount()
        log = EventLog("/tev/ev", segments=3)
        for i in range(1, 13):
            log.append(i, 2, i)
        total = nor.ops
        umount(nor)
        for cut in range(1, total + 1, 2):
            with open(img, "wb") as f:
                f.write(base)
            nor = mount(cut)
            done = 0
            try:
                log = EventLog("/tev/ev", segments=3)
                for i in range(1, 13):
                    log.append(i, 2, i)
                    done = i
            except (PowerCut, OSError):
                assert nor.ops == cut                # the cut came (the device is dead)
            umount(nor)
            nor = mount()
            got = [e[2] for e in EventLog("/tev/ev", segments=3).entries()]
            umount(nor)
            # the newest entries, consecutive, ending with the last completed (or in-flight) one
            if got:
                assert got == list(range(got[0], got[-1] + 1)), (cut, got)
                assert got[-1] in (done, done + 1), (cut, done, got)
                assert got[0] == 1, (cut, got)          # 12 events fit: nothing dropped
            else:
                assert done == 0
    finally:
        _rmtree(d)
