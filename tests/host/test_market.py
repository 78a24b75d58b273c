"""The market setting (issue 15): class versions the object_list declares where the Blue Book and
national companion standards disagree (IC 70), and the firmware identifier where IS 15959 and
SPODES clients look for it."""
import json

import pytest

from host_tools import objects
from host_tools.firmware_src import firmware_module

V = firmware_module("meter.cosem_values")
profile = firmware_module("meter.profile")


class _Board:
    def __init__(self, tmp_path, cfg):
        self.dir = tmp_path
        if cfg is not None:
            (tmp_path / "config.json").write_text(json.dumps(cfg))

    def path(self, name):
        return str(self.dir / name)


class _Meter:
    FIRMWARE_ID = b"prepaid-meter 1.2.3"
    account = None

    def __init__(self, board):
        self.board = board


@pytest.mark.parametrize("cfg, want", [(None, 0), ({}, 0), ({"market": "is15959"}, 0),
                                       ({"market": "spodes"}, 0), ({"market": "bluebook"}, 1)])
def test_ic70_version_follows_the_market(tmp_path, cfg, want):
    m = _Meter(_Board(tmp_path, cfg))
    assert V.version(m, 70, 1) == want
    assert V.version(m, 7, 1) == 1 and V.version(m, 64, 0) == 0
    market = (cfg or {}).get("market", objects.DEFAULT_MARKET)
    assert objects.declared_version(objects.DISCONNECT_CONTROL, market) == want


def test_markets_are_one_list():
    assert profile.MARKETS == objects.MARKETS and profile.MARKETS[0] == objects.DEFAULT_MARKET
    assert set(objects.MARKET_VERSIONS[70]) == set(objects.MARKETS)


def test_profile_refuses_an_unknown_market():
    profile.check_profile({"market": "spodes"})
    with pytest.raises(Exception) as e:
        profile.check_profile({"market": "mars"})
    assert e.value.field == "market"


def test_firmware_identifier_where_each_market_looks():
    from protocol import axdr
    m = _Meter(None)
    got = {}
    for o in (objects.FIRMWARE_ID, objects.MANUFACTURER, objects.FIRMWARE_VERSION):
        w = axdr.Writer()
        assert V.read(m, None, o.ic, o.arg, 2, w) == 0
        got[o.obis] = axdr.decode(bytes(w.buf), 0)[0][1]
    assert got == {"1.0.0.2.0.255": b"prepaid-meter 1.2.3", "0.0.96.1.1.255": b"prepaid-meter",
                   "0.0.0.2.1.255": b"1.2.3"}
