"""Changes to a meter whose outcome is never ambiguous: applied, not applied, or (only when the
meter cannot be reached to check) unknown.

A change (a top-up, a relay command, a SET, a profile) is sent in one association. When its
answer arrives the outcome is that answer. When it does not (the line dropped the answer, the
link failed, Ctrl-C during the exchange), the request may or may not have been applied: the
meter acts on a complete request before it answers. So before sending, ``perform`` reads the
evidence the change leaves on the meter (``Change.evidence``: a recharge total, the relay's
control state, the attribute's value...), and after a doubt it reconnects (bounded attempts),
reads the evidence again and lets the change judge (``Change.judge``)::

    out = perform(lambda: DlmsClient(port, client_sap=1, password=pw), TopUp(50000))
    out.state        # APPLIED, NOT_APPLIED or UNKNOWN
    out.checked      # True when the state comes from the check after a doubt

Rules
- Nothing is sent until the evidence is read; a failure before that (no answer, port in use,
  Ctrl-C) propagates unchanged: the change was not sent.
- A ``DataAccessError`` answer means the meter refused: NOT_APPLIED (``refused``).
- Once the answer (or the check) has settled the state, nothing turns it back: failures and
  Ctrl-C in the reads that follow (``Change.details``) and in the release are ignored.
- UNKNOWN only when no attempt reached the meter, a second Ctrl-C stopped the check, or the
  evidence is not conclusive (``judge`` returned None; ``reason`` says why).

Public API: ``APPLIED``, ``NOT_APPLIED``, ``UNKNOWN``, ``Change`` (base class), ``Outcome``,
``perform(open_client, change, attempts=3, pause=0.5, on_doubt=None)``, ``SigintFlag``,
``NOT_SENT``, ``report(out, fields=None, reason=None)`` (a change's --json object, one shape).
"""

import signal
import threading
import time

from host_tools.client import DataAccessError, DlmsError

__all__ = ["APPLIED", "NOT_APPLIED", "UNKNOWN", "NOT_SENT", "Change", "Outcome", "perform", "SigintFlag",
           "report"]

APPLIED = "applied"
NOT_APPLIED = "not applied"
UNKNOWN = "unknown"
NOT_SENT = "not sent"          # stopped before sending (a report's state; ``perform`` never returns it)


class Change:
    """One change to a meter and the evidence that tells whether it happened. Subclasses
    override ``send`` and usually ``evidence``/``judge``; ``what`` names it in messages."""

    what = "change"

    def evidence(self, c):
        """Read what tells, later, whether the change happened -> a JSON-able dict. Missing
        objects give None values; link errors propagate (the meter is not reachable)."""
        return {}

    def guard(self, c, before):
        """Last look before sending (``before`` = the evidence); raise to stop. Default: go."""

    def send(self, c, before):
        """Send the change on the associated client ``c`` -> a result (JSON-able). Raises
        DataAccessError when the meter refuses, other DlmsError/KeyboardInterrupt on doubt."""
        raise NotImplementedError

    def settle(self, result):
        """State of an answered change: APPLIED by default (a token may answer "rejected")."""
        return APPLIED

    def why_not(self, result):
        """A sentence for an answered change that ``settle`` found NOT_APPLIED."""
        return "%s answered but not applied" % self.what

    def judge(self, before, after):
        """Compare evidence before/after a doubt -> APPLIED, NOT_APPLIED or None (cannot tell)."""
        return None

    def details(self, c, before, result):
        """Best-effort reads after a settled change (credit after, relay state) -> dict."""
        return {}

    def judged(self, after):
        """Extra fields for the report from the evidence read by the check (default: none)."""
        return {}


class Outcome:
    """What ``perform`` found. ``state`` APPLIED/NOT_APPLIED/UNKNOWN; ``result`` what ``send``
    returned (None after a doubt); ``before``/``after`` the evidence (``after`` only after a
    doubt); ``refused`` the meter's DataAccessError; ``doubt`` the error or interruption that
    made the answer missing (text); ``checked`` whether the state comes from a check;
    ``attempts`` checks tried; ``reason`` a sentence for UNKNOWN/NOT_APPLIED; ``details``."""

    def __init__(self, state, before, result=None, refused=None, doubt=None, checked=False,
                 after=None, reason=None, attempts=0, details=None):
        self.state = state
        self.before = before
        self.result = result
        self.refused = refused
        self.doubt = doubt
        self.checked = checked
        self.after = after
        self.reason = reason
        self.attempts = attempts
        self.details = details or {}

    def as_dict(self):
        """A JSON-able summary: outcome, checked, doubt, reason, evidence."""
        return {"outcome": self.state, "checked": self.checked, "doubt": self.doubt,
                "reason": self.reason, "evidence_before": self.before, "evidence_after": self.after}


def report(out, fields=None, reason=None):
    """A change's --json object, the same keys whatever happened: the outcome's (``as_dict``),
    then the command's own, ``fields(out)``. ``out`` None: it stopped before sending (``reason``
    says why): outcome "not sent" and ``fields(None)`` (what is known without the meter, null
    elsewhere). Without ``fields`` the command's keys are what it read after (``out.details``)."""
    if out is None:
        obj = {"outcome": NOT_SENT, "checked": False, "doubt": None, "reason": reason,
               "evidence_before": None, "evidence_after": None}
    else:
        obj = out.as_dict()
    obj.update(fields(out) if fields else (out.details if out is not None else None) or {})
    if out is None:
        obj.update(outcome=NOT_SENT, reason=reason)    # a command's own "reason" key gives way
    return obj


def _quiet_close(c, exc=None):
    """Release/close ``c`` ignoring every failure, Ctrl-C included (the state is settled) ->
    True when a Ctrl-C (or the client's ``cancel``) interrupted it."""
    try:
        c.__exit__(None if exc is None else type(exc), exc, None)
        return False
    except BaseException as e:
        try:
            c.close()
        except BaseException:
            pass
        return isinstance(e, KeyboardInterrupt)


def _doubt_text(e):
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (Ctrl-C) after the request was sent"
    return str(e) or e.__class__.__name__


def perform(open_client, change, attempts=3, pause=0.5, on_doubt=None, sleep=time.sleep):
    """Apply ``change`` with a client from ``open_client()`` (a fresh, unopened DlmsClient per
    call) and find its outcome (module docstring). ``attempts`` bounds the reconnections of the
    check, ``pause`` seconds between them; ``on_doubt(text)`` is called once when the answer is
    missing, before the check. Returns an ``Outcome``. Raises whatever stops it before the
    change is sent (PortError, LinkTimeout, AssociationRejected, KeyboardInterrupt, the guard's
    exception): then nothing was sent."""
    c = open_client()
    c.__enter__()                              # connects; aborts and raises on failure
    try:
        before = change.evidence(c)
        change.guard(c, before)
    except BaseException as e:              # a link failure aborts; a refusal releases cleanly
        _quiet_close(c, e if isinstance(e, (DlmsError, KeyboardInterrupt)) else None)
        raise
    out = doubt = None
    try:
        result = change.send(c, before)
        out = Outcome(change.settle(result), before, result=result)
        if out.state == NOT_APPLIED:
            out.reason = change.why_not(result)
    except DataAccessError as e:
        out = Outcome(NOT_APPLIED, before, refused=e, reason=str(e))
    except (Exception, KeyboardInterrupt) as e:   # DlmsError, Ctrl-C, anything: the answer is missing
        doubt = e
    if out is None:
        return _after_doubt(c, open_client, change, before, doubt, attempts, pause, on_doubt, sleep)
    try:
        out.details = change.details(c, before, out.result) or {}
    except (Exception, KeyboardInterrupt):
        pass
    _quiet_close(c, out.refused)
    return out


def _after_doubt(c, open_client, change, before, doubt, attempts, pause, on_doubt, sleep):
    text = _doubt_text(doubt)
    try:
        if on_doubt is not None:          # at once (a Ctrl-C: the user sees it was taken), then
            on_doubt(text)                # abort the link (short wait; a stopped meter answers nothing)
        if _quiet_close(c, doubt):        # Ctrl-C twice while closing: the check is stopped too
            raise KeyboardInterrupt
        return _check(open_client, change, before, text, attempts, pause, sleep)
    except KeyboardInterrupt:
        return Outcome(UNKNOWN, before, doubt=text, reason="interrupted again while checking")


def _check(open_client, change, before, doubt, attempts, pause, sleep):
    """Reconnect and read the evidence again, up to ``attempts`` times."""
    last = None
    for n in range(1, max(1, attempts) + 1):
        if n > 1:
            sleep(pause)
        c = open_client()
        try:
            c.__enter__()
        except DlmsError as e:
            last = e
            continue
        try:
            after = change.evidence(c)
        except DlmsError as e:
            _quiet_close(c, e)
            last = e
            continue
        except BaseException as e:
            _quiet_close(c, e)
            raise
        _quiet_close(c)
        state = change.judge(before, after)
        out = Outcome(state or UNKNOWN, before, doubt=doubt, checked=True, after=after, attempts=n)
        if state is None:
            out.reason = "the meter's evidence does not tell (before %s, after %s)" % (before, after)
        out.details = change.judged(after) or {}
        return out
    return Outcome(UNKNOWN, before, doubt=doubt, checked=False, attempts=attempts,
                   reason="the meter could not be reached to check (%s)" % last)


class SigintFlag:
    """Ctrl-C as a flag: while installed (``with SigintFlag() as f``), SIGINT is counted instead
    of raising KeyboardInterrupt anywhere; ``take()`` returns True once per Ctrl-C (pass it as
    the client's ``cancel``, so an exchange stops at a known point), once per two after
    ``patient()``. Installed only in the main
    thread (elsewhere it counts nothing and changes nothing). ``count`` = Ctrl-Cs seen.
    ``ignore_after=True`` leaves SIGINT ignored on exit instead of restoring the old handler:
    for a process that ends with the command (Python resets handlers to the default action at
    finalization, so a late Ctrl-C would otherwise kill it with -2 after a reported outcome).
    Nested (installed while another flag is): each Ctrl-C counts in both, and the outer flag is
    back on exit whatever ``ignore_after`` says (a run of several changes, each with its own flag,
    sees every Ctrl-C of the run in its own)."""

    def __init__(self, ignore_after=False):
        self.count = 0
        self.ignore_after = ignore_after
        self.needed = 1              # Ctrl-Cs that make one ``take`` (2 while a check runs)
        self._taken = 0
        self._saved = None
        self._outer = None           # the flag this one is nested in

    def _handler(self, signum, frame):
        self.count += 1
        if self._outer is not None:
            self._outer._handler(signum, frame)

    def take(self):
        """True if ``needed`` Ctrl-Cs arrived since the last ``take`` (consumes them)."""
        if self.count - self._taken >= self.needed:
            self._taken = self.count
            return True
        return False

    def patient(self):
        """From now on one Ctrl-C is not enough: ``take`` needs two (a check after a doubt is
        short and bounded; one Ctrl-C during it must not leave the outcome unknown). Ctrl-Cs not
        yet taken count (a second press right after the one that interrupted the exchange)."""
        self.needed = 2

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._saved = signal.signal(signal.SIGINT, self._handler)
            outer = getattr(self._saved, "__self__", None)
            self._outer = outer if isinstance(outer, SigintFlag) else None
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            ignore = self.ignore_after and self._outer is None
            signal.signal(signal.SIGINT, signal.SIG_IGN if ignore else self._saved)
            self._saved = self._outer = None
        return False
