"""``meterctl topup``: enter a 20-digit STS token over the meter's serial port (IC 115 enter).

The token goes to the token gateway 0.0.19.40.0.255 (IC 115, method 1 enter, octet-string of the
20 ASCII digits) in a management association (LLS). The meter's outcome is read back from the
gateway's status (attribute 6, IC 115 token_status_code) and descriptions (attribute 4, the STS
reason: used, old, crc, key_expired, format, locked_out ...). Exit code 0 only when the token
was accepted (status 3 tokenExecutionOk, or 2 for the first half of a key-change pair);
1 on rejection, 3 when the meter does not answer, 4 when the answer was lost and the meter could
not be reached to check. A lost answer is checked on the meter: the gateway keeps the last token
entered (attribute 2) and its status (``host_tools.changes.Token``). Entering a token again is
always safe: a meter refuses a token it has already taken (USED).
"""
import click

from host_tools import creditunit
from host_tools import objects
from host_tools.changes import Token
from host_tools.meterctl.common import CONTEXT, EXIT_CODES_HELP, emit_json, link_options, run_change

OBIS_GATEWAY = objects.TOKEN_GATEWAY.obis
OBIS_CREDIT = objects.CREDIT.obis
OBIS_ACCOUNT = objects.ACCOUNT.obis
STATUS_TEXT = {0: "formatOk", 1: "authenticationOk", 2: "validationOk", 3: "tokenExecutionOk",
               4: "tokenFormatFailure", 5: "authenticationFailure", 6: "validationResultFailure",
               7: "tokenExecutionResultFailure", 8: "tokenReceived"}
REASON_TEXT = {"used": "USED: this token was already entered in this meter",
               "old": "OLD: the token is older than every token this meter remembers",
               "crc": "CRC/authentication failure: wrong meter, wrong key or a mistyped digit",
               "format": "format error: not a valid 20-digit token",
               "key_expired": "key expired (KEN): the vending key is no longer valid for this meter",
               "locked_out": "keypad locked out after repeated wrong tokens: retry in 10 s (the lock doubles "
                             "with each further wrong token, up to 21 min 20 s by default)",
               "wrong_class": "token class not accepted",
               "wrong_subclass": "token subclass not supported by this meter",
               "no_sts_key": "this meter has no STS decoder key provisioned (meterctl provision)"}


def _reason_text(reason, detail):
    if reason == "locked_out" and detail.startswith("wait"):   # the meter says how long
        return "keypad locked out after repeated wrong tokens: %s (the lock doubles with each " \
               "further wrong token)" % detail.replace("wait", "retry in", 1)
    text = REASON_TEXT.get(reason, reason)
    return "%s (%s)" % (text, detail) if detail else text


def parse_digits(parts):
    """Join the token groups; raise click.BadParameter unless it is exactly 20 digits."""
    text = "".join(parts).replace("-", "").replace(" ", "")
    if len(text) != 20 or not text.isdigit():
        raise click.BadParameter("a token is exactly 20 digits (got %r)" % "".join(parts), param_hint="TOKEN")
    return text


@click.command("topup", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.argument("token", nargs=-1, required=True)
@link_options(write=True)
def topup(token, **kw):
    """Enter a 20-digit STS token (IEC 62055-41) into the meter over its serial port.

    TOKEN may be given in groups of four as printed on a receipt. Shows the credit before and
    after, or the reason the meter rejected the token.

    \b
    Examples:
      meterctl topup --port /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json 5104 3465 4434 2085 6213
      meterctl vend ... --json | jq -r .token | xargs meterctl topup -p /dev/ttyUSB0 --meter PPM0000123
    """
    digits = parse_digits(token)

    def result_of(res):
        """(status code, reason word, detail): the meter's description is the reason word, then
        what it knows more ("locked_out: wait 6 s")."""
        r = (res.result if not res.checked else res.details) or {}
        r = r if isinstance(r, dict) else {}
        code = r.get("status")
        reasons = r.get("reasons") or []
        reason, _, detail = (reasons[0] if reasons else STATUS_TEXT.get(code, str(code))).partition(":")
        return code, reason, detail.strip()

    def fields(res, accepted=False):
        """The token's JSON keys, the same whatever the outcome (None where not known)."""
        code, reason, detail = result_of(res)
        before = res.before or {}
        unit = before.get("credit_unit")
        out = {"token": digits, "accepted": accepted, "status": code,
               "status_text": STATUS_TEXT.get(code, "?"), "reason": reason, "detail": detail,
               "credit_unit": unit, "credit_unit_note": before.get("credit_unit_note"),
               "credit_before": before.get("credit"), "credit_after": (res.details or {}).get("credit_after")}
        for key in ("credit_before", "credit_after"):
            out[key + "_paise"] = creditunit.paise_or_none(out[key], unit)
        return out

    def show(res):
        out = fields(res, True)
        before, after, reason = out["credit_before"], out["credit_after"], out["reason"]
        if kw["as_json"]:
            emit_json(dict(res.as_dict(), **out))      # "reason": the token's (as when refused)
            return
        if reason == "key_change_pending":
            click.echo("Key-change token accepted: enter the next section.")
        else:
            click.echo("Token accepted.")
        unit = out["credit_unit"]
        click.echo("Credit: %s -> %s" % (creditunit.amount(before, unit), creditunit.amount(after, unit)))
        if out["credit_unit_note"]:
            click.echo("Note: %s" % out["credit_unit_note"])

    def rejected(res):
        if res.refused is not None or (res.checked and res.details.get("status") is None):
            return None
        code, reason, detail = result_of(res)
        if res.checked and res.after.get("token") != digits:
            return None                          # never reached the gateway: the generic text
        if code == 8:      # received, never judged (e.g. the meter ran out of memory): not applied
            return ("token not applied: the meter received it but did not process it (IC 115 status "
                    "8 tokenReceived); enter it again")
        return "token rejected: %s (IC 115 status %s %s)" % (
            _reason_text(reason, detail), code, STATUS_TEXT.get(code, "?"))

    run_change(kw, Token(digits), show, refused=rejected, fields=fields,
               hint=lambda res: "meterctl get %s 2 --class 115 --port %s --password ... (the last "
                                "token entered) and attribute 6 (its status); or enter the token "
                                "again: the meter refuses it as USED if it was taken" % (OBIS_GATEWAY, kw["port"]))
