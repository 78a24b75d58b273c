"""STS decoder keys on the host: key parsing, the meter PAN, DKGA02 and DKGA04.

IEC 62055-41 (STS Edition 2) decoder key generation algorithms:

* DKGA02 (§6.5.2, 64-bit vending key): PANBlock = PAN digits 2..17 (IIN without its
  first digit, IAIN), CB = KT | SGC(6) | TI(2) | KRN | FFFFFF, X = PANBlock xor CB,
  DK = DES_VK(X) xor X xor VK (single DES, ECB; pycryptodome).
* DKGA04 (§6.5.4): DK = first L bits of HMAC-SHA256(VK, Label || 00 || Context || L32be),
  Label = 04 |02 "04"|02 BD|02 EA|02 TI, Context = 04 |06 SGC|01 KT|01 KRN|12 PAN, with
  BD "93"/"14"/"35" (base dates 1993, 2014, 2035), EA "07"/"11", L = 64 (STA) or 128 (MISTY1).
* Meter PAN (18 digits) = IIN (6 digits, or "0000") + DRN (11 or 13 digits, including
  its own check digit) + Luhn check digit (ISO/IEC 7812).

All 64/128-bit keys are bytes in IEC/natural order (first byte most significant).
Errors: ``VendError`` (a ValueError) with a readable message. ``host_tools.vend`` re-exports
everything public here.
"""
import hashlib
import hmac

__all__ = ["VendError", "ALGORITHMS", "parse_key", "luhn_digit", "build_pan", "check_pan", "dkga02",
           "dkga04_message", "dkga04", "derive_decoder_key", "algorithm_name", "int_in_range",
           "sgc_text"]

ALGORITHMS = ("ea07", "ea11")


class VendError(ValueError):
    """Bad vending input (key, PAN, field ranges, CSV row)."""


def parse_key(text, sizes=(8, 16, 20, 32), what="key"):
    """Hex string (spaces/colons allowed) or bytes -> bytes of an allowed length."""
    if isinstance(text, (bytes, bytearray)):
        b = bytes(text)
    else:
        s = str(text).strip().replace(" ", "").replace(":", "")
        if s.lower().startswith("0x"):
            s = s[2:]
        try:
            b = bytes.fromhex(s)
        except ValueError:
            raise VendError("%s must be hex" % what) from None
    if len(b) not in sizes:
        lo, hi = min(sizes), max(sizes)
        ok = "%d to %d" % (lo, hi) if len(sizes) > 2 and len(sizes) == hi - lo + 1 else "/".join(map(str, sizes))
        raise VendError("%s must be %s bytes (twice as many hex digits), got %d" % (what, ok, len(b)))
    return b


def luhn_digit(digits):
    """Luhn (ISO/IEC 7812 mod 10) check digit for a digit string."""
    if not digits or not digits.isdigit():
        raise VendError("Luhn input must be digits")
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def build_pan(iin, drn):
    """IIN (6 digits, or 4 for '0000') + DRN (11 or 13 digits incl. its check digit)
    -> 18-digit meter PAN with the Luhn check digit appended."""
    iin, drn = str(iin).strip(), str(drn).strip()
    if not (iin.isdigit() and drn.isdigit()) or len(iin) + len(drn) != 17 or len(iin) not in (4, 6):
        raise VendError("IIN (6 or 4 digits) + DRN must make 17 digits, got %r + %r" % (iin, drn))
    return iin + drn + luhn_digit(iin + drn)


def check_pan(pan):
    """18-digit PAN -> normalised string; VendError if malformed or its check digit is wrong."""
    pan = str(pan).strip().replace(" ", "")
    if len(pan) != 18 or not pan.isdigit():
        raise VendError("meter PAN must be 18 digits")
    if luhn_digit(pan[:17]) != pan[17]:
        raise VendError("meter PAN %s: its check digit (the last) should be %s: a digit is mistyped; check "
                        "it against the meter's name plate" % (pan, luhn_digit(pan[:17])))
    return pan


def sgc_text(sgc):
    """SGC (int or digits) -> 6-digit text; VendError if not up to 6 digits."""
    s = str(sgc).strip()
    if not s.isdigit() or len(s) > 6:
        raise VendError("SGC must be up to 6 digits")
    return s.zfill(6)


def int_in_range(v, lo, hi, name):
    """int(v) within lo..hi, else VendError naming ``name``."""
    try:
        v = int(v)
    except (TypeError, ValueError):
        raise VendError("%s must be an integer" % name) from None
    if not lo <= v <= hi:
        raise VendError("%s must be %d..%d" % (name, lo, hi))
    return v


def dkga02(vending_key, pan, sgc, ti, krn, kt):
    """DKGA02: 8-byte DES vending key -> 8-byte decoder key (IEC 62055-41 §6.5.2)."""
    from Crypto.Cipher import DES
    vk = parse_key(vending_key, (8,), "DKGA02 vending key")
    pan = check_pan(pan)
    kt, ti, krn = int_in_range(kt, 0, 3, "KT"), int_in_range(ti, 0, 99, "TI"), int_in_range(krn, 1, 15, "KRN")
    pb = int(pan[1:17], 16)
    cb = int("%X%s%02d%XFFFFFF" % (kt, sgc_text(sgc), ti, krn), 16)
    x = (pb ^ cb).to_bytes(8, "big")
    e = DES.new(vk, DES.MODE_ECB).encrypt(x)
    return bytes(a ^ b ^ c for a, b, c in zip(e, x, vk))


def dkga04_message(pan, sgc, ti, krn, kt, base_date, algorithm):
    """The HMAC input of DKGA04 (bytes)."""
    pan = check_pan(pan)
    kt, ti, krn = int_in_range(kt, 0, 3, "KT"), int_in_range(ti, 0, 99, "TI"), int_in_range(krn, 1, 15, "KRN")
    bd = {1993: b"93", 2014: b"14", 2035: b"35"}.get(int(base_date))
    if bd is None:
        raise VendError("base date must be 1993, 2014 or 2035")
    ea = {"ea07": b"07", "ea11": b"11"}[algorithm_name(algorithm)]

    def field(b):
        return bytes([len(b)]) + b
    label = b"\x04" + field(b"04") + field(bd) + field(ea) + field(b"%02d" % ti)
    context = b"\x04" + field(sgc_text(sgc).encode()) + field(b"%X" % kt) + field(b"%X" % krn) + \
        field(pan.encode())
    bits = 64 if ea == b"07" else 128
    return label + b"\x00" + context + bits.to_bytes(4, "big")


def dkga04(vending_key, pan, sgc, ti, krn, kt, base_date=1993, algorithm="ea07"):
    """DKGA04: HMAC-SHA256 vending key -> decoder key, 8 bytes (EA07) or 16 (EA11)."""
    vk = parse_key(vending_key, tuple(range(8, 65)), "DKGA04 vending key")
    msg = dkga04_message(pan, sgc, ti, krn, kt, base_date, algorithm)
    n = 8 if algorithm_name(algorithm) == "ea07" else 16
    return hmac.new(vk, msg, hashlib.sha256).digest()[:n]


def derive_decoder_key(vending_key, pan, sgc, ti, krn, kt, base_date=1993, algorithm="ea07",
                       dkga=None):
    """Decoder key from a vending key. ``dkga`` 2 or 4; default: 2 for an 8-byte key with
    EA07, 4 otherwise (EA11 always needs DKGA04)."""
    vk = parse_key(vending_key, tuple(range(8, 65)), "vending key")
    alg = algorithm_name(algorithm)
    if dkga is None:
        dkga = 2 if (len(vk) == 8 and alg == "ea07") else 4
    if int(dkga) == 2:
        if alg != "ea07":
            raise VendError("DKGA02 gives a 64-bit key: EA07 only")
        return dkga02(vk, pan, sgc, ti, krn, kt)
    if int(dkga) == 4:
        return dkga04(vk, pan, sgc, ti, krn, kt, base_date, alg)
    raise VendError("DKGA must be 2 or 4")


def algorithm_name(algorithm):
    """"ea07" / "sta" / "07" -> "ea07"; "ea11" / "misty1" / "11" -> "ea11"; else VendError."""
    a = str(algorithm).lower().replace("-", "")
    if a in ("ea07", "sta", "07"):
        return "ea07"
    if a in ("ea11", "misty1", "11"):
        return "ea11"
    raise VendError("algorithm must be ea07 or ea11")
