"""
twistd plugins of sampy_twisted: ``twistd samp-client`` and ``twistd
samp-hub``.

Only lazy service makers live here: ``sampy_twisted._tap`` is imported when
one of them is used, not whenever twistd lists its plugins.
"""

from twisted.application.service import ServiceMaker

samp_client = ServiceMaker(
    "sampy_twisted SAMP client",
    "sampy_twisted._tap",
    "A SAMP client that stays registered with a hub, finding or starting one.",
    "samp-client",
)

samp_hub = ServiceMaker(
    "sampy_twisted SAMP hub",
    "sampy_twisted._tap.hub",
    "A SAMP hub (Standard Profile).",
    "samp-hub",
)
