"""MISTY1 block cipher (RFC 2994): 64-bit block, 128-bit key, 8 rounds. STS EA11.

IEC 62055-41 (Ed. 3, EA11) uses plain MISTY1: the 16-byte decoder key (first 16 bytes of
the DKGA04 HMAC-SHA256 output) is K[0..15] in order, and the 64-bit token data block is
the plaintext in big-endian byte order.

Written from the RFC 2994 description (FI/FO/FL/FLINV, key schedule
EK[i+8] = FI(EK[i], EK[(i+1) mod 8])). All arithmetic is on 16-bit halves, so it stays in
MicroPython small ints on 32-bit ports; ``encrypt_into``/``decrypt_into`` work in place on
a bytearray(8) and allocate nothing per call.

    c = Misty1(key16)
    c.decrypt_into(buf8)                         # device
    c.encrypt_block(int) / c.decrypt_block(int)  # host convenience, 64-bit ints

Errors: ``protocol.sts.StsError`` with reason "key" or "format".
"""
from array import array

from protocol.sts_core import StsError

_S7 = bytes.fromhex(
    "1b32335a3b1017545b1a72736b2c66491f24136c372e3f4a5d0f405625511c040b46200d7b3544422b1e41144b79156f"
    "0e550936740c6753280a7e38020760291912652f303908685f782a4c6445753d594803577c4f623c1d215e276a704d3a"
    "016d6e6318772305267600312d7a7f61502211064716524e713e6943345c587d")
_S9_BE = bytes.fromhex(
    "01c300cb0153019f01e300e900fb0035018100b9011701eb01330009002d00d300c7014a0037007e00eb0164019301d8"
    "00a3011e0055002c001d01a201630118014b015201d2000f002b0030013a00e501110138018e006300e300c801f4001b"
    "0001009d00f801a0016d01f3001c0146007d00d1008201ea0183012d00f4019e01d300dd01e2012801e000ec00590091"
    "0011012f002600dc00b0018c010f01f700e7016c00b600f900d801510101014c010300b80154012b01ae00170071000c"
    "00470058007f01a4013401290084015d019d01b201a30048007c005101ca0023013d01a70165003b004200da019200ce"
    "00c1006b009f01f1012c018400fa019601e10169017d00310180010a009401da0186013e011c0060017501cf00670119"
    "006500680099015000080007017c00b70024001900de012700db00e401a9005201090090019c01c1002801b30135016a"
    "017600df01e5018800c5016e01de01b100c301df003600ee01ee00f000930049009a01b6006900810125000b005e00b4"
    "014901c70174003e013b01b7008e01c600ae0010009501ef004e00f201fd008500fd00f600a0016f0083008a0156009b"
    "013c01070167009801d001e9000301fe00bd0122008900d2018f00120033006a014200ed0170011b00e2014f01580131"
    "0147005d011301cd0079016101a50179009e01b400cc00220132001a00e80004018701ed0197003901bf01d70027018b"
    "00c6009c00d0014e006c003401f2006e00ca002500ba019100fe00130106002f01ad017201db00c0010b01d600f501ec"
    "010d0076011401ab0075010c01e401590054011f004b00c401be00f7002900a4000e01f00077004d017a0086008b00b3"
    "017100bf010e01040097015b0160016800d700bb006601ce00fc009201c5006f0016004a00a1013900af00f10190000a"
    "01aa0143017b0056018d016600d401fb014d0194019a008701f8012300a701b80141003c01f90140002a0155011a01a1"
    "019800d5012601af0061012e015701dc0072018a00aa0096011500ef0045007b008d01450053005f017800b2002e0020"
    "01d5003f01c901e701ac00440038001400b1016b00ab00b5005a018201c801d400180177006400cf006d010001990130"
    "015a0005012001bb01bd00e0004f00d6013f01c4012a0015000600ff019b00a6004300880050015f01e801210073017e"
    "00bc00c200c90173018901f5007401cc01e601a80195001f0041000d01ba0032003d01d1008000a8005701b901620148"
    "00d901050062007a002101ff0112010801c000a9011d01b001a600cd00f3005c0102005b01d9014401f600ad00a5003a"
    "01cb0136017f004600e1001e01dd00e6013701fa0185008c008f004001b500be0078000000ac0110015e0124000201bc"
    "00a200ea007001fc0116015c004c01c2")
_S9 = array("H", bytes(1024))
for _i in range(512):
    _S9[_i] = (_S9_BE[2 * _i] << 8) | _S9_BE[2 * _i + 1]
del _i, _S9_BE


def _fi(x, k):
    """RFC 2994 FI: 16-bit x, 16-bit key -> 16-bit."""
    d9 = x >> 7
    d7 = x & 0x7F
    d9 = _S9[d9] ^ d7
    d7 = (_S7[d7] ^ d9) & 0x7F
    d7 ^= k >> 9
    d9 ^= k & 0x1FF
    d9 = _S9[d9] ^ d7
    return (d7 << 9) | d9


def _fo(s, src, dst, ko, r):
    """s[dst:dst+2] ^= FO(s[src:src+2], round r). ko holds 7 subkeys per round:
    KO1, KI1, KO2, KI2, KO3, KI3, KO4."""
    b = r * 7
    t0 = s[src]
    t1 = s[src + 1]
    t0 = _fi(t0 ^ ko[b], ko[b + 1]) ^ t1
    t1 = _fi(t1 ^ ko[b + 2], ko[b + 3]) ^ t0
    t0 = _fi(t0 ^ ko[b + 4], ko[b + 5]) ^ t1
    t1 ^= ko[b + 6]
    s[dst] ^= t1
    s[dst + 1] ^= t0


def _fl(s, i, kl, k):
    # RFC FL: d1 ^= d0 & KLa; d0 ^= d1 | KLb
    d0 = s[i]
    d1 = s[i + 1] ^ (d0 & kl[2 * k])
    s[i] = d0 ^ (d1 | kl[2 * k + 1])
    s[i + 1] = d1


def _flinv(s, i, kl, k):
    d1 = s[i + 1]
    d0 = s[i] ^ (d1 | kl[2 * k + 1])
    s[i] = d0
    s[i + 1] = d1 ^ (d0 & kl[2 * k])


class Misty1:
    """MISTY1 with one 128-bit key (bytes of length 16, K[0] first)."""

    def __init__(self, key):
        if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
            raise StsError("key", "MISTY1 key must be 16 bytes")
        ek = array("H", bytes(32))
        for i in range(8):
            ek[i] = (key[2 * i] << 8) | key[2 * i + 1]
        for i in range(8):
            ek[i + 8] = _fi(ek[i], ek[(i + 1) & 7])
        self.ek = ek
        ko = array("H", bytes(2 * 56))
        for k in range(8):
            b = 7 * k
            ko[b] = ek[k]
            ko[b + 1] = ek[((k + 5) & 7) + 8]
            ko[b + 2] = ek[(k + 2) & 7]
            ko[b + 3] = ek[((k + 1) & 7) + 8]
            ko[b + 4] = ek[(k + 7) & 7]
            ko[b + 5] = ek[((k + 3) & 7) + 8]
            ko[b + 6] = ek[(k + 4) & 7]
        self._ko = ko
        kl = array("H", bytes(2 * 20))  # per FL index k: (AND key, OR key)
        for k in range(10):
            h = k >> 1
            if k & 1 == 0:
                kl[2 * k] = ek[h]
                kl[2 * k + 1] = ek[((h + 6) & 7) + 8]
            else:
                kl[2 * k] = ek[((h + 2) & 7) + 8]
                kl[2 * k + 1] = ek[(h + 4) & 7]
        self._kl = kl
        self._s = array("H", bytes(8))   # D0 hi, D0 lo, D1 hi, D1 lo

    def expanded_key(self):
        """K' = EK[8..15] as 16 bytes (RFC 2994 Appendix A check value)."""
        out = bytearray(16)
        for i in range(8):
            out[2 * i] = self.ek[8 + i] >> 8
            out[2 * i + 1] = self.ek[8 + i] & 0xFF
        return bytes(out)

    def _load(self, buf):
        s = self._s
        for i in range(4):
            s[i] = (buf[2 * i] << 8) | buf[2 * i + 1]

    def encrypt_into(self, buf):
        """Encrypt 8 bytes in ``buf`` (bytearray) in place. RFC 2994 §2.1."""
        self._load(buf)
        s = self._s
        ko = self._ko
        kl = self._kl
        for r in range(0, 8, 2):
            _fl(s, 0, kl, r)
            _fl(s, 2, kl, r + 1)
            _fo(s, 0, 2, ko, r)
            _fo(s, 2, 0, ko, r + 1)
        _fl(s, 0, kl, 8)
        _fl(s, 2, kl, 9)
        # ciphertext = D1 || D0
        buf[0] = s[2] >> 8
        buf[1] = s[2] & 0xFF
        buf[2] = s[3] >> 8
        buf[3] = s[3] & 0xFF
        buf[4] = s[0] >> 8
        buf[5] = s[0] & 0xFF
        buf[6] = s[1] >> 8
        buf[7] = s[1] & 0xFF

    def decrypt_into(self, buf):
        """Decrypt 8 bytes in ``buf`` (bytearray) in place."""
        s = self._s
        # D1 = first half, D0 = second half of the ciphertext
        s[2] = (buf[0] << 8) | buf[1]
        s[3] = (buf[2] << 8) | buf[3]
        s[0] = (buf[4] << 8) | buf[5]
        s[1] = (buf[6] << 8) | buf[7]
        ko = self._ko
        kl = self._kl
        _flinv(s, 0, kl, 8)
        _flinv(s, 2, kl, 9)
        for r in range(6, -1, -2):
            _fo(s, 2, 0, ko, r + 1)
            _fo(s, 0, 2, ko, r)
            _flinv(s, 0, kl, r)
            _flinv(s, 2, kl, r + 1)
        for i in range(4):
            buf[2 * i] = s[i] >> 8
            buf[2 * i + 1] = s[i] & 0xFF

