"""``meterctl decode`` on real meters' deviations (issue 15): public captures in
tests/data/captures (sources cited in each file), plus constructed frames for the block/GBT gap,
FRMR, RLRE and Modbus cases."""
import json
import struct
from pathlib import Path

from click.testing import CliRunner

from host_tools import decode as D
from host_tools import decode_modbus as MB
from host_tools.meterctl.cli import meterctl
from protocol import hdlc, modbus_client as modbus_rtu
from protocol.crc import crc16_modbus
from protocol.hdlc_client import encode_client_address, encode_server_address

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "captures"
KEY = "00112233445566778899AABBCCDDEEFF"


def _run(*args):
    return CliRunner().invoke(meterctl, list(args), catch_exceptions=False)


def _apdus(name, *args):
    r = _run("decode", str(CAPTURES / name), "--json", *args)
    return r.exit_code, [x["apdu"] for x in json.loads(r.output) if "apdu" in x]


def test_kaifa_09_0c_date_time_decoded_with_a_non_standard_note():
    code, apdus = _apdus("kaifa_ma304_han_09_datetime.txt")
    assert code == 0
    assert [a["date_time"] for a in apdus] == ["2020-02-03T15:27:12", "2020-02-03T15:27:10"]
    assert all("non-standard" in a["date_time_note"] for a in apdus)
    body = apdus[1]["body"]["value"]
    assert body[2]["text"] == "MA304H3E" and body[3]["value"] == 55
    text = _run("decode", str(CAPTURES / "kaifa_ma304_han_09_datetime.txt")).output
    assert "non-standard" in text and "MA304H3E" in text


def test_e450_frame_with_three_notifications_shows_all_three():
    code, apdus = _apdus("lg_e450_three_notifications_sdc74.txt")
    assert code == 0
    assert [a["long_invoke_id_and_priority"] for a in apdus] == ["0008FD7B", "0008FD7C", "0008FD7D"]
    assert [a["body"]["value"][0]["value"] for a in apdus] == [21040168, 21040186, 21040203]
    assert "another APDU follows" in apdus[0]["note"] and "note" not in apdus[2]


def test_trailing_bytes_after_an_apdu_are_reported_not_dropped():
    recs = D.decode_text("C5 01 C1 00 DE AD")
    assert recs[0]["apdu"]["trailing_bytes"] == "dead"
    recs = D.decode_text("0F 00 00 00 01 00 11 05 77")
    assert recs[0]["apdu"]["trailing_bytes"] == "77"


def test_ciphered_aare_fields_shown_and_deciphered_with_the_key():
    code, apdus = _apdus("lg_aare_ciphered_gosem.txt")
    assert code == 0
    acc, rej = apdus
    assert (acc["result"], acc["diagnostic"], acc["responding_ap_title"]) == \
        ("accepted", "null", "4c475a2022604828")
    assert acc["user_information"]["invocation_counter"] == 0x31
    assert "not decrypted" in acc["user_information"]["note"]
    assert (rej["result"], rej["diagnostic"]) == ("rejected-permanent", "no-reason-given")
    code, apdus = _apdus("lg_aare_ciphered_gosem.txt", "--key", KEY, "--auth-key", KEY)
    assert code == 0
    plain = apdus[0]["user_information"]["plaintext"]
    assert (plain["type"], plain["max_pdu"], plain["vaa_name"]) == ("InitiateResponse", 250, 7)
    assert apdus[1]["user_information"]["plaintext"]["code"] == 6


def test_with_list_invalid_choice_is_malformed_exit_1():
    r = _run("decode", str(CAPTURES / "get_with_list_invalid_choice_dc51.txt"))
    assert r.exit_code == 1
    assert "invalid Get-Data-Result CHOICE 0x02" in r.output
    assert "data_access_result" not in r.output


def _block(n, last, raw):
    return "C4 02 C1 %02X %08X 00 %02X %s" % (last, n, len(raw), raw.hex())


def test_datablock_gap_reported_by_number_and_value_not_decoded():
    whole = bytes.fromhex("0106") + bytes(6) + bytes.fromhex("09020102")
    parts = [whole[:4], whole[4:8], whole[8:]]
    ok = D.decode_text("\n".join(_block(i + 1, i == 2, p) for i, p in enumerate(parts)))
    assert ok[-1]["apdu"]["reassembled_len"] == len(whole) and "data" in ok[-1]["apdu"]
    gap = D.decode_text("\n".join([_block(1, 0, parts[0]), _block(3, 1, parts[2])]))
    assert "2 expected, 3 received (missing 2)" in gap[1]["apdu"]["gap"]
    assert "missing: 2" in gap[1]["apdu"]["error"] and "data" not in gap[1]["apdu"]
    rep = D.decode_text("\n".join([_block(1, 0, parts[0]), _block(2, 0, parts[1]), _block(2, 0, parts[1]),
                                   _block(3, 1, parts[2])]))
    assert "retransmission" in rep[2]["apdu"]["note"] and "data" in rep[3]["apdu"]


def test_gbt_gap_reported_by_number():
    def blk(n, last, data):
        return "E0 %02X %04X 0000 %02X %s" % (0x80 if last else 0, n, len(data), data.hex())
    inner = bytes.fromhex("C401C10011")
    recs = D.decode_text("\n".join([blk(1, 0, inner[:2]), blk(3, 1, inner[2:])]))
    assert "missing 2" in recs[1]["apdu"]["gap"] and "error" in recs[1]["apdu"]


def _frame(ctrl, info=b"", server=1, client=16):
    return bytes(hdlc.encode_frame(encode_client_address(client), encode_server_address(server), ctrl, info))


def test_frmr_decoded_field_by_field():
    recs = D.decode_text(_frame(0x97, bytes([0x32, (3 << 5) | (1 << 4) | (2 << 1), 0x05])).hex())
    f = recs[0]["frame"]["frmr"]
    assert f == {"rejected_control": "32", "v_s": 2, "c_r": 1, "v_r": 3, "w_invalid_control": True,
                 "x_info_not_permitted": False, "y_info_too_long": True, "z_invalid_nr": False}


def test_rlre_reason_and_user_information():
    a = D.decode_text("63 03 80 01 00")[0]["apdu"]
    assert (a["reason"], a["reason_name"]) == (0, "normal")
    a = D.decode_text("63 15 80 01 01 BE 10 04 0E 08 00 06 5F 1F 04 00 00 10 1D 01 00 00 07")[0]["apdu"]
    assert a["reason_name"] == "urgent" and a["user_information"]["type"] == "InitiateResponse"


def test_all_repository_captures_still_decode():
    for p in sorted(CAPTURES.glob("*.txt")):
        recs = D.decode_text(p.read_text())
        assert recs, p.name
        D.render(recs)


def _rtu(body):
    c = crc16_modbus(body)
    return body + bytes((c & 0xFF, c >> 8))


def test_modbus_pzem_and_sdm_frames_by_register_name():
    regs = [2301, 1500, 0, 3450, 0, 12345, 0, 500, 95, 0]
    reply = _rtu(bytes((1, 4, 20)) + b"".join(struct.pack(">H", r) for r in regs))
    text = "%s\n%s\n" % (modbus_rtu.read_request(1, 4, 0, 10).hex(), reply.hex())
    recs = MB.decode_text(text, "pzem004t")
    assert "IMPORT_WH" in recs[0]["modbus"]["names"]
    assert recs[1]["modbus"]["values"]["VOLTAGE_DV"] == 2301
    assert recs[1]["modbus"]["values"]["IMPORT_WH"] == 12345
    floats = [0.0] * 12
    floats[(0x48 - 0x34) // 2] = 1234.567
    reply = _rtu(bytes((1, 4, 48)) + b"".join(struct.pack(">f", v) for v in floats))
    r = _run("decode", "--modbus", "sdm630", "--hex",
             modbus_rtu.read_request(1, 4, 0x34, 24).hex() + "\n" + reply.hex())
    assert r.exit_code == 0 and "IMPORT_WH: 1234567" in r.output
    r = _run("decode", "--modbus", "sdm120", "--hex", "01 84 02 C2 C1")
    assert r.exit_code == 0 and "EXCEPTION 2 (illegal data address)" in r.output
    r = _run("decode", "--modbus", "sdm120", "--hex", "01 84 02 32 C1")
    assert r.exit_code == 1 and "bad CRC" in r.output
