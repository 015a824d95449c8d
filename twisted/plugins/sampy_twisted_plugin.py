"""
twistd plugins of sampy_twisted: ``twistd samp-client`` and ``twistd
samp-hub``.

Only lazy service makers live here, one tap module per plugin
(``sampy_twisted._tap_client``, ``sampy_twisted._tap_hub``), imported when its
plugin is used, not whenever twistd lists its plugins.
"""

from twisted.application.service import ServiceMaker

samp_client = ServiceMaker(
    "sampy_twisted SAMP client",
    "sampy_twisted._tap_client",
    "A SAMP client that stays registered with a hub, finding or starting one.",
    "samp-client",
)

samp_hub = ServiceMaker(
    "sampy_twisted SAMP hub",
    "sampy_twisted._tap_hub",
    "A SAMP hub (Standard Profile).",
    "samp-hub",
)
