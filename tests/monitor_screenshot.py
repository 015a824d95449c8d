"""
Make the docs' screenshot of the hub monitor from a real run.

Usage: ``python -m tests.monitor_screenshot docs/_static/monitor.png``

Starts a hub with its monitor (lockfile in a temporary directory), three
clients that exchange a few messages (one call fails, one is answered),
opens the page in headless chromium and saves a PNG of it.
"""

import os
import shutil
import sys
import tempfile

from twisted.internet import defer, task

from sampy_twisted import SAMPHubServer, SAMPIntegratedClient

from .chromium import Chromium

ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 20 20'>"
    "<circle cx='10' cy='10' r='8' fill='%23{}'/></svg>"
)


def _refuse(*args):
    raise ValueError("no image at that URL (example refusal)")


async def main(reactor, path):
    home = tempfile.mkdtemp(prefix="sampy-shot-")
    hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(home, ".samp"), monitor=True)
    await hub.start()
    clients = []
    chromium = Chromium(reactor, size=(1280, 800))
    try:
        await chromium.start()
        await chromium.navigate(hub.monitor_url)
        await chromium.wait_for("document.getElementById('status').textContent === 'live'")
        specs = [
            ("Table viewer", "Shows and joins tables", "1a5fb4"),
            ("Image viewer", "Displays FITS images", "c01c28"),
            ("sampy-twisted send", "Sends one message from the shell", "26a269"),
        ]
        for name, description, colour in specs:
            client = SAMPIntegratedClient(
                name=name,
                description=description,
                metadata={"samp.icon.url": ICON.format(colour), "samp.documentation.url": "https://example.org/"},
                reactor=reactor,
            )
            await client.connect(hub_params=hub.params)
            clients.append(client)
        table, image, sender = clients
        await table.bind_receive_notification("table.load.votable", lambda *a: None)
        await table.bind_receive_call("table.highlight.row", lambda *a: {})
        await image.bind_receive_call("image.load.fits", _refuse)
        await image.bind_receive_notification("coord.pointAt.sky", lambda *a: None)
        ids = {name: c.get_public_id() for (name, _, _), c in zip(specs, clients)}
        await sender.enotify(
            ids["Table viewer"], "table.load.votable", url="file:///data/hip_main.vot", name="Hipparcos"
        )
        await sender.ecall_and_wait(ids["Table viewer"], "table.highlight.row", "10",
                                    url="file:///data/hip_main.vot", row="7")
        await sender.enotify_all("coord.pointAt.sky", ra="83.8221", dec="-5.3911")
        await sender.ecall_and_wait(ids["Image viewer"], "image.load.fits", "10", url="file:///data/m42.fits")
        await sender.ecall_and_wait("hub", "samp.app.ping", "10")
        await chromium.wait_for("document.querySelectorAll('#log tbody tr').length >= 5 "
                                "&& document.querySelector('#log tr.failed')")
        await chromium.screenshot(path)
        print(f"saved {path}")
    finally:
        for client in clients:
            await client.disconnect()
        await chromium.stop()
        await hub.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1])))
