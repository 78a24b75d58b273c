"""``meterctl decode`` / host_tools.decode on real captured traffic (tests/data/captures/*.txt, each
file names its public source on its first lines): segmented HDLC frames with 2-byte addresses
(Iskra AM550), general-block-transfer + data-notification with a raw 0x7E inside a value
(L+G E450), a > 255-byte frame, an FCS of 00 00, a 4-byte address, corrupted frames and
malformed APDUs; general-glo-ciphering decrypted with --key/--auth-key (cross-checked with
pycryptodome's independent AES-GCM)."""
import json
import pathlib

import pytest
from click.testing import CliRunner

from host_tools import decode as D
from host_tools.meterctl.cli import meterctl
from protocol import hdlc_client as hdlc

CAP = pathlib.Path(__file__).resolve().parents[1] / "data" / "captures"


def load(name):
    text = (CAP / name).read_text()
    assert text.startswith("# source:")          # every capture cites where it comes from
    return text


def frames(recs):
    return [r["frame"] for r in recs if "frame" in r]


def apdus(recs):
    return [r["apdu"] for r in recs if "apdu" in r]


def test_iskra_segmented_push_with_2_byte_address():
    recs = D.decode_text(load("iskra_am550_tasmota_8790.txt"))
    fr = frames(recs)
    assert [f["ok"] for f in fr] == [True] * 3
    assert [f["segmented"] for f in fr] == [True, True, False]
    assert all(f["src"]["bytes"] == 2 and (f["src"]["logical"], f["src"]["physical"]) == (1, 17) for f in fr)
    (a,) = apdus(recs)                            # three frames, one APDU
    assert a["type"] == "DataNotification" and a["date_time"] == "2021-11-02T21:51:00+01:00"
    body = a["body"]["value"]
    assert body[0]["value"][0]["obis"] == "0.0.96.1.0.255"
    assert body[0]["value"][1]["text"] == "78344537"
    # active power import 1.1.1.7.0.255 with its scaler_unit (10^0 W)
    p = [x for x in body if x["value"][0].get("obis") == "1.1.1.7.0.255"][0]
    assert p["value"][2]["scaler_unit"] == "10^0 W"


def test_lg_general_block_transfer_and_raw_7e_in_a_value():
    recs = D.decode_text(load("lg_e450_cyprus_esphome_16942.txt"))
    assert all(f["ok"] for f in frames(recs)) and len(frames(recs)) == 3
    assert frames(recs)[0]["dest"]["bytes"] == 2
    blocks = apdus(recs)
    assert [b["block_number"] for b in blocks] == [1, 2, 3]
    assert [b["last_block"] for b in blocks] == [False, False, True]
    inner = blocks[-1]["reassembled"]
    assert inner["type"] == "DataNotification" and inner["date_time"] == "2026-07-18T16:58:00"
    values = inner["body"]["value"]
    caps = values[0]["value"]                       # the capture-object list the meter pushes
    assert caps[1]["value"][1]["obis"] == "0.0.42.0.0.255"
    # 06 00 36 C6 7E: the value that contains the flag byte 0x7E
    assert any(v["type"] == "double-long-unsigned" and v["value"] == 0x0036C67E for v in values)
    assert hdlc.FLAG in bytes.fromhex(frames(recs)[2]["hex"])[1:-1]


def test_frame_longer_than_255_and_fcs_0000():
    recs = D.decode_text(load("constructed_long_and_fcs0000.txt"))
    f1, f2 = frames(recs)
    assert f1["ok"] and f1["length"] == 348 and bytes.fromhex(f1["hex"])[1] == 0xA1
    assert f2["ok"] and bytes.fromhex(f2["hex"])[-3:-1] == b"\x00\x00"
    a1, a2 = apdus(recs)
    assert a1["type"] == "DataNotification"
    assert a2["type"] == "GET-Response-Normal" and a2["data"]["value"] == "000059ae"


def test_reference_frames_4_byte_address_and_association():
    recs = D.decode_text(load("dlms_md_reference_frames.txt"))
    fr = frames(recs)
    assert all(f["ok"] for f in fr)
    d = fr[0]["dest"]
    assert (d["bytes"], d["logical"], d["physical"]) == (4, 1, 0x1234)
    assert fr[2]["parameters"]["max_info_tx"] == 128
    aarq, aare = apdus(recs)
    assert aarq["type"] == "AARQ" and aarq["mechanism"] == "LLS" and aarq["authentication_value"] == b"12345678".hex()
    assert aarq["max_pdu"] == 65535 and "block-transfer-with-get" in aarq["conformance"]
    assert aare["result"] == "accepted" and aare["max_pdu"] == 256 and aare["vaa_name"] == 7


def test_bare_apdus_and_malformed_ones():
    a = apdus(D.decode_text(load("dlms_md_apdus.txt")))
    assert a[0]["item"] == {"class_id": 8, "obis": "0.0.1.0.0.255", "attribute": 2}
    assert a[1]["data"]["iso"] == "2024-05-17T18:34:56"
    assert a[2]["result_name"] == "object-undefined"
    assert [i["obis"] for i in a[3]["items"]] == ["0.0.1.0.0.255", "1.0.1.8.0.255"]
    assert a[4]["value"] == {"type": "double-long-unsigned", "value": 42}
    assert a[8]["parameters"] == {"type": "double-long", "value": 5000}
    assert a[11] == {"type": "ExceptionResponse", "state_error": "service-not-allowed",
                     "service_error": "service-not-supported", "hex": "d80102"}
    assert a[13]["result"] == "rejected-permanent" and a[13]["diagnostic"] == "authentication-failure"
    assert "error" in a[14] and "error" in a[15]          # malformed: reported, not decoded
    assert all("error" not in x for x in a[:14])


def test_corrupted_frame_is_reported_and_its_apdu_never_decoded():
    lines = [ln for ln in load("iskra_am550_tasmota_8790.txt").splitlines() if not ln.startswith("#")]
    bad = bytearray(bytes.fromhex(lines[1]))
    bad[40] ^= 0x01                                        # one bit flipped inside segment 2
    recs = D.decode_text("\n".join([lines[0], bad.hex(), lines[2]]))
    fr = frames(recs)
    assert [f["ok"] for f in fr] == [True, False, True] and fr[1]["reason"] == "fcs"
    (a,) = apdus(recs)
    assert "error" in a and "body" not in a               # the sequence lost a segment
    # bad HCS: the header is damaged
    hdr = bytearray(bytes.fromhex(lines[2]))
    hdr[3] ^= 0x02
    f = frames(D.decode_text(hdr.hex()))[0]
    assert not f["ok"] and f["reason"] == "hcs"
    out = CliRunner().invoke(meterctl, ["decode", "--hex", hdr.hex()])
    assert out.exit_code == 1 and "INVALID" in out.output and "HCS" in out.output


def test_general_glo_ciphering_decrypted_with_keys():
    from Crypto.Cipher import AES
    key = bytes(range(16))
    ak = bytes(range(0xD0, 0xE0))
    title = b"ISK\x00\x01\x02\x03\x04"
    inner = bytes.fromhex("C401C100090C07E8051105122238008000 00".replace(" ", ""))
    ggc = D.encrypt(key, ak, title, 0x1234, inner)
    # independent check of the construction with pycryptodome's GCM (12-byte tag)
    c = AES.new(key, AES.MODE_GCM, nonce=title + (0x1234).to_bytes(4, "big"), mac_len=12)
    c.update(b"\x30" + ak)
    ct, tag = c.encrypt_and_digest(inner)
    assert ggc.endswith(ct + tag)
    text = hdlc.encode_frame(b"\x21", b"\x03", 0x30, hdlc.LLC_RESPONSE + ggc).hex()
    (a,) = apdus(D.decode_text(text))
    assert a["type"] == "General-Glo-Ciphering" and "plaintext" not in a and a["invocation_counter"] == 0x1234
    (a,) = apdus(D.decode_text(text, key=key, auth_key=ak))
    assert a["plaintext"]["type"] == "GET-Response-Normal"
    assert a["plaintext"]["data"]["iso"] == "2024-05-17T18:34:56"
    (a,) = apdus(D.decode_text(text, key=key, auth_key=bytes(16)))
    assert "decrypt_error" in a and "plaintext" not in a   # wrong AK: tag mismatch
    out = CliRunner().invoke(meterctl, ["decode", "--json", "--hex", text, "--key", key.hex(),
                                        "--auth-key", ak.hex()])
    assert out.exit_code == 0
    assert json.loads(out.output)[1]["apdu"]["plaintext"]["type"] == "GET-Response-Normal"


def test_cli_reads_capture_files_and_rejects_bad_input():
    r = CliRunner().invoke(meterctl, ["decode", str(CAP / "lg_e450_cyprus_esphome_16942.txt")])
    assert r.exit_code == 0 and "DataNotification" in r.output and "0.0.42.0.0.255" in r.output
    r = CliRunner().invoke(meterctl, ["decode", "--hex", "7E A0 zz"])
    assert r.exit_code == 2
    with pytest.raises(D.DecodeError):
        D.Decoder(key=b"short")
