"""``meterctl topup``: enter 20-digit STS tokens over the meter's serial port (IC 115 enter).

The token goes to the token gateway 0.0.19.40.0.255 (IC 115, method 1 enter, octet-string of the
20 ASCII digits) in a management association (LLS). The meter's outcome is read back from the
gateway's status (attribute 6, IC 115 token_status_code) and descriptions (attribute 4, the STS
reason: used, old, crc, key_expired, format, locked_out ...). Exit code 0 only when the token
was accepted (status 3 tokenExecutionOk, or 2 for the first half of a key-change pair);
1 on rejection, 3 when the meter does not answer, 4 when the answer was lost and the meter could
not be reached to check. A lost answer is checked on the meter: the gateway keeps the last token
entered (attribute 2) and its status (``host_tools.changes.Token``). Entering a token again is
always safe: a meter refuses a token it has already taken (USED).

Several tokens (a key-change pair, a receipt of several) are entered in turn, each in its own
association, one outcome line each, stopping at the first one not accepted (its exit code).
Ctrl-C anywhere in such a run stops it (``_enter_each``): the token in flight is finished or
checked on the meter as a single one is, then one ``meterctl: error:`` line says per token
("token 2 of 3 (digits)") applied, not applied or not sent, exit 130 (4 when the token in flight
could not be checked); --json lists every token, those not sent as ``"outcome": "not sent"``.
What an accepted token did is read from the meter before and after (``host_tools.changes.Token``):
the credit (class 0, ClearCredit), the max power limit (IC 71 threshold), the tariff rate (IC 113
unit charge); a class 1 test token is decoded on the host (no key needed) to name its tests.
"""
import click

from host_tools import creditunit
from host_tools import objects
from host_tools import vend as V
from host_tools.changes import Token
from host_tools.meterctl.common import CONTEXT, EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_UNKNOWN, PROCESS, emit_json, \
    fail, link_options, refusal_name, run_change
from host_tools.outcome import APPLIED, NOT_APPLIED, SigintFlag, report
from protocol import sts

OBIS_GATEWAY = objects.TOKEN_GATEWAY.obis
OBIS_CREDIT = objects.CREDIT.obis
OBIS_ACCOUNT = objects.ACCOUNT.obis
STATUS_TEXT = {0: "formatOk", 1: "authenticationOk", 2: "validationOk", 3: "tokenExecutionOk",
               4: "tokenFormatFailure", 5: "authenticationFailure", 6: "validationResultFailure",
               7: "tokenExecutionResultFailure", 8: "tokenReceived"}
# what the meter does (meter.tokens: a token in the lock-out is refused and counted nowhere)
_LOCK_RULE = ("tokens entered during the lock-out are refused and do not count; each wrong token after "
              "it doubles the next lock, up to 21 min 20 s by default")
REASON_TEXT = {"used": "USED: this token was already entered in this meter",
               "old": "OLD: the token is older than every token this meter remembers",
               "crc": "CRC/authentication failure: wrong meter, wrong key or a mistyped digit",
               "format": "format error: not a valid 20-digit token",
               "key_expired": "key expired (KEN): the vending key is no longer valid for this meter",
               "locked_out": "keypad locked out after repeated wrong tokens: retry in 10 s (%s)" % _LOCK_RULE,
               "wrong_class": "token class not accepted",
               "wrong_subclass": "token subclass not supported by this meter",
               "overflow": "OVERFLOW: the credit register cannot take this amount (at the limit, or "
                           "a tariff rate of 0 paise/kWh: an energy token then converts to nothing)",
               "no_sts_key": "this meter has no STS decoder key provisioned (meterctl provision)"}


# a key-change section kept pending (IC 115 status 2); "restarted": it was another set's than the
# sections pending before it, which the meter dropped (docs/CONTRACTS.md "STS token acceptance")
_PENDING = ("key_change_pending", "key_change_restarted")


def _reason_text(reason, detail):
    detail = detail or ""
    if reason == "locked_out" and detail.startswith("wait"):   # the meter says how long
        return "keypad locked out after repeated wrong tokens: %s (%s)" % (detail.replace("wait", "retry in", 1),
                                                                             _LOCK_RULE)
    text = REASON_TEXT.get(reason, reason)
    return "%s (%s)" % (text, detail) if detail else text


def parse_tokens(parts):
    """The tokens in TOKEN arguments: each exactly 20 digits (spaces and dashes allowed), given
    whole (an argument of 20, 40, ... digits) or in groups (a receipt's groups of four, which
    must add up to 20 before the next token starts). Raises click.BadParameter."""
    tokens, buf = [], ""
    for part in parts:
        d = part.replace("-", "").replace(" ", "")
        if not d.isdigit():
            raise click.BadParameter("a token is 20 digits (spaces and dashes allowed): %r is not" % part,
                                     param_hint="TOKEN")
        if not buf and len(d) % 20 == 0:
            tokens += [d[k:k + 20] for k in range(0, len(d), 20)]
            continue
        buf += d
        if len(buf) > 20:
            break
        if len(buf) == 20:
            tokens.append(buf)
            buf = ""
    if buf:
        raise click.BadParameter("a token is exactly 20 digits (got %r)" % " ".join(parts), param_hint="TOKEN")
    return tokens


def parse_digits(parts):
    """One token from TOKEN arguments (``parse_tokens``); click.BadParameter unless exactly one."""
    tokens = parse_tokens(parts)
    if len(tokens) != 1:
        raise click.BadParameter("a token is exactly 20 digits (got %d)" % (20 * len(tokens)), param_hint="TOKEN")
    return tokens[0]


def _class_of(digits):
    try:
        return sts.split_token(digits)[0]
    except (sts.StsError, ValueError):
        return None


def effect(digits, reason, before, after, previous=None):
    """What an accepted token did, from the meter's values ``before``/``after`` (``credit``,
    ``mpl_w``, ``rate``; ``host_tools.changes.Token``) -> (sentence, JSON fields). ``previous``:
    the reason of the token entered just before in the same call (a key change's first half)."""
    cls = _class_of(digits)
    b, a = before or {}, after or {}
    unit = b.get("credit_unit")
    out = {"token_class": cls, "tests": None,
           "mpl_before_w": b.get("mpl_w"), "mpl_after_w": a.get("mpl_w"),
           "rate_before_paise_per_kwh": b.get("rate"), "rate_after_paise_per_kwh": a.get("rate")}
    if reason == "key_change_pending":
        return "enter the next section (key change)", out
    if reason == "key_change_restarted":
        return ("a section of another key-change set than the sections pending before it (dropped): "
                "enter this set's next section (key change)", out)
    if cls == sts.CLASS_NON_MERIT:
        try:
            out["tests"] = V.decode_token(digits)["tests"]
        except (V.VendError, KeyError):
            out["tests"] = []
        return ("test token (class 1): %s; nothing changes on the meter"
                % (", ".join(out["tests"]) or "no known test"), out)
    credit = "credit %s -> %s" % (creditunit.amount(b.get("credit"), unit), creditunit.amount(a.get("credit"), unit))
    if cls != sts.CLASS_MANAGEMENT:
        return credit, out
    said = []
    if a.get("mpl_w") is not None and a.get("mpl_w") != b.get("mpl_w"):
        said.append("max power limit set to %d W (was %s)" % (a["mpl_w"], _w(b.get("mpl_w"))))
    if a.get("rate") is not None and a.get("rate") != b.get("rate"):
        said.append("tariff rate set to %d paise/kWh (was %s)" % (a["rate"], b.get("rate")))
    if a.get("credit") == 0 and b.get("credit") not in (0, None):
        said.append("credit cleared (was %s)" % creditunit.amount(b["credit"], unit))
    if said:
        return "; ".join(said), out
    if previous in _PENDING:
        return "key change complete: the meter takes tokens of the new key from now on", out
    return ("management token (class 2): nothing the meter shows changed (max power limit %s, tariff "
            "rate %s paise/kWh, credit %s): it set a value already in force, or it was the last "
            "section of a key change, a clear tamper, phase unbalance or water factor token"
            % (_w(a.get("mpl_w")), a.get("rate"), creditunit.amount(a.get("credit"), unit))), out


def _w(watts):
    return "%d W" % watts if watts is not None else "-"


@click.command("topup", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.argument("token", nargs=-1, required=True)
@link_options(write=True)
def topup(token, **kw):
    """Enter 20-digit STS tokens (IEC 62055-41) into the meter over its serial port.

    TOKEN may be given in groups of four as printed on a receipt. Several tokens (a key-change
    pair) are entered in turn, stopping at the first one the meter does not accept. Says what
    each token did: the credit before and after; for a management token (class 2) the max power
    limit or tariff rate set or the credit cleared; for a test token (class 1) its tests; or the
    reason the meter rejected it. With --json and several tokens: a JSON array, one object each.

    Ctrl-C during several tokens stops after the token in flight (its outcome checked on the
    meter if its answer was not in): one error line names each token applied, not applied or not
    sent (exit 130; 4 if the token in flight could not be checked), and --json lists them all,
    those not sent as {"token": ..., "outcome": "not sent"}. Enter the ones not sent again.

    \b
    Examples:
      meterctl topup --port /dev/pts/5 --key-file ~/.local/state/meterctl/emulator-keys.json 5104 3465 4434 2085 6213
      meterctl topup -p /dev/ttyUSB0 --meter PPM0000123 <key-change token 1> <key-change token 2>
      meterctl vend ... --json | jq -r .token | xargs meterctl topup -p /dev/ttyUSB0 --meter PPM0000123
    """
    tokens = parse_tokens(token)
    if len(tokens) == 1:
        _enter(kw, tokens[0], None, None)
        return
    _enter_each(kw, tokens)


class _Stopped(Exception):
    """Ctrl-C came while a token was entered that was not applied: ``args`` (what the error line
    says of it, exit code)."""


def _enter_each(kw, tokens):
    """Enter ``tokens`` in turn under one SigintFlag (each token's own flag nests in it): after
    a Ctrl-C no further token is sent, and one error line says what became of each (module
    docstring)."""
    done = []                   # --json: one array, printed also when a token stops the run
    kw["json_sink"] = done.append if kw["as_json"] else None
    kw["raise_interrupt"] = True                  # Ctrl-C before a token is sent: reported here
    said, code, n, stopped = [], EXIT_INTERRUPTED, 0, False   # said: the error line, a phrase per token
    try:
        with SigintFlag(ignore_after=PROCESS["owned"]) as stop:
            seen = {}
            while n < len(tokens) and not stop.count:
                label = "token %d of %d (%s)" % (n + 1, len(tokens), tokens[n])
                try:
                    seen = _enter(kw, tokens[n], seen.get("reason"), label, stop)
                except KeyboardInterrupt:         # in the association, before sending: not sent
                    break
                except _Stopped as e:
                    (text, code), n, stopped = e.args, n + 1, True
                    said.append(text)
                    break
                n += 1
                said.append("%s applied%s%s" % (label, " (checked on the meter)" if seen.get("checked") else "",
                                                " (a key change's first half: enter the next token)"
                                                if seen.get("reason") in _PENDING else ""))
        if n == len(tokens) and not stopped:      # every token applied (a late Ctrl-C stopped nothing)
            return
        for k in range(n, len(tokens)):
            said.append("token %d of %d (%s) not sent" % (k + 1, len(tokens), tokens[k]))
            done.append(report(None, lambda _: token_fields(tokens[k], None),
                               "interrupted (Ctrl-C) before it was sent"))
        fail("interrupted (Ctrl-C): %s" % "; ".join(said), code)
    finally:
        if kw["as_json"]:
            emit_json(done)


def _result_of(res):
    """(status code, reason word, detail) of an entered token: the meter's description is the
    reason word, then what it knows more ("locked_out: wait 6 s"); a refused ACTION's reason is
    the data-access-result's name ("temporary-failure"); None where not known."""
    if res is None:
        return None, None, None
    if res.refused is not None:
        return None, refusal_name(res), None
    r = (res.result if not res.checked else res.details) or {}
    r = r if isinstance(r, dict) else {}
    code = r.get("status")
    reasons = r.get("reasons") or []
    word = reasons[0] if reasons else STATUS_TEXT.get(code)
    if word is None:
        return code, None, None
    reason, _, detail = word.partition(":")
    return code, reason, detail.strip() or None


_ACCEPTED = {APPLIED: True, NOT_APPLIED: False}     # unknown, not sent: null


def token_fields(digits, res, previous=None):
    """A token's JSON keys, the same whatever the outcome (None where not known; ``res`` None:
    not sent): "accepted" true/false when the meter's answer or the check tells, else null."""
    code, reason, detail = _result_of(res)
    before = (res.before if res is not None else None) or {}
    details = (res.details if res is not None else None) or {}
    accepted = _ACCEPTED.get(res.state) if res is not None else None
    text, facts = effect(digits, reason, before, details.get("after"), previous)
    unit = before.get("credit_unit")
    out = dict({"token": digits, "accepted": accepted, "status": code,
                "status_text": STATUS_TEXT.get(code), "reason": reason, "detail": detail,
                "credit_unit": unit, "credit_unit_note": before.get("credit_unit_note"),
                "credit_before": before.get("credit"), "credit_after": details.get("credit_after"),
                "effect": text if accepted else None}, **facts)
    for key in ("credit_before", "credit_after"):
        out[key + "_paise"] = creditunit.paise_or_none(out[key], unit)
    return out


def _enter(kw, digits, previous, label, stop=None):
    """Enter one token (``run_change``: exits unless accepted); returns {"reason": its reason
    word, "checked": whether its outcome took a check}. ``stop``: the run's SigintFlag; after a
    Ctrl-C a token not applied raises ``_Stopped`` instead of exiting."""
    seen = {}

    def fields(res):
        out = token_fields(digits, res, previous)
        if res is not None:
            seen["reason"], seen["checked"] = out["reason"], res.checked
        return out

    def show(res):
        out = fields(res)
        pending = out["reason"] in _PENDING
        if label:
            cut = stop is not None and stop.count and not res.details     # Ctrl-C in the reads after it
            click.echo("%s: %s: %s%s." % (label[0].upper() + label[1:], "key-change accepted" if pending else
                                          "accepted", out["effect"], " (not read after it: Ctrl-C)" if cut else ""))
        elif pending:
            click.echo("Key-change token accepted: enter the next section.")
        else:
            click.echo("Token accepted.")
            unit = out["credit_unit"]
            click.echo("Credit: %s -> %s" % (creditunit.amount(out["credit_before"], unit),
                                             creditunit.amount(out["credit_after"], unit))
                       if out["token_class"] == sts.CLASS_TRANSFER else out["effect"][0].upper() + out["effect"][1:] + ".")
        if out["credit_unit_note"]:
            click.echo("Note: %s" % out["credit_unit_note"])

    def rejected(res):
        if res.refused is not None or (res.checked and res.details.get("status") is None):
            return None
        code, reason, detail = _result_of(res)
        if res.checked and res.after.get("token") != digits:
            return None                          # never reached the gateway: the generic text
        if code == 8:      # received, never judged (e.g. the meter ran out of memory): not applied
            text = ("token not applied: the meter received it but did not process it (IC 115 status "
                    "8 tokenReceived); enter it again")
        else:
            text = "token rejected: %s (IC 115 status %s %s)" % (
                _reason_text(reason, detail), code, STATUS_TEXT.get(code, "?"))
        return "%s: %s" % (label, text) if label else text

    def hint(res):
        return ("meterctl get %s 2 --class 115 --port %s --password ... (the last token entered) and "
                "attribute 6 (its status): applied if attribute 2 is this token and attribute 6 reads "
                "enum 3 (tokenExecutionOk); or enter the token again: the meter refuses it as USED if it "
                "was taken" % (OBIS_GATEWAY, kw["port"]))

    def interrupted(res):
        """After a Ctrl-C in a run: a token not applied ends the run here (``_Stopped``)."""
        if stop is None or not stop.count or res.state == APPLIED:
            return
        if kw["as_json"]:
            kw["json_sink"](report(res, fields))
        if res.state == NOT_APPLIED:
            raise _Stopped(rejected(res) or "%s not applied (checked on the meter: no trace of it)" % label,
                           EXIT_INTERRUPTED)
        raise _Stopped("%s: outcome unknown: %s; check with: %s" % (label, res.reason, hint(res)), EXIT_UNKNOWN)

    change = Token(digits)
    change.what = label or change.what            # "interrupted after sending: token 2 of 3 (...)"
    run_change(kw, change, show, refused=rejected, fields=fields, hint=hint, finish=interrupted)
    return seen
