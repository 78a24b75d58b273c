"""Bad input. On CPython (hypothesis): random and mutated frames/APDUs into the capture decoder,
the GBT/ciphering parsers and the meter's link+association: only the defined errors escape
(DecodeError for non-hex text; nothing at all from the meter). On MicroPython (HIL): a corpus
of >= 1,000 mutated frames (most with a valid FCS, so they reach the association and service
layers) replayed into the firmware, which must keep answering with its heap bounded; the peak
heap after gc is printed (``mem`` on the control channel)."""
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from host_tools import decode as D
from protocol import apdu_client as apdu
from protocol import hdlc_client as hdlc
from protocol import axdr_client as axdr
from protocol import gbt, security_client as security

from fake_meter import (Meter, C1, C16, SRV, ASSOC_LN, EVENT_LOG_LN, CLOCK_LN,
                            TOKEN_CREDIT_LN, TOKEN_GATEWAY_LN)
from meter.link import HdlcLink


# ---------------------------------------------------------------- seeds: a real session's frames

def session_frames(dest=SRV):
    """The frames a client sends in a session with the meter (public and LLS)."""
    out = []
    for src, mech, pw in ((C16, None, None), (C1, apdu.MECH_LLS, b"12345678")):
        out.append(hdlc.encode_frame(dest, src, hdlc.SNRM, hdlc.encode_params(512, 512, 1, 1)))
        ns = 0
        reqs = [apdu.build_aarq(mechanism=mech, auth_value=pw, max_pdu=256),
                apdu.get_request(0xC1, 15, ASSOC_LN, 2),
                apdu.get_next_request(0xC1, 1),
                apdu.get_request(0xC1, 7, EVENT_LOG_LN, 2, 2,
                                 bytes.fromhex("020406000000010600000000120001120000")),
                apdu.get_with_list_request(0xC1, [(3, b"\x01\x00\x01\x08\x00\xff", 2, None, None)] * 3),
                apdu.set_request(0xC1, 8, CLOCK_LN, 2, b"\x09\x0c" + axdr.datetime_bytes(2026, 1, 1, 5, 30, 0, 0, -330)),
                apdu.action_request(0xC1, 112, TOKEN_CREDIT_LN, 1, b"\x05\x00\x00\x00\x01"),
                apdu.action_request(0xC1, 115, TOKEN_GATEWAY_LN, 1, b"\x09\x14" + b"1" * 20),
                apdu.build_rlrq()]
        for r in reqs:
            out.append(hdlc.encode_frame(dest, src, hdlc.ctrl_i(ns, ns), hdlc.LLC_REQUEST + r))
            out.append(hdlc.encode_frame(dest, src, hdlc.ctrl_rr((ns + 1) & 7)))
            ns = (ns + 1) & 7
        out.append(hdlc.encode_frame(dest, src, hdlc.DISC))
    return out


def mutate(rng, frame):
    """One mutated frame: usually a damaged information field re-framed with a valid HCS/FCS
    (so it reaches the upper layers), sometimes raw damage, truncation or a wrong length."""
    f = hdlc.decode_frame(frame)
    r = rng.random()
    if r < 0.75:
        info = bytearray(f.info)
        ctrl = f.ctrl
        for _ in range(rng.randint(1, 4)):
            op = rng.random()
            if info and op < 0.4:
                i = rng.randrange(len(info))
                info[i] = rng.randrange(256)
            elif info and op < 0.6:
                del info[rng.randrange(len(info)):]
            elif op < 0.8:
                i = rng.randrange(len(info) + 1)
                info[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                ctrl = rng.randrange(256)
        return hdlc.encode_frame(f.dest, f.src, ctrl, bytes(info[:2000]), rng.random() < 0.1)
    b = bytearray(frame)
    if r < 0.85:
        b[rng.randrange(1, len(b) - 1)] ^= 1 << rng.randrange(8)
    elif r < 0.93:
        b = b[:rng.randrange(1, len(b))]
    else:
        b[2] = rng.randrange(256)
    return bytes(b)


def corpus(n, seed=1):
    rng = random.Random(seed)
    seeds = session_frames() + session_frames(hdlc.encode_server_address(1, 17, 4))
    return [mutate(rng, rng.choice(seeds)) for _ in range(n)]


# ---------------------------------------------------------------- CPython: decoders and the server

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_decoder_never_raises_on_random_apdus(b):
    d = D.Decoder(key=bytes(16), auth_key=bytes(16), system_title=bytes(8))
    out = d.apdu(b)
    assert "hex" in out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decoder_on_random_hdlc_streams(b):
    recs = D.decode_text((b"\x7e" + b).hex())
    assert all(("frame" in r) or ("apdu" in r) for r in recs)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10 ** 9), st.sampled_from(session_frames()))
def test_decoder_on_mutated_session_frames(seed, frame):
    m = mutate(random.Random(seed), frame)
    recs = D.decode_text(m.hex())
    for r in recs:
        if "frame" in r and not r["frame"]["ok"]:
            assert "error" in r["frame"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_gbt_and_security_parsers_raise_only_their_errors(b):
    for data in (b, b"\xe0" + b, b"\xdb" + b, b"\xc8" + b):
        try:
            gbt.parse(data)
        except gbt.GbtError:
            pass
        try:
            security.parse(data)
        except security.SecurityError:
            pass


def test_decoder_text_errors_are_defined():
    for bad in ("zz", "7E A", "", "# only a comment"):
        with pytest.raises(D.DecodeError):
            D.decode_text(bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10 ** 9), min_size=1, max_size=30))
def test_server_survives_mutated_sessions_on_cpython(seeds):
    m = Meter(n_events=50)
    link = HdlcLink(m, 1, None, 512)
    frames = session_frames()
    for s in seeds:
        rng = random.Random(s)
        raw = mutate(rng, rng.choice(frames))
        try:
            f = hdlc.decode_frame(raw)
        except hdlc.HdlcError:
            continue
        for out in link.on_frame(f):
            hdlc.decode_frame(out)          # whatever it answers is a well-formed frame
    # and it still works
    for raw in frames[:3]:
        link.on_frame(hdlc.decode_frame(raw))
    out = link.on_frame(hdlc.decode_frame(hdlc.encode_frame(SRV, C16, hdlc.SNRM)))
    assert hdlc.decode_frame(out[0]).ctrl == hdlc.UA


# ---------------------------------------------------------------- MicroPython: the firmware

def test_firmware_survives_1000_mutated_frames_with_bounded_heap(rig_factory, capsys):
    import os
    import serial
    from host_tools.client import DlmsClient
    kw = {}
    if os.environ.get("METER_FIRMWARE_DIR"):
        kw["firmware_dir"] = os.environ["METER_FIRMWARE_DIR"]
        kw["image"] = "mpy"
    rig = rig_factory(**kw)
    base, free0 = rig.mem()
    peak = base
    frames = corpus(1200)
    with serial.Serial(rig.port, 9600, timeout=0) as s:
        for i in range(0, len(frames), 40):
            s.write(b"".join(frames[i:i + 40]))
            s.flush()
            rig.drain(quiet_ms=30)  # the meter has taken the batch in and answered it
            s.read(65536)
            if i % 200 == 0:
                peak = max(peak, rig.mem()[0])
        rig.drain(quiet_ms=300)
        s.read(65536)
    assert rig.running
    alloc, free = rig.mem()
    peak = max(peak, alloc)
    with DlmsClient(rig.port, timeout=5) as c:
        assert c.get(1, "0.0.42.0.0.255", 2)[1] == b"PPM0000001"
    with capsys.disabled():
        print("\n[fuzz] %d mutated frames: heap after gc %d B at start, %d B at end, peak %d B "
              "(of %d B)" % (len(frames), base, alloc, peak, base + free0))
    assert alloc - base < 16 * 1024           # nothing accumulates
    assert peak - base < 48 * 1024
