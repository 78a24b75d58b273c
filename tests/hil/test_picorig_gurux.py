"""gurux-dlms reading every attribute it may on PicoRig: the suite's every-attribute run
(``gurux_peer.every_association_reads_every_attribute``, also run by ``test_interop_gurux``: four
associations, the object_list, then every attribute of every object, readable ones must read, the
others must be refused with read-write-denied) against the firmware on the real MicroPython rp2
port in rp2040js. Every read gurux makes is recorded; one line per association says what was read
and refused.
"""
import collections

import pytest

import gurux_peer as gx
from hil.picorig import PicoRig, unavailable
from interop_rig import make_rig

pytestmark = [pytest.mark.hil, pytest.mark.skipif(unavailable() is not None,
                                                  reason=unavailable() or "")]


@pytest.fixture
def pico_factory(tmp_path):
    """``rig_factory`` for PicoRigs: callable(config=None, heap=None, sts=False, **kw)."""
    made = []

    def make(config=None, heap=None, sts=False, name=None, **kw):
        assert heap is None, "PicoRig runs the rp2 port's own heap"
        made.append(PicoRig(tmp_path / (name or "pico%d" % len(made)), config=config, sts=sts, **kw))
        return made[-1]

    yield make
    for r in made:
        r.stop()


@pytest.mark.slow
@pytest.mark.pico_campaign
def test_gurux_reads_every_attribute_it_may_on_pico(pico_factory, monkeypatch):
    reads = []                  # (client, object type, logical name, attribute, 0 or DAR code)
    read = gx.Peer.read

    def recorded(peer, obj, attr):
        try:
            out = read(peer, obj, attr)
        except gx.DarError as e:
            reads.append((peer.client, int(obj.objectType), obj.logicalName, attr, e.errorCode))
            raise
        reads.append((peer.client, int(obj.objectType), obj.logicalName, attr, 0))
        return out

    monkeypatch.setattr(gx.Peer, "read", recorded)
    gx.every_association_reads_every_attribute(make_rig(pico_factory))
    lines = []
    for client, _ in gx.ASSOCIATIONS:
        mine = [r for r in reads if r[0] == client]
        objs = collections.Counter(ic for ic, _ in {r[1:3] for r in mine})
        codes = collections.Counter(r[4] for r in mine)
        assert set(codes) <= {0, 3}, codes          # read, or refused as read-write-denied
        lines.append("client %d: %d objects (%s), %d attributes read, %d refused (read-write-denied)"
                     % (client, sum(objs.values()), " ".join("IC%dx%d" % kv for kv in sorted(objs.items())),
                        codes[0], codes[3]))
    print("\ngurux on PicoRig:\n  " + "\n  ".join(lines))
