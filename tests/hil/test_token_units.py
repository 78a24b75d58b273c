"""What an STS credit token is worth on the meter's credit register (attack pass, session 13).

An electricity token carries 0.1 kWh units (IEC 62055-41). A register kept in 0.1 kWh
(``credit_unit: 1``) takes them as they are; a register kept in paise takes them at the rate the
tariff engine charges (its flat or first-slab rate: the ``tariff`` section, or an STS
SetTariffRate token, which outlives a power cut), not at a second figure of the configuration.
A profile may not switch the register's unit while it holds credit: the number would stay and
change its meaning by a factor of rate / 10.
"""
import pytest

from hil import identity
from host_tools import vend
from host_tools.client import DataAccessError, DlmsClient
from host_tools.meterctl import config as cmd_config
from protocol import axdr_client as axdr

# logs in with the test identity's secrets (hil.identity): not on a lab's own board
pytestmark = [pytest.mark.hil, pytest.mark.needs("test_identity")]

MGMT = dict(client_sap=1, password="12345678")
EPOCH = 1767225600                  # rig RTC at boot: 2026-01-01 00:00 UTC
GATEWAY, CREDIT = "0.0.19.40.0.255", "0.0.19.10.0.255"


def token(amount_01kwh=None, minutes=0, **kw):
    return vend.vend_token(identity.decoder_key(), algorithm="ea07", tables=str(identity.TABLES),
                           base_date=2014, amount=amount_01kwh, issued=EPOCH + 60 * minutes, rnd=3,
                           **kw)["token"]


def enter(c, digits):
    """IC 115 enter(token) -> (status, credit register after)."""
    assert c.action(115, GATEWAY, 1, axdr.Writer().octet_string(digits.encode()).getvalue())[0] == 0
    return c.get(115, GATEWAY, 6)[1][0][1], c.get(112, CREDIT, 2)[1]


def test_a_token_on_a_register_in_tenths_of_a_kwh_credits_its_amount(rig_factory):
    # it credited amount x rate / 10: 5.0 kWh became 3250 units = 325.0 kWh (65 times)
    rig = rig_factory(sts=True, config={"credit_unit": 1, "tariff_paise_per_kwh": 650})
    with DlmsClient(rig.port, **MGMT) as c:
        assert enter(c, token(50)) == (3, 50)
    rig.set_load(1000)
    m = rig.advance(3600)                               # 1 kWh: 10 units
    assert m.wh == 1000 and m.credit == 40


def test_a_token_is_credited_at_the_rate_the_tariff_charges(rig_factory):
    # it was credited at tariff_paise_per_kwh (650) while the tariff section charged 850: a
    # 1.0 kWh token ran out after 0.76 kWh
    rig = rig_factory(sts=True, config={"tariff": {"rate": 850}, "tariff_paise_per_kwh": 650})
    with DlmsClient(rig.port, **MGMT) as c:
        assert enter(c, token(10)) == (3, 850)
    rig.set_load(1000)
    m = rig.advance(3600)
    assert m.wh == 1000 and m.credit == 0


def test_a_set_tariff_rate_token_outlives_a_power_cut(rig_factory):
    rig = rig_factory(sts=True, config={"tariff_paise_per_kwh": 650})
    with DlmsClient(rig.port, **MGMT) as c:
        assert enter(c, token(token_class=2, subclass=2, value=900, minutes=1))[0] == 3
    rig.power_cut()
    rig.power_on()
    with DlmsClient(rig.port, **MGMT) as c:
        assert enter(c, token(10, minutes=2)) == (3, 900)
    rig.set_load(1000)
    m = rig.advance(3600)
    assert m.wh == 1000 and m.credit == 0               # charged at 900 after the cut too


def test_a_profile_cannot_switch_the_unit_of_a_register_holding_credit(rig_factory):
    # the register kept 3250 and read it as 325.0 kWh (worth Rs 2112 at 650 paise/kWh)
    rig = rig_factory(config={"credit_paise": 3250})
    with DlmsClient(rig.port, **MGMT) as c:
        with pytest.raises(DataAccessError):
            c.set(1, cmd_config.PROFILE_LN, 2, cmd_config.encode_value({"credit_unit": 1}))
        assert c.get(1, cmd_config.PROFILE_ERROR_LN, 2)[1].decode().startswith("credit_unit:")
        assert c.get(112, CREDIT, 2)[1] == 3250
    rig.set_load(1000)
    m = rig.advance(3600)
    assert m.credit == 3250 - 650                       # still paise


LIMITER_LN = "0.0.17.0.0.255"       # IC 71 limiter: attribute 3 threshold_active (0.1 W)
LIMITER = {"mpl_w": 3000, "trip_s": 10, "reclose_s": 60, "lockout_trips": 3, "window_s": 3600}


def test_a_max_power_limit_token_outlives_a_power_cut(rig_factory):
    # attack pass (session 14): the limit a SetMaximumPowerLimit token set was in RAM only: a
    # power cut brought back the configuration's 3000 W, and the token was "used"
    rig = rig_factory(sts=True, config={"limiter": LIMITER})
    with DlmsClient(rig.port, **MGMT) as c:
        assert enter(c, token(1000, minutes=1, token_class=2, subclass=0))[0] == 3
        assert c.get(71, LIMITER_LN, 3)[1] == 10000
    rig.power_cut()
    rig.power_on()
    with DlmsClient(rig.port, **MGMT) as c:
        assert c.get(71, LIMITER_LN, 3)[1] == 10000
        # a profile without a limiter section keeps it; one with its own replaces it
        c.set(1, cmd_config.PROFILE_LN, 2, cmd_config.encode_value({"tariff": {"rate": 700}}))
        assert c.get(71, LIMITER_LN, 3)[1] == 10000
        c.set(1, cmd_config.PROFILE_LN, 2, cmd_config.encode_value({"limiter": dict(LIMITER, mpl_w=2500)}))
        assert c.get(71, LIMITER_LN, 3)[1] == 25000
    rig.power_cut()
    rig.power_on()
    with DlmsClient(rig.port, **MGMT) as c:
        assert c.get(71, LIMITER_LN, 3)[1] == 25000


def test_a_token_the_tariff_cannot_credit_is_refused_and_keeps_its_tid(rig_factory):
    # attack pass (session 14): a free first slab (rate 0) made a 10 kWh token "accepted" for
    # 0 paise, and the TID was used up
    rig = rig_factory(sts=True, config={"tariff": {"slabs": [[200, 0], [0, 650]]}, "credit_paise": 5000})
    tok = token(100)
    with DlmsClient(rig.port, **MGMT) as c:
        assert enter(c, tok) == (6, 5000)
        assert bytes(axdr.to_python(c.get(115, GATEWAY, 4))[0]).startswith(b"overflow")
        assert enter(c, tok) == (6, 5000)                   # refused again, not "used"
        assert bytes(axdr.to_python(c.get(115, GATEWAY, 4))[0]).startswith(b"overflow")
