"""What the in-home display computes: tariff costs, the good-time card, best times, periods.

Pure modules (lib layer): `tariff.py`, `goodtime.py`, `periods.py`. Stores (store layer):
`household.py` (household settings and tariff in MariaDB), `live.py` (the live snapshot the
page polls). The web side (`hub/web/pages/`) only formats what these return.
"""
