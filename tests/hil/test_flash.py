"""meterctl flash / provision: board checks, keystore, copy planning, and the unix board end to end.

The end-to-end tests use real parts only: the ``micropython`` unix port behind a raw pty pair
(hil.ptylink, no socat), mpremote's transport (raw REPL without soft reset, as ``resume``),
mpy-cross, and our DLMS client against the firmware booted from the flashed directory.
"""
import json
import pathlib

import pytest
from click.testing import CliRunner

from host_tools import deploy
from host_tools import flash as F
from host_tools import keystore as K
from host_tools import provision
from host_tools import repl as R
from host_tools import vend
from host_tools.client import DlmsClient
from host_tools.meterctl import flash as cmd_flash
from host_tools.meterctl import unixboard
from hil import env

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERIAL = "PPM0000042"
# Heap of the emulated board booted after flashing. The provisioned meter loads the EA07 tables
# (STS); at the time of writing that needs more than the RP2040's 190k on the unix port
# as .mpy files (bench/bench_heap.py: ~248 KiB today). Flashing itself
# does not depend on it. These tests run the 64-bit wheel whatever --micropython / --vm32 chose
# (mpremote's raw-REPL reconnect fails on the 32-bit VM, see its README), so the figure is the
# wheel's for .mpy files, not a board's.
HEAP = "320k"


@pytest.fixture(autouse=True)
def _wheel(monkeypatch):
    """The flash tests' boards run the 64-bit ``micropython`` wheel (see HEAP)."""
    monkeypatch.delenv(env.MICROPYTHON_ENV, raising=False)
    with env.using_micropython(env.wheel_micropython()):
        yield


# --------------------------------------------------------------------------- board checks

def _info(version=(1, 29, 0, "preview"), mpy=2822, platform="linux", name="micropython"):
    return {"name": name, "version": version, "mpy": mpy, "platform": platform, "machine": "",
            "romfs": False, "romfs_size": 0}


def test_sys_mpy_decodes_version_sub_version_and_arch():
    # the unix port here reports _mpy=2822: v6.3, arch 2 (x64) — see persistentcode.h
    assert R.decode_sys_mpy(2822) == (6, 3, 2)
    # ESP32 (xtensawin = arch 10) on MicroPython 1.22: mpy v6.2
    assert R.decode_sys_mpy(6 | (2 << 8) | (10 << 10)) == (6, 2, 10)


def test_our_mpy_cross_emits_v6_3():
    assert R.mpy_cross_mpy_version() == (6, 3)


def test_supported_board_passes():
    assert R.check_board(_info(), "unix", (6, 3)) == []
    assert R.check_board(_info(platform="esp32", mpy=6 | (3 << 8) | (10 << 10)), "esp32") == []


def test_old_micropython_is_refused():
    with pytest.raises(R.FlashError, match=r"1\.21\.0 .*too old: 1\.22 or newer"):
        R.check_board(_info(version=(1, 21, 0, "")), "unix", (6, 3))


def test_mpy_major_mismatch_is_refused():
    with pytest.raises(R.FlashError, match=r"loads \.mpy v5\.0 but our mpy-cross emits v6\.3"):
        R.check_board(_info(mpy=5), "unix", (6, 3))


def test_mpy_sub_version_difference_is_a_warning_only():
    w = R.check_board(_info(platform="rp2", mpy=6 | (2 << 8)), "rp2040", (6, 3))
    assert len(w) == 1 and "v6.2" in w[0]


def test_wrong_platform_and_non_micropython_are_refused():
    with pytest.raises(R.FlashError, match="expects sys.platform 'rp2' but the device reports 'esp32'"):
        R.check_board(_info(platform="esp32"), "rp2040", (6, 3))
    with pytest.raises(R.FlashError, match="not MicroPython"):
        R.check_board(_info(name="circuitpython"), "unix", (6, 3))
    with pytest.raises(R.FlashError, match="unknown board"):
        R.check_board(_info(), "stm32", (6, 3))


# --------------------------------------------------------------------------- planning

def test_plan_copies_missing_and_changed_only():
    wanted = {"a.mpy": "11", "b.mpy": "22", "c.mpy": "33"}
    copy, same = deploy.plan_copy(wanted, {"a.mpy": "11", "b.mpy": "99", "c.mpy": None})
    assert copy == ["b.mpy", "c.mpy"] and same == ["a.mpy"]


def test_stale_code_files_are_found_but_data_and_dirs_stay():
    listing = {"meter": [("app.mpy", 0x8000), ("app.py", 0x8000), ("old.mpy", 0x8000),
                         ("x.mpy.new", 0x8000), ("notes.txt", 0x8000), ("sub", 0x4000)]}
    assert deploy.code_files_to_remove(listing, {"meter/app.mpy"}) == [
        "meter/app.py", "meter/old.mpy", "meter/x.mpy.new"]


def test_provisioning_config_carries_identity_and_keeps_settings():
    rec = {"drn": "00000000042", "sgc": 123456, "ti": 3, "krn": 2, "kt": 2, "algorithm": "ea07",
           "decoder_key": "00112233445566ff", "passwords": {"1": "a", "32": "b", "48": "c"}}
    cfg = provision.provisioning_config(SERIAL, rec, {"tariff_paise_per_kwh": 700, "sts": {"store_size": 9}},
                                tables="sts_tables.json")
    assert cfg["serial"] == cfg["logical_device_name"] == SERIAL
    assert cfg["tariff_paise_per_kwh"] == 700 and cfg["passwords"]["1"] == "a"
    assert cfg["sts"] == {"store_size": 9, "drn": "00000000042", "sgc": 123456, "ti": 3, "krn": 2,
                          "kt": 2, "algorithm": "ea07", "decoder_key": "00112233445566ff",
                          "tables": "sts_tables.json", "base_date": 2014}


def test_the_meter_and_vend_share_the_keystore_base_date(tmp_path):
    # new-user pass (session 13): a flashed meter got no base_date (the firmware's default is
    # 1993) while `meterctl vend --meter` vends on 2014
    store = {"defaults": {"sgc": 123456}}
    rec, _ = K.meter_record(store, SERIAL)
    assert rec["base_date"] == 2014
    assert provision.provisioning_config(SERIAL, rec)["sts"]["base_date"] == 2014
    store = {"defaults": {"sgc": 123456, "base_date": 2035}}
    rec, _ = K.meter_record(store, SERIAL)
    assert provision.provisioning_config(SERIAL, rec)["sts"]["base_date"] == 2035
    with pytest.raises(K.KeystoreError, match="base date"):
        K.meter_record({"defaults": {"sgc": 1, "base_date": 2000}}, SERIAL)


# --------------------------------------------------------------------------- keystore

def test_keystore_generates_once_and_keeps_secrets(tmp_path):
    path = tmp_path / "meters.keystore"
    store = K.load(path)
    rec, changed = K.meter_record(store, SERIAL, sgc=123456)
    assert changed and rec["drn"] == "00000000042" and len(rec["decoder_key"]) == 16
    assert sorted(rec["passwords"]) == ["1", "32", "48"]
    assert all(len(p) == 8 and p.isalnum() for p in rec["passwords"].values())
    K.save(path, store)
    assert (path.stat().st_mode & 0o777) == 0o600
    again, changed = K.meter_record(K.load(path), SERIAL)
    assert not changed and again == rec
    other, _ = K.meter_record(K.load(path), "PPM0000043", sgc=123456)
    assert other["passwords"] != rec["passwords"] and other["decoder_key"] != rec["decoder_key"]


def test_keystore_derives_decoder_key_with_dkga02(tmp_path):
    vk = "0123456789abcdef"
    store = {"defaults": {"vending_key": vk, "iin": "600727", "sgc": 123456}, "meters": {}}
    rec, _ = K.meter_record(store, SERIAL, drn="01234567890", ti=1, krn=1)
    expect = vend.dkga02(bytes.fromhex(vk), vend.build_pan("600727", "01234567890"), 123456, 1, 1, 2)
    assert rec["decoder_key"] == expect.hex() and rec["key_source"] == "derived"
    # a new TI re-derives the key; the passwords stay
    rec2, changed = K.meter_record(store, SERIAL, ti=2)
    assert changed and rec2["passwords"] == rec["passwords"]
    assert rec2["decoder_key"] == vend.dkga02(bytes.fromhex(vk), vend.build_pan("600727", "01234567890"),
                                              123456, 2, 1, 2).hex()


def test_keystore_needs_an_sgc_and_refuses_tracked_repo_paths(tmp_path):
    with pytest.raises(K.KeystoreError, match="no SGC"):
        K.meter_record({"meters": {}}, SERIAL)
    with pytest.raises(K.KeystoreError, match="not git-ignored"):
        K.load(ROOT / "docs" / "meters.json")
    K.check_location(ROOT / "keys" / "bench.json")          # ignored by .gitignore: allowed
    K.check_location(tmp_path / "x.json")                   # outside the repo: allowed


# --------------------------------------------------------------------------- the unix board

def _flash_cli(*args, keystore):
    r = CliRunner().invoke(cmd_flash.flash, list(args) + ["--keystore", str(keystore), "--json"])
    assert r.exit_code == 0, r.output + (str(r.exception) if r.exception else "")
    return json.loads(r.output[r.output.index("{"):])


@pytest.fixture
def flashed(tmp_path):
    flash_dir = tmp_path / "flash"
    ks = tmp_path / "meters.keystore"
    rep = _flash_cli("--board", "unix", "--port", str(flash_dir), "--serial", SERIAL,
                     "--sgc", "123456", "--heap", HEAP, keystore=ks)
    return flash_dir, ks, rep


def test_flash_unix_board_copies_verifies_and_answers_dlms(flashed, tmp_path):
    flash_dir, ks, rep = flashed
    manifest = json.loads((ROOT / "build" / "flash-unix" / "manifest.json").read_text())
    assert set(manifest["files"]) <= set(rep["copied"]) and "config.json" in rep["copied"]
    assert rep["unchanged"] == [] and sorted(rep["verified"]) == sorted(rep["copied"])
    assert rep["dlms"] == {"serial": SERIAL, "firmware": rep["dlms"]["firmware"], "ok": True}
    # the board's files are the build's, byte for byte
    for rel, meta in manifest["files"].items():
        import hashlib
        assert hashlib.sha256((flash_dir / rel).read_bytes()).hexdigest() == meta["sha256"], rel
    cfg = json.loads((flash_dir / "config.json").read_text())
    secrets = json.loads(ks.read_text())["meters"][SERIAL]
    assert cfg["serial"] == SERIAL and cfg["passwords"] == secrets["passwords"]
    import stat      # per-meter passwords and keys: readable by the owner only (H22 N)
    assert stat.S_IMODE((flash_dir / "config.json").stat().st_mode) == 0o600
    assert stat.S_IMODE(flash_dir.stat().st_mode) == 0o700
    assert cfg["sts"]["decoder_key"] == secrets["decoder_key"]
    # the board boots from the flashed files on its own and answers with the provisioned serial,
    # and the generated reader password opens an LLS association (1 and 48 are HLS: test_hls_host)
    rig = unixboard.unix_rig(tmp_path / "rig", flash_dir, heap=HEAP)
    try:
        assert rig.firmware_dir == rig.state_dir == flash_dir.resolve()
        rig.start()
        with DlmsClient(rig.port, client_sap=32, password=secrets["passwords"]["32"]) as c:
            assert bytes(c.get(1, "0.0.42.0.0.255", 2)[1]) == SERIAL.encode()
    finally:
        rig.stop()


def test_reflash_copies_nothing_and_recopies_a_corrupted_file(flashed):
    flash_dir, ks, first = flashed
    args = ("--board", "unix", "--port", str(flash_dir), "--serial", SERIAL, "--no-confirm")
    rep = _flash_cli(*args, keystore=ks)
    assert rep["copied"] == [] and sorted(rep["unchanged"]) == sorted(first["verified"])
    # corrupt one module (same size, one bit) and leave a stale source that would shadow it
    target = flash_dir / "meter" / "app.mpy"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    (flash_dir / "meter" / "account.py").write_text("raise ImportError('stale')\n")
    rep = _flash_cli(*args, keystore=ks)
    assert rep["copied"] == ["meter/app.mpy"]
    assert rep["removed"] == ["meter/account.py"] and not (flash_dir / "meter" / "account.py").exists()
    assert rep["dlms"] is None


def test_provision_rewrites_only_the_config(flashed):
    flash_dir, ks, _ = flashed
    r = CliRunner().invoke(cmd_flash.provision, ["--board", "unix", "--port", str(flash_dir),
                                                 "--serial", "PPM0000077", "--sgc", "654321",
                                                 "--heap", HEAP, "--keystore", str(ks), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output[r.output.index("{"):])
    assert rep["copied"] == ["config.json"] and rep["dlms"]["serial"] == "PPM0000077"
    assert json.loads((flash_dir / "config.json").read_text())["sts"]["sgc"] == 654321


def test_wrong_board_type_is_refused_by_the_real_board(tmp_path):
    repl = unixboard.UnixReplBoard(tmp_path / "b")
    try:
        with pytest.raises(R.FlashError, match="expects sys.platform 'esp32' but the device reports 'linux'"):
            F.flash(repl.port, "esp32", SERIAL, keystore=tmp_path / "k.keystore", sgc=1)
        assert not any((tmp_path / "b").iterdir())       # nothing written
    finally:
        repl.stop()


def test_no_repl_on_the_port_exits_3(tmp_path):
    from hil.ptylink import PtyLink
    with PtyLink() as link:   # a cable with nobody on the other end
        r = CliRunner().invoke(cmd_flash.flash, ["--board", "esp32", "--port", link.b_path,
                                                 "--serial", SERIAL, "--sgc", "1",
                                                 "--connect-timeout", "1", "--keystore",
                                                 str(tmp_path / "k.keystore")])
    assert r.exit_code == 3 and "no MicroPython raw REPL" in r.output


def test_board_found_at_its_friendly_repl_after_answering_is_entered_again(tmp_path):
    """The host read a raw-REPL prompt, but the board was at its friendly REPL (CI saw the
    virtual Pico print its boot banner right after the prompt, and the next exec went into paste
    mode). Replayed on the real unix port: the host's first Ctrl-A is held back from the board
    and a stale raw-REPL prompt is put on the line instead; the REPL is entered once more."""
    with unixboard.UnixReplBoard(tmp_path / "b") as board:
        held = []

        def stale_prompt(chunk):
            if not held and b"\x01" in chunk:
                held.append(chunk)
                board.link.inject("a2b", b"raw REPL; CTRL-B to exit\r\n>")
                return chunk.replace(b"\x01", b"")
            return chunk

        board.link.set_filter("b2a", stale_prompt)
        dev = R.Device(board.port, root="")
        try:
            assert held, "the filter never saw the host's Ctrl-A"
            assert dev.eval("6*7") == 42
        finally:
            dev.close()
