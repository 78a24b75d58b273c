"""config.json and the values of its long keys ``meter.app`` reads at boot, in its order: their
names are constants of this module, loaded for the boot only (in ``meter.app`` each was a str
object for good on a board; in ``meter.settings`` they were loaded with every profile SET/GET)."""
from meter.settings import config


def boot(board):
    """(config.json dict, the values of its long keys in meter.app's order)."""
    c = config(board)
    g = c.get
    return c, (g("server_address", 1), g("physical_address"), g("tariff_paise_per_kwh", 650),
               g("credit_paise", 0), g("credit_unit"), g("metering_module", "pzem004t"), g("modbus_unit", 1),
               g("event_segments", 10), g("profile_period", 1800), g("demand_period", 900))
