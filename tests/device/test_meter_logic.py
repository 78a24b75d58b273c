"""Pure meter logic on both runtimes: debit rounding, IC 70 transitions, calendar.
(The journal has its own tests in test_store.py.)"""
from meter.account import Account
from meter import relay
from meter.relay import DisconnectControl
from meter import timeutil

PAYMENT_CREDIT = 1      # IC 111 payment_mode: the head-end decides


def test_debit_exact_floor_and_carry():
    a = Account(rate=650, credit=100000)
    for _ in range(1000):
        a.consume(1)          # 1000 x 1 Wh
    b = Account(rate=650, credit=100000)
    b.consume(1000)           # 1 x 1000 Wh
    assert a.credit == b.credit == 100000 - 650
    assert a.import_wh == b.import_wh == 1000
    c = Account(rate=777, credit=0)
    c.consume(3)              # 3 * 777 / 1000 = 2.331 -> 2 paise, 331 milli-paise carried
    assert c.credit == -2 and c.rem == 331
    c.consume(1)              # 331 + 777 = 1108 -> 1 paise more
    assert c.credit == -3 and c.rem == 108


def test_debit_splits_agree_for_awkward_sizes():
    rate = 613
    total = 0
    a = Account(rate, 0)
    sizes = [7, 1, 13, 250, 999, 1, 3, 5000, 17]
    for s in sizes:
        a.consume(s)
        total += s
    assert -a.credit == total * rate // 1000
    assert a.rem == total * rate % 1000


def test_large_tick_is_chunked_and_exact():
    a = Account(9999, 0)
    a.consume(1234567)
    assert -a.credit == 1234567 * 9999 // 1000


def test_top_up_rules():
    a = Account(650, -500)
    assert a.top_up(1000, 42) == 500
    assert a.last_recharge == 1000 and a.last_recharge_time == 42
    for bad in (0, -1):
        try:
            a.top_up(bad)
            assert False, "accepted %d" % bad
        except ValueError:
            pass
    try:
        a.top_up(0x3FFFFFFF)
        assert False
    except ValueError:
        pass
    assert a.credit == 500


def test_account_state_roundtrip():
    a = Account(650, 1234, PAYMENT_CREDIT)
    a.consume(77)
    b = Account(1, 0)
    b.restore(a.state())
    assert b.state() == a.state()


def test_ic70_mode5_local_and_remote():
    dc = DisconnectControl(5)
    assert dc.output_state
    assert dc.local_disconnect()
    assert dc.control_state == relay.READY and not dc.output_state
    assert dc.local_reconnect()
    assert dc.control_state == relay.CONNECTED
    assert dc.remote_disconnect() and dc.control_state == relay.DISCONNECTED
    assert not dc.local_reconnect()          # h only from ready
    assert dc.remote_reconnect() and dc.control_state == relay.READY   # d in mode 5
    assert dc.manual_reconnect() and dc.control_state == relay.CONNECTED


def test_ic70_modes_table():
    # remote_reconnect goes to connected in modes 2 and 4, to ready in 1, 3, 5, 6
    for mode, expect in ((1, relay.READY), (2, relay.CONNECTED), (3, relay.READY),
                         (4, relay.CONNECTED), (5, relay.READY), (6, relay.READY)):
        dc = DisconnectControl(mode)
        assert dc.remote_disconnect()
        dc.remote_reconnect()
        assert dc.control_state == expect, (mode, dc.control_state)
    # manual disconnect only in 1, 2, 5; local reconnect only in 5, 6
    for mode in range(1, 7):
        dc = DisconnectControl(mode)
        assert dc.manual_disconnect() == (mode in (1, 2, 5))
        dc = DisconnectControl(mode)
        dc.local_disconnect()
        assert dc.local_reconnect() == (mode in (5, 6))
    dc = DisconnectControl(0)
    assert not dc.remote_disconnect() and dc.output_state


def test_calendar():
    assert timeutil.join(1970, 1, 1) == 0
    assert timeutil.join(2026, 1, 1) == 1767225600
    assert timeutil.split(1767225600) == (2026, 1, 1, 4, 0, 0, 0)   # a Thursday
    assert timeutil.split(timeutil.join(2024, 2, 29, 23, 59, 58))[:3] == (2024, 2, 29)
    for e in (0, 951782400, 1709251199, 4102444800):
        y, m, d, wd, hh, mi, ss = timeutil.split(e)
        assert timeutil.join(y, m, d, hh, mi, ss) == e
    assert timeutil.iso(1715970896) == "2024-05-17T18:34:56"
