"""Security suite 0 (AES-128-GCM, 12-byte tag) on the host with the ``cryptography`` package:
decrypt a parsed ciphered APDU, build a general-glo-ciphering one (IEC 62056-5-3 §9.2.7, Green
Book security suite 0). Host only: the meter's own GCM is ``protocol.security.Suite0``'s."""
from protocol import axdr_client as axdr
from protocol import security_client as security


def decrypt(key, auth_key, system_title, ct):
    """AES-128-GCM (security suite 0) of a parsed ``security.Ciphered``: the plaintext APDU,
    or None when the tag does not verify. Uses the ``cryptography`` package (host only)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.exceptions import InvalidTag
    iv = security.nonce(system_title, ct.ic)
    sc = bytes((ct.sc,))
    payload = ct.payload
    if ct.sc & security.SC_AUTH:
        body, tag = payload[:-security.TAG_LEN], payload[-security.TAG_LEN:]
    else:
        body, tag = payload, None
    if ct.sc & security.SC_ENC:
        if tag is None:   # encryption only: GCM keystream (CTR starting at counter 2)
            ctr = modes.CTR(iv + b"\x00\x00\x00\x02")
            dec = Cipher(algorithms.AES(key), ctr).decryptor()
            return dec.update(body) + dec.finalize()
        dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=12)).decryptor()
        dec.authenticate_additional_data(sc + auth_key)
        try:
            return dec.update(body) + dec.finalize()
        except InvalidTag:
            return None
    # authentication only: GMAC over SC || AK || data
    dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=12)).decryptor()
    dec.authenticate_additional_data(sc + auth_key + body)
    try:
        dec.finalize()
    except InvalidTag:
        return None
    return body


def encrypt(key, auth_key, system_title, ic, plain, sc=0x30):
    """Build a general-glo-ciphering APDU (suite 0, SC 0x30 authenticated+encrypted) — for
    tests and bench tools."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    iv = security.nonce(system_title, ic)
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(bytes((sc,)) + auth_key)
    ctext = enc.update(plain) + enc.finalize()
    content = bytes((sc,)) + ic.to_bytes(4, "big") + ctext + enc.tag[:12]
    return bytes((security.GENERAL_GLO,)) + axdr.encode_length(len(system_title)) + \
        bytes(system_title) + axdr.encode_length(len(content)) + content
