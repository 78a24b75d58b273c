"""The HDLC Receiver's inter-character time-out and address skipping (IEC 62056-46 §6.4; the
meter's ``meter.link``: 25 ms, frames for other stations skipped by their length).

Runs on CPython (pytest) and on the MicroPython unix port (tests/support/mpy_runner.py), where the
time-out uses ``time.ticks_diff`` (wrap-around included).
"""
from protocol import hdlc_client as hdlc
from protocol.crc import crc16_x25

from hdlc_rx import drain

C16 = hdlc.encode_client_address(16)
ME = hdlc.encode_server_address(1, 17)
OTHER = hdlc.encode_server_address(1, 18)
SNRM = hdlc.encode_frame(ME, C16, hdlc.SNRM)


def accept(value, n):
    """Ours: logical 1, physical 17 (2- or 4-byte address)."""
    return (n == 2 and value == (1 << 7 | 17)) or (n == 4 and value == (1 << 14 | 17))


def header(dest, length):
    """A truncated frame: a header with a valid HCS claiming ``length`` bytes, and 2 more."""
    h = bytearray((0x7E, 0xA0 | (length >> 8), length & 0xFF)) + dest + C16 + b"\x10"
    c = crc16_x25(bytes(h[1:]))
    return bytes(h) + bytes((c & 0xFF, c >> 8)) + b"\xE6\xE6"


def rx_for_us(maxlen=200):
    return hdlc.Receiver(maxlen, accept, 25)


def test_partial_frame_discarded_after_the_inter_character_time_out():
    rx = rx_for_us()
    rx.feed(header(ME, 100), 1000)
    assert drain(rx) == []
    rx.feed(SNRM, 1026)                      # 26 ms of silence: the partial frame is gone
    assert [f.ctrl for f in drain(rx)] == [hdlc.SNRM]
    assert rx.timeouts == 1 and rx.last_error == "timeout"


def test_frame_within_the_time_out_is_assembled():
    rx = rx_for_us()
    t = 5000
    for i in range(len(SNRM)):               # a byte every 25 ms: never more than the time-out
        rx.feed(SNRM[i:i + 1], t)
        t += 25
    assert [f.ctrl for f in drain(rx)] == [hdlc.SNRM] and rx.timeouts == 0
    rx.feed(b"", t + 1000)                   # silence after a whole frame is no time-out
    assert rx.timeouts == 0


def test_silence_alone_and_backlog():
    rx = rx_for_us()
    rx.feed(header(ME, 100), 0)
    rx.feed(b"", 30)                         # the UART task's on-silence call
    assert rx.timeouts == 1 and rx.pending() <= 1
    rx.feed(SNRM[:4], 100, True)             # a full read: more bytes were waiting
    rx.feed(SNRM[4:], 200)                   # so this gap is not an inter-character gap
    assert [f.ctrl for f in drain(rx)] == [hdlc.SNRM] and rx.timeouts == 1


def test_complete_frames_before_the_gap_are_kept():
    rx = rx_for_us()
    rx.feed(SNRM + header(ME, 100), 0)
    rx.feed(SNRM, 100)
    assert [f.ctrl for f in drain(rx)] == [hdlc.SNRM, hdlc.SNRM]


def test_frame_for_another_station_skipped_by_its_length():
    rx = rx_for_us()
    inner = hdlc.encode_frame(ME, C16, hdlc.DISC)     # a frame inside its information field
    other = hdlc.encode_frame(OTHER, C16, 0x10, b"\x00" * 20 + inner + b"\x00" * 150)
    rx.feed(other[:12], 0)                   # its header: the rest is skipped, not buffered
    assert drain(rx) == [] and rx.skipped == 1 and rx.pending() == 0
    rx.feed(other[12:] + SNRM, 1)
    assert [f.ctrl for f in drain(rx)] == [hdlc.SNRM] and rx.dropped == 0
    # a whole frame in one read is handed over as it is (the link ignores it): never its inside
    rx.feed(other + SNRM, 2)
    assert [(f.dest, f.ctrl) for f in drain(rx)] == [(OTHER, 0x10), (ME, hdlc.SNRM)]
    # longer than our buffer and cut short: skipped until the line is silent
    rx.feed(header(OTHER, 2047), 10)
    rx.feed(SNRM, 11)                        # within the time-out: part of that frame
    assert drain(rx) == []
    rx.feed(SNRM, 40)
    assert [f.ctrl for f in drain(rx)] == [hdlc.SNRM] and rx.skipped == 2 and rx.timeouts == 1


def test_too_long_for_us_dropped_at_once():
    rx = rx_for_us()
    rx.feed(header(ME, 2047) + SNRM, 0)      # the stall: nothing waits for 2 KB
    assert [f.ctrl for f in drain(rx)] == [hdlc.SNRM]
    assert rx.last_error == "length" and rx.timeouts == 0


def test_no_accept_keeps_the_client_behaviour():
    rx = hdlc.Receiver(4096)
    fr = hdlc.encode_frame(OTHER, C16, 0x10, bytes(300))
    rx.feed(fr[:100])
    rx.feed(fr[100:])                        # no now_ms: no time-out; no accept: every address
    assert [f.dest for f in drain(rx)] == [OTHER] and rx.skipped == 0


def test_ticks_wrap_around():
    import time
    if not hasattr(time, "ticks_add"):
        return                               # CPython: plain milliseconds
    t0 = time.ticks_add(0, -10)
    rx = rx_for_us()
    rx.feed(SNRM[:5], t0)
    rx.feed(SNRM[5:], time.ticks_add(t0, 20))   # across the wrap, 20 ms
    assert [f.ctrl for f in drain(rx)] == [hdlc.SNRM] and rx.timeouts == 0
