"""The control-channel parser (hil.control.ControlState), line by line: no process, no pty."""
import pytest

from hil.control import HISTORY, TRACE, ControlState
from hil.rig import Telemetry

EPOCH = 1767225600


def test_ready_and_meter_lines_are_counted_and_kept():
    s = ControlState(EPOCH)
    assert s.feed_line("ready") == "ready" and s.readies == 1
    assert s.telemetry is None and s.meters == 0
    assert s.feed_line("meter 1767225660 1234 -150 0") == "meter"
    assert s.telemetry == Telemetry(1767225660, 1234, -150, False)
    assert s.telemetry.credit_paise == -150
    s.feed_line("meter 1767225720 1240 -190 1")
    assert s.meters == 2 and s.telemetry.relay is True
    assert list(s.telemetry_history) == [Telemetry(1767225660, 1234, -150, False),
                                         Telemetry(1767225720, 1240, -190, True)]
    for i in range(HISTORY + 5):
        s.feed_line("meter %d 0 0 1" % i)
    assert len(s.telemetry_history) == HISTORY and s.telemetry_history[-1].epoch == HISTORY + 4


def test_relay_lines_are_stamped_with_the_rigs_clock():
    s = ControlState(EPOCH)
    assert s.relay is None
    s.feed_line("relay 1")
    s.epoch = EPOCH + 60          # the owner moved the RTC ("time" sent)
    assert s.feed_line("relay 0") == "relay"
    s.feed_line("relay 0")        # a repeat is a line too
    assert s.relay is False
    assert s.relay_history == [(EPOCH, True), (EPOCH + 60, False), (EPOCH + 60, False)]
    s.relay_unknown()             # supply lost
    assert s.relay is None and len(s.relay_history) == 3


def test_event_pong_and_mem_lines():
    s = ControlState(EPOCH)
    assert s.feed_line("event 12 credit exhausted, relay opened") == "event"
    assert s.feed_line("event 7") == "event"
    assert s.events == [("12", "credit exhausted, relay opened"), ("7", "")]
    assert s.feed_line("pong 3") == "pong"
    assert not s.take_pong(4)
    assert s.take_pong(3) and not s.take_pong(3)   # claimed once
    assert s.feed_line("mem 150208 117696") == "mem"
    assert s.mems == [(150208, 117696)]


@pytest.mark.parametrize("line", ["meter x y z", "meter 1 2 3", "meter 1 2 3 2", "relay 2",
                                  "relay", "pong", "pong x", "mem 1", "event", "hello",
                                  "READY"])
def test_a_line_that_does_not_parse_is_kept_aside_and_changes_nothing(line):
    s = ControlState(EPOCH)
    s.feed_line("relay 1")
    s.feed_line("meter 1767225660 1 2 1")
    before = (s.relay, s.telemetry, s.meters, list(s.events), set(s.pongs), list(s.mems))
    assert s.feed_line(line) is None
    assert s.bad_lines == [line]
    assert (s.relay, s.telemetry, s.meters, list(s.events), set(s.pongs), list(s.mems)) == before


def test_empty_line_is_ignored_but_traced():
    s = ControlState(EPOCH)
    assert s.feed_line("") == "" and s.feed_line("   ") == ""
    assert s.bad_lines == [] and s.trace_lines() == ["< ", "<    "]


def test_trace_folds_repeats_and_keeps_the_last_lines():
    s = ControlState(EPOCH)
    s.note(">", "ping 1")
    s.feed_line("pong 1")
    for _ in range(3):
        s.feed_line("meter 1 2 3 1")
    s.note(">", "time 5")
    assert s.trace_lines() == ["> ping 1", "< pong 1", "< meter 1 2 3 1 (x3)", "> time 5"]
    assert s.trace_lines(2) == ["< meter 1 2 3 1 (x3)", "> time 5"]
    for i in range(TRACE + 10):
        s.note(">", "ping %d" % i)
    lines = s.trace_lines(1000)
    assert len(lines) == TRACE and lines[-1] == "> ping %d" % (TRACE + 9)
