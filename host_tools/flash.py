"""Flash and provision a meter board over its MicroPython REPL (mpremote's raw REPL transport).

``flash(port, board, serial, ...)`` runs four named steps and stops with a FlashError saying why:

1. **prepare** (`_prepare`): the meter's secrets from the keystore and its ``config.json``
   (``host_tools.provision``), and the image from ``host_tools.build`` (``build/flash-<board>/`` +
   manifest with sha256);
2. **copy** (`_copy`): connect (``connect()``, default `SerialTarget`: the REPL without a soft
   reset), check the board (``host_tools.repl.check_board``), hash every file already on the
   board and copy only those whose hash differs or that are missing (written as ``<file>.new``
   and renamed, so a cut leaves the old file); remove stale code files; on a board with ROMFS
   write the code as one ROMFS image instead (``host_tools.deploy``);
3. **verify** (`_verify`): every file's sha256 on the board against the manifest (and the ROMFS
   image's);
4. **reset and confirm** (`_reset_and_confirm`): the target's ``reset``: on a serial board a hard
   reset, then over DLMS on ``dlms_port`` the logical device name 0.0.42.0.0.255 (IC 1) ==
   serial and the active firmware identifier 1.0.0.2.0.255 (IC 1) when the meter serves it.

The ``unix`` board (the firmware on the MicroPython unix port) needs the emulator, which is no
part of this library: ``meterctl flash --board unix`` passes its own ``connect`` (see
``host_tools.meterctl.unixboard``). A target is any object with ``dev`` (a
``host_tools.repl.Device``), ``reset(serial, confirm, log, warnings) -> dlms dict | None`` and
``close()``.
"""

import hashlib
import json
import time

from host_tools import build as _build
from host_tools import deploy, objects, provision as _prov
from host_tools.firmware_src import ROOT
from host_tools.repl import BOARDS, Device, FlashError, board_info, check_board, decode_sys_mpy, \
    mpy_cross_mpy_version

__all__ = ["FlashError", "SerialTarget", "confirm_dlms", "flash", "provision", "OBIS_LDN",
           "OBIS_FIRMWARE"]

OBIS_LDN = objects.LDN.obis               # COSEM logical device name (IC 1 Data), = meter serial
OBIS_FIRMWARE = objects.FIRMWARE_ID.obis  # active firmware identifier (IC 1 Data)


def confirm_dlms(port, serial=None, baud=9600, timeout=3.0, attempts=10, physical=None):
    """Read the logical device name and the firmware identifier as the public client (SAP 16),
    at HDLC physical address ``physical`` (None: the 1-byte server address).

    Returns dict(serial str, firmware str|None, ok bool). ``ok`` is False if the name differs
    from ``serial``. Raises FlashError if the meter never answers.
    """
    from host_tools.client import DataAccessError, DlmsClient, DlmsError

    last = None
    for i in range(attempts):
        try:
            with DlmsClient(port, baud=baud, timeout=timeout, server_physical=physical) as c:
                ldn = c.get(1, OBIS_LDN, 2)[1]
                try:
                    fw = c.get(1, OBIS_FIRMWARE, 2)[1]
                except DataAccessError:
                    fw = None
            ldn = bytes(ldn).decode("ascii", "replace") if isinstance(ldn, (bytes, bytearray)) else str(ldn)
            if isinstance(fw, (bytes, bytearray)):
                fw = bytes(fw).decode("ascii", "replace")
            return {"serial": ldn, "firmware": fw, "ok": serial is None or ldn == serial}
        except DlmsError as e:
            last = e
            time.sleep(min(2.0, 0.3 * (i + 1)))
    raise FlashError("the meter does not answer DLMS on %s: %s" % (port, last))


class SerialTarget:
    """A board on a serial port: its REPL (``dev``), booted again by ``machine.reset()`` and then
    confirmed over DLMS on ``dlms_port`` (the host's port on the meter's DLMS UART), if given."""

    physical = None          # the provisioned HDLC physical address (set by `flash`)

    def __init__(self, port, baud=115200, timeout=10, dlms_port=None, dlms_baud=9600):
        self.dlms_port, self.dlms_baud = dlms_port, dlms_baud
        self.dev = Device(port, baud=baud, root="/", timeout=timeout)

    def reset(self, serial, confirm, log, warnings):
        """Hard reset; returns the `confirm_dlms` result, or None (appending to ``warnings``)."""
        self.dev.hard_reset()
        _say(log, "reset the board")
        if confirm and self.dlms_port:
            time.sleep(2.0)        # the board boots: its port comes back, main.py starts
            return confirm_dlms(self.dlms_port, serial, baud=self.dlms_baud, physical=self.physical)
        if confirm:
            warnings.append("no --dlms-port: DLMS confirmation skipped")
        return None

    def close(self):
        """Close the REPL connection (idempotent)."""
        self.dev.close()


class _Progress:
    """Byte progress over a rich Progress bar (or nothing when ``console`` is None)."""

    def __init__(self, console, total, what):
        self.bar = None
        if console is not None and total:
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                       TimeRemainingColumn, TransferSpeedColumn)
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(), console=console,
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(what, total=total)

    def describe(self, text):
        """Show ``text`` as the current item."""
        if self.bar is not None:
            self.bar.update(self.task, description=text)

    def __call__(self, n):
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def close(self):
        """Stop the bar (it disappears: transient)."""
        if self.bar is not None:
            self.bar.stop()


def _say(log, text):
    if log is not None:
        log(text)


class _Job:
    """What one flash run carries from step to step."""

    def __init__(self, board, serial, code, romfs, console, log):
        self.board, self.serial, self.code, self.romfs = board, serial, code, romfs
        self.console, self.log = console, log
        self.extra = {}          # rel -> bytes written besides the build (provisioning)
        self.out_dir = self.manifest = self.info = self.image = None
        self.use_romfs = False
        self.wanted, self.sources = {}, {}


def _prepare(job, keystore, ident, settings, port):
    """Step 1: secrets, config.json, the image. Returns the report skeleton."""
    rec, ks_path, tables = _prov.secrets(keystore, job.serial, ident)
    job.extra = _prov.provision_files(job.serial, rec, settings, tables)
    if job.code:
        job.out_dir = _build.cached_build(job.board, ROOT / "build" / ("flash-" + job.board))
        job.manifest = json.loads((job.out_dir / "manifest.json").read_text())
        _say(job.log, "image %s: %d files (%s)" % (job.out_dir, len(job.manifest["files"]),
                                                   job.manifest["arch"]))
    report = {"board": job.board, "port": str(port), "keystore": str(ks_path), "copied": [],
              "unchanged": [], "removed": [], "verified": [], "romfs": None, "dlms": None,
              "warnings": []}
    if tables is None and rec["algorithm"] == "ea07":
        report["warnings"].append("no ea07_tables in the keystore: the meter uses the IEC sample "
                                  "EA07 tables (test meters only)")
    return report


def _inspect(job, dev, report):
    """Check the board; decide ROMFS or files; list every wanted file with its sha256."""
    info = job.info = report["info"] = board_info(dev)
    report["warnings"] += check_board(info, job.board, mpy_cross_mpy_version())
    major, sub, _arch = decode_sys_mpy(info["mpy"])
    _say(job.log, "board: MicroPython %s on %s, mpy %d.%d%s" % (
        ".".join(str(x) for x in info["version"][:3]), info["platform"], major, sub,
        ", ROMFS %d bytes" % info["romfs_size"] if info["romfs"] else ", no ROMFS"))
    job.use_romfs = job.code and info["romfs"] and job.romfs != "no" and job.board != "unix"
    if job.code and job.romfs == "yes" and not info["romfs"]:
        raise FlashError("--romfs yes, but the board has no ROMFS partition "
                         "(MicroPython >= 1.25 built with MICROPY_VFS_ROM)")
    if job.code:
        for rel, meta in job.manifest["files"].items():
            if job.use_romfs and rel.split("/", 1)[0] in deploy.CODE_DIRS:
                continue
            job.wanted[rel] = meta["sha256"]
            job.sources[rel] = job.out_dir / rel
    for rel, data in job.extra.items():
        job.wanted[rel] = hashlib.sha256(data).hexdigest()


def _copy(job, dev, report):
    """Step 2: copy what differs, remove stale code, deploy the ROMFS image if it changed."""
    _inspect(job, dev, report)
    copy, same = deploy.plan_copy(job.wanted, dev.hashes(job.wanted))
    report["unchanged"] = same
    if job.code:      # stale code (and every code file on littlefs when the code moves to ROMFS)
        stale = deploy.code_files_to_remove(deploy.listing(dev), set(job.wanted))
        for rel in stale:
            dev.remove(rel)
        report["removed"] = stale
    image_to_write = None
    if job.use_romfs:
        job.image = deploy.romfs_image(job.out_dir)
        if deploy.romfs_hash(dev, len(job.image)) == hashlib.sha256(job.image).hexdigest():
            report["romfs"] = "unchanged"
        else:
            image_to_write = job.image
    total = sum(len(job.extra[r]) if r in job.extra else job.sources[r].stat().st_size for r in copy)
    bar = _Progress(job.console, total + len(image_to_write or b""), "copying")
    try:
        dev.mkdirs({r.rsplit("/", 1)[0] for r in copy if "/" in r})
        for rel in copy:
            bar.describe(rel)
            dev.write(rel, job.extra[rel] if rel in job.extra else job.sources[rel].read_bytes(), bar)
        if image_to_write is not None:
            bar.describe("ROMFS image")
            deploy.romfs_deploy(dev, image_to_write, job.info, bar)
            report["romfs"] = "deployed"
    finally:
        bar.close()
    report["copied"] = copy
    _say(job.log, "copied %d files, %d unchanged, %d stale removed%s" % (
        len(copy), len(same), len(report["removed"]),
        ", ROMFS image %s" % report["romfs"] if report["romfs"] else ""))


def _verify(job, dev, report):
    """Step 3: every wanted file's sha256 on the board (not only what was copied)."""
    after = dev.hashes(job.wanted)
    bad = [r for r in job.wanted if after.get(r) != job.wanted[r]]
    if job.image is not None and \
            deploy.romfs_hash(dev, len(job.image)) != hashlib.sha256(job.image).hexdigest():
        bad.append("<ROMFS image>")
    if bad:
        raise FlashError("sha256 mismatch on the board after copying: %s" % ", ".join(bad))
    report["verified"] = sorted(job.wanted)
    _say(job.log, "verified sha256 of %d files on the board" % len(job.wanted))


def _reset_and_confirm(job, target, confirm, report):
    """Step 4: the target boots the firmware; the meter must answer with its serial."""
    d = report["dlms"] = target.reset(job.serial, confirm, job.log, report["warnings"])
    if d is not None:
        _say(job.log, "DLMS: logical device name %s, firmware %s" % (d["serial"], d["firmware"] or
                                                                      "(not served)"))
        if not d["ok"]:
            raise FlashError("the meter answers as %r, not %r after flashing" % (d["serial"], job.serial))


def flash(port, board, serial, keystore=None, drn=None, sgc=None, ti=None, krn=None,
          settings=None, baud=115200, dlms_port=None, dlms_baud=9600, romfs="auto", confirm=True,
          console=None, log=None, code=True, connect_timeout=10, connect=None):
    """Flash (``code=True``) or only provision (``code=False``) the board on ``port``.

    ``romfs``: "auto" (use ROMFS when the board has it), "no" (always .mpy files), "yes"
    (refuse a board without ROMFS). ``connect_timeout``: seconds to wait for the raw REPL.
    ``dlms_port``: the meter's DLMS UART on the host for the confirmation. ``log(text)`` gets
    one line per step; ``console`` (rich) shows a progress bar. ``connect()``: returns the
    board target (default `SerialTarget` on ``port``; ``board="unix"`` needs one).

    Returns a report dict: board info, warnings, copied/unchanged/removed/verified rel paths,
    romfs ("deployed"|"unchanged"|None), dlms (confirm_dlms result or None), keystore path.
    Raises FlashError.
    """
    if board not in BOARDS:
        raise FlashError("unknown board %r (one of %s)" % (board, ", ".join(BOARDS)), usage=True)
    if connect is None:
        if board == "unix":
            raise FlashError("the unix board is flashed by `meterctl flash --board unix` (it "
                             "needs the emulator to boot)")

        def connect():
            return SerialTarget(port, baud, connect_timeout, dlms_port, dlms_baud)
    job = _Job(board, serial, code, romfs, console, log)
    report = _prepare(job, keystore, {"drn": drn, "sgc": sgc, "ti": ti, "krn": krn}, settings, port)
    target = connect()
    target.physical = (settings or {}).get("physical_address")
    try:
        _copy(job, target.dev, report)
        _verify(job, target.dev, report)
        _reset_and_confirm(job, target, confirm, report)
        return report
    finally:
        target.close()


def provision(port, board, serial, **kw):
    """Write only the provisioning config.json to an already flashed board (see `flash`)."""
    kw["code"] = False
    return flash(port, board, serial, **kw)
