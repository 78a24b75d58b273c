// picorun.mjs - the PicoRig runner: a MicroPython RP2040 UF2 inside rp2040js 1.4.1, wired to ptys.
//
// Our runner for hil/picorig.py. Started from ../shared/rp2emu/rp2emu.mjs (itself adapted from
// wokwi/rp2040js demo/micropython-run.ts, MIT); the boot ROM in bootrom.mjs is the RP2040 B1 ROM
// (raspberrypi/pico-bootrom, BSD-3). What this file adds to the emulator (UPSTREAM.md):
//   - PL011 receive: RX FIFO level + receive-timeout interrupts (RXIM/RTIM), host bytes fed only
//     as the 32-entry FIFO drains (no byte lost, however long the burst);
//   - flash erase/program that persist: the boot ROM's flash routines are trapped (BKPT patched
//     over their first instruction) and done on the emulator's flash array and a backing file;
//     a power cut can be armed at the N-th erase/program (torn like hil's NOR model);
//   - power cuts armed while running (control line "cut op N" / "cut cycles N"): at the N-th
//     erase/program from now, or after N more executed cycles (an arbitrary instruction);
//   - guest time paced to wall time (idle skipped only up to the wall clock), so host peers
//     (PZEM emulator, DLMS client) and guest timeouts agree.
//
// Usage (all paths are ptys or files made by the caller):
//   node picorun.mjs --image firmware.uf2 --flash flash.bin [--uart0 PTY] [--uart1 PTY]
//        [--cdc PTY] [--ctl PTY] [--rtc EPOCH] [--rtc-frozen] [--cut-at N] [--seed S] [--relay-pin 15]
//        [--fb-pin 14] [--button-pin 17] [--cover-pin N] [--stats]
// Control lines on --ctl (rig -> runner): "time <epoch>" (RTC), "button" (press 150 ms),
// "cover open|closed", "gpio <n> <0|1>", "fb <auto|0|1>", "ping <n>" (answered "pong <n>" once
// every earlier line is done in guest time), "cut op <n>" (power cut at the n-th flash
// erase/program from now), "cut cycles <n>" (after n more executed cycles), "cut off",
// "flashops" (answered "flashops <n> <cycles>": erases/programs and executed cycles of this boot). Runner -> rig: the firmware's console lines that
// are control lines (ready, relay, meter, event), "pin <n> <0|1>" for the relay output, "cut <op>"
// at an armed power cut, "flashops <n>" at exit. Exit codes: 0 stopped, 3 watchdog reset,
// 5 armed power cut.
import fs from 'fs';
import tty from 'tty';
import { performance } from 'perf_hooks';
import { Simulator, USBCDC, ConsoleLogger, LogLevel } from 'rp2040js';
import { decodeBlock } from 'uf2';
import { bootromB1 } from './bootrom.mjs';

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, '');
  if (['stats', 'rtc-frozen'].includes(k)) args[k] = true;
  else args[k] = argv[++i];
}
const FLASH_START = 0x10000000;
const FLASH_SIZE = 2 * 1024 * 1024;
const num = (k, d) => (args[k] === undefined ? d : Number(args[k]));
const log = (s) => process.stdout.write(`[picorun] ${s}\n`);

// ---------------------------------------------------------------- machine, ROM traps
const simulator = new Simulator();
const mcu = simulator.rp2040;
const { clock } = simulator;
mcu.logger = new ConsoleLogger(LogLevel.Error);
const rom = new Uint32Array(bootromB1);
const romU16 = (a) => (rom[a >> 2] >>> ((a & 2) * 8)) & 0xffff;
function romFunc(code) { // the ROM's function table: (code u16, address u16) pairs from *0x14
  for (let p = romU16(0x14); romU16(p); p += 4) if (romU16(p) === code) return romU16(p + 2) & ~1;
  throw new Error(`ROM function ${code.toString(16)} not found`);
}
const tag = (s) => s.charCodeAt(0) | (s.charCodeAt(1) << 8);
const TRAPS = { RE: 1, RP: 2, IF: 3, EX: 4, FC: 5, CX: 6 }; // BKPT immediates
for (const [name, imm] of Object.entries(TRAPS)) {
  const a = romFunc(tag(name));
  const shift = (a & 2) * 8;
  rom[a >> 2] = (rom[a >> 2] & ~(0xffff << shift)) | ((0xbe00 | imm) << shift);
}
mcu.loadBootrom(rom);

// ---------------------------------------------------------------- flash: image, file, ops
const flashPath = args.flash;
let flashFd = null;
if (flashPath && fs.existsSync(flashPath)) mcu.flash.set(fs.readFileSync(flashPath).subarray(0, FLASH_SIZE));
else mcu.flash.fill(0xff);
if (args.image) {
  const data = fs.readFileSync(args.image);
  for (let off = 0; off + 512 <= data.length; off += 512) {
    const { flashAddress, payload } = decodeBlock(data.subarray(off, off + 512));
    mcu.flash.set(payload, flashAddress - FLASH_START);
  }
}
if (flashPath) {
  flashFd = fs.openSync(flashPath, fs.existsSync(flashPath) ? 'r+' : 'w+');
  fs.writeSync(flashFd, mcu.flash, 0, FLASH_SIZE, 0);
}
const persist = (off, len) => { if (flashFd !== null) fs.writeSync(flashFd, mcu.flash, off, len, off); };
let flashOps = 0;
let cutAt = num('cut-at', 0); // the flash op that cuts (0: none)
let cutCycle = Infinity;      // the executed-cycle count that cuts
let rng = (num('seed', 1) >>> 0) || 0x9e3779b9;
const rand = (n) => { rng ^= rng << 13; rng >>>= 0; rng ^= rng >>> 17; rng ^= rng << 5; rng >>>= 0; return rng % n; };

function flashErase(off, count) { // flash_range_erase(addr, count, block_size, block_cmd)
  const cut = ++flashOps === cutAt;
  const n = cut ? rand(count + 1) : count; // a cut erases a prefix only
  mcu.flash.fill(0xff, off, off + n);
  persist(off, count);
  if (cut) powerCut(`erase 0x${off.toString(16)}+${count} torn at ${n}`);
}
function flashProgram(off, src, count) { // flash_range_program(addr, data, count): NOR: old & new
  const cut = ++flashOps === cutAt;
  const n = cut ? rand(count + 1) : count;
  for (let i = 0; i < n; i++) mcu.flash[off + i] &= mcu.readUint8(src + i);
  if (cut && n < count) mcu.flash[off + n] &= mcu.readUint8(src + n) | rand(256); // byte in flight
  persist(off, count);
  if (cut) powerCut(`program 0x${off.toString(16)}+${count} torn at ${n}`);
}
mcu.onBreak = (imm) => {
  const r = mcu.core.registers;
  if (imm === TRAPS.RE) flashErase(r[0] & 0xffffff, r[1]);
  else if (imm === TRAPS.RP) flashProgram(r[0] & 0xffffff, r[1], r[2]);
  else if (imm < 1 || imm > 6) { log(`BKPT ${imm} at 0x${mcu.core.PC.toString(16)}`); return; }
  mcu.core.PC = r[14] & ~1; // return to the caller (BX LR)
};

// ---------------------------------------------------------------- PL011 fixes
// TX: rp2040js re-asserts TXINTR on every check (an IRQ storm once TXIM is set): raise it only
// after a data-register write. RX: a real PL011 raises RXINTR when the FIFO reaches the level
// set in UARTIFLS and RTINTR when data sits in the FIFO for 32 bit periods; rp2040js raises
// RXINTR per byte and drops bytes beyond 32. Here: level interrupt at the programmed level, a
// receive timeout after 32 bit times of silence, and the host queue feeds only free FIFO slots.
const UARTIFLS = 0x34, RTINTR = 1 << 6, RXINTR = 1 << 4, TXINTR = 1 << 5;
const LEVELS = [4, 8, 16, 24, 28];
for (const uart of mcu.uart) {
  uart.ifls = 0x12;
  uart.rtAlarm = clock.createAlarm(() => { if (!uart.rxFIFO.empty) { uart.interruptStatus |= RTINTR; uart.checkInterrupts(); } });
  uart.checkInterrupts = function () {
    this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
  };
  const bitNs = () => 1e9 / (uart.baudRate || 9600);
  uart.feedByte = function (value) {
    this.rxFIFO.push(value);
    if (this.rxFIFO.itemCount >= LEVELS[(this.ifls >> 3) & 7] || this.rxFIFO.itemCount >= 32) this.interruptStatus |= RXINTR;
    this.rtAlarm.schedule(32 * bitNs());
    this.checkInterrupts();
  };
  const origRead = uart.readUint32.bind(uart);
  uart.readUint32 = function (offset) {
    if (offset === UARTIFLS) return this.ifls;
    if (offset !== 0) return origRead(offset);
    const value = this.rxFIFO.pull();
    if (this.rxFIFO.itemCount < LEVELS[(this.ifls >> 3) & 7]) this.interruptStatus &= ~RXINTR;
    if (this.rxFIFO.empty) this.interruptStatus &= ~RTINTR;
    else this.rtAlarm.schedule(32 * bitNs());
    this.checkInterrupts();
    return value;
  };
  const origWrite = uart.writeUint32.bind(uart);
  uart.writeUint32 = function (offset, value) {
    if (offset === UARTIFLS) { this.ifls = value & 0x3f; return; }
    origWrite(offset, value);
    if (offset === 0) { this.interruptStatus |= TXINTR; this.checkInterrupts(); }
  };
}

// ---------------------------------------------------------------- ptys
function openTty(path, onData) {
  const fd = fs.openSync(path, 'r+');
  const rd = new tty.ReadStream(fd);
  rd.setRawMode(true);
  rd.on('data', onData);
  rd.on('error', () => {});
  const wr = new tty.WriteStream(fd);
  wr.on('error', () => {});
  return { rd, wr };
}
const uartQ = [[], []];
const uartTty = [null, null];
for (let u = 0; u < 2; u++) {
  if (args[`uart${u}`]) {
    uartTty[u] = openTty(args[`uart${u}`], (d) => {
      // an unpowered or disabled UART receives nothing; flow control: pause the pty while queued
      if (!mcu.uart[u].enabled) return;
      uartQ[u].push(...d);
      if (uartQ[u].length > 256) uartTty[u].rd.pause();
      wake();
    });
  }
  mcu.uart[u].onByte = (b) => { if (uartTty[u]) uartTty[u].wr.write(Buffer.from([b])); };
}

// USB CDC: the REPL. A real host NAKs bulk OUT while it has nothing to send; rp2040js completes
// every OUT transfer at once with 0 bytes (an IRQ storm), so an OUT read is deferred until data.
const cdc = new USBCDC(mcu.usbCtrl);
const cdcQ = [];
let cdcConnected = false;
cdc.onDeviceConnected = () => { cdcConnected = true; };
let pendingOut = null;
const origEpRead = mcu.usbCtrl.onEndpointRead;
mcu.usbCtrl.onEndpointRead = (ep, size) => {
  if (cdc.txFIFO.itemCount === 0 && ep !== 0) { pendingOut = { ep, size }; return; }
  origEpRead(ep, size);
};
const cdcTty = args.cdc ? openTty(args.cdc, (d) => { cdcQ.push(...d); wake(); }) : null;
let lineBuf = '';
const CTL_LINE = /^(ready|relay [01]|meter -?\d+ -?\d+ -?\d+ [01]|event \d+.*)$/;
cdc.onSerialData = (value) => {
  const b = Buffer.from(value);
  if (cdcTty) cdcTty.wr.write(b);
  process.stdout.write(b);
  lineBuf += b.toString('latin1');
  let i;
  while ((i = lineBuf.indexOf('\n')) >= 0) {
    const line = lineBuf.slice(0, i).replace(/\r$/, '');
    lineBuf = lineBuf.slice(i + 1);
    if (CTL_LINE.test(line)) ctlSend(line);
  }
  if (lineBuf.length > 4096) lineBuf = '';
};

const rtc = mcu.peripherals[0x4005c];

// ---------------------------------------------------------------- GPIO and the control line
const relayPin = num('relay-pin', 15), fbPin = num('fb-pin', 14), buttonPin = num('button-pin', 17);
const coverPin = args['cover-pin'] === undefined ? null : Number(args['cover-pin']);
let fbMode = 'auto'; // contact sense follows the relay output (a healthy contactor)
const relayOut = () => mcu.gpio[relayPin].value;
const setFb = () => mcu.gpio[fbPin].setInputValue(fbMode === 'auto' ? !!relayOut() : fbMode === '1');
let lastRelay = null;
mcu.gpio[relayPin].addListener(() => {
  const v = relayOut() ? 1 : 0;
  if (v !== lastRelay) { lastRelay = v; ctlSend(`pin ${relayPin} ${v}`); }
  setFb();
});
mcu.gpio[buttonPin].setInputValue(true); // pull-up: released
if (coverPin !== null) mcu.gpio[coverPin].setInputValue(false); // cover closed
setFb();

let ctlTty = null;
const ctlSend = (line) => { if (ctlTty) ctlTty.wr.write(line + '\n'); };
const timed = []; // [guest ns, fn]: actions due in guest time (button release, pongs)
const after = (ms, fn) => { timed.push([clock.nanos + ms * 1e6, fn]); timed.sort((a, b) => a[0] - b[0]); };
let busyUntil = 0;
function setRtc(epoch) {
  rtc.baseline = new Date(epoch * 1000);
  rtc.baselineNanos = clock.nanos;
}
function onCtl(line) {
  const p = line.trim().split(/\s+/);
  if (p[0] === 'time') setRtc(Number(p[1]));
  else if (p[0] === 'button') {
    mcu.gpio[buttonPin].setInputValue(false);
    after(150, () => mcu.gpio[buttonPin].setInputValue(true));
    busyUntil = Math.max(busyUntil, clock.nanos + 250e6);
  } else if (p[0] === 'cover' && coverPin !== null) {
    mcu.gpio[coverPin].setInputValue(p[1] === 'open');
    busyUntil = Math.max(busyUntil, clock.nanos + 150e6);
  } else if (p[0] === 'gpio') mcu.gpio[Number(p[1])].setInputValue(p[2] === '1');
  else if (p[0] === 'fb') { fbMode = p[1]; setFb(); }
  else if (p[0] === 'ping') {
    const due = Math.max(0, (busyUntil - clock.nanos) / 1e6);
    after(due, () => ctlSend(`pong ${p[1]}`));
  } else if (p[0] === 'cut') {
    const n = Math.max(1, Math.floor(Number(p[2]) || 1));
    if (p[1] === 'op') cutAt = flashOps + n;
    else if (p[1] === 'cycles') cutCycle = busyCycles + n;
    else { cutAt = 0; cutCycle = Infinity; }
  } else if (p[0] === 'flashops') ctlSend(`flashops ${flashOps} ${busyCycles}`);
  else if (p[0] === 'stop') finish(0);
  wake();
}
if (args.ctl) {
  let buf = '';
  ctlTty = openTty(args.ctl, (d) => {
    buf += d.toString('latin1');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); onCtl(l); }
  });
}

// RTC: MicroPython sets the RTC to 2021-01-01 at boot; the rig's RTC (--rtc) stands in for a
// battery-backed clock, so that load is replaced by the rig's time (moved by guest time since).
// --rtc-frozen: the RTC moves only by "time" lines (the unix board's "frozen" clock: deterministic).
const rtcEpoch = args.rtc === undefined ? null : Number(args.rtc);
const rtcFrozen = !!args['rtc-frozen'];
if (rtcFrozen) {
  const rtcRead = rtc.readUint32.bind(rtc);
  rtc.readUint32 = function (offset) { this.baselineNanos = clock.nanos; return rtcRead(offset); };
}
if (rtcEpoch !== null) {
  const rtcWrite = rtc.writeUint32.bind(rtc);
  rtc.writeUint32 = function (offset, value) {
    rtcWrite(offset, value);
    if (offset === 0x0c && this.baseline.getUTCFullYear() === 2021) setRtc(rtcEpoch + (rtcFrozen ? 0 : Math.floor(clock.nanos / 1e9)));
  };
}

// watchdog: a real RP2040 resets; the rig restarts the runner on exit code 3 (flash kept)
mcu.peripherals[0x40058].onWatchdogTrigger = () => { log('watchdog reset'); finish(3); };

// ---------------------------------------------------------------- power cut, exit
function powerCut(what) {
  log(`power cut at flash op ${flashOps}: ${what}`);
  ctlSend(`cut ${flashOps}`);
  finish(5);
}
let stopped = false;
const wall0 = performance.now();
let busyCycles = 0;
function finish(code) {
  if (stopped) return;
  stopped = true;
  if (flashFd !== null) fs.fsyncSync(flashFd);
  ctlSend(`flashops ${flashOps}`);
  if (args.stats) {
    const wallMs = performance.now() - wall0, guestMs = clock.nanos / 1e6;
    log(`wall=${wallMs.toFixed(0)}ms guest=${guestMs.toFixed(0)}ms busy=${(busyCycles / 125e3).toFixed(0)}ms flashops=${flashOps}`);
  }
  // let the pty writes go out, then leave (a power cut leaves at once: nothing more is written)
  setTimeout(() => process.exit(code), code === 5 ? 0 : 20);
}
process.on('SIGTERM', () => finish(0));
process.on('SIGINT', () => finish(0));

// ---------------------------------------------------------------- the execution loop
// Guest time may run behind wall time (CPU-bound code runs at ~0.4x) but never ahead: idle time
// (WFE, sleeps) is skipped only up to the wall clock, with at most MAX_LAG of catching up, so a
// guest timeout lasts at least as long on the host side.
const cycleNanos = 1e9 / 125e6;
const MAX_LAG = num('max-lag-ms', 20) * 1e6;
let anchorWall = performance.now(), anchorGuest = 0;
let timer = null;
function wake() { if (timer !== null) { clearTimeout(timer); timer = null; setImmediate(slice); } }
function pump() {
  if (cdcConnected) while (cdcQ.length && cdc.txFIFO.itemCount < cdc.txFIFO.size) cdc.sendSerialByte(cdcQ.shift());
  if (pendingOut && cdc.txFIFO.itemCount) { const p = pendingOut; pendingOut = null; origEpRead(p.ep, p.size); }
  for (let u = 0; u < 2; u++) {
    const q = uartQ[u], uart = mcu.uart[u];
    let n = 0;
    while (n < q.length && uart.rxFIFO.itemCount < 32) uart.feedByte(q[n++]);
    if (n) q.splice(0, n);
    if (uartTty[u] && q.length < 64) uartTty[u].rd.resume();
  }
  while (timed.length && timed[0][0] <= clock.nanos) timed.shift()[1]();
}
function slice() {
  if (stopped) return;
  let limit = anchorGuest + (performance.now() - anchorWall) * 1e6;
  if (limit - clock.nanos > MAX_LAG) { anchorGuest = clock.nanos + MAX_LAG; anchorWall = performance.now(); limit = anchorGuest; }
  pump();
  const { core } = mcu;
  for (let i = 0; i < 200_000 && !stopped; i++) {
    if (core.waiting) {
      let n = clock.nextAlarm ? clock.nanosToNextAlarm : Infinity; // none: wait for an interrupt
      if (timed.length) n = Math.min(n, Math.max(0, timed[0][0] - clock.nanos));
      if (clock.nanos + n > limit) { // idle until the wall clock catches up (or host input)
        const waitMs = Math.max(1, (clock.nanos + n - limit) / 1e6);
        if (limit > clock.nanos) clock.tick(limit - clock.nanos); // idle guest time passes
        timer = setTimeout(() => { timer = null; slice(); }, Math.min(waitMs, 50));
        return;
      }
      clock.tick(n);
      i += n / cycleNanos;
      if (timed.length || cdcQ.length) pump();
    } else {
      const c = core.executeInstruction();
      busyCycles += c;
      clock.tick(c * cycleNanos);
      if (busyCycles >= cutCycle) powerCut(`cycle ${busyCycles} (pc 0x${core.PC.toString(16)})`);
    }
  }
  setImmediate(slice);
}
mcu.core.PC = 0x10000000;
slice();
