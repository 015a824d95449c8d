"""
Drive SAOImage DS9: show a FITS image, zoom, and read back what DS9 shows.

Usage: ``python drive_ds9.py image.fits`` with DS9 registered with the
running hub (found through ``SAMP_HUB`` or ``~/.samp``).
"""

import sys
from pathlib import Path

from twisted.internet import defer, task

from sampy_twisted import SAMP_STATUS_OK, SAMPIntegratedClient


async def ds9(client, ds9_id, mtype, **params):
    """Send DS9 one call; return its result map, or raise its error."""
    response = await client.ecall_and_wait(ds9_id, mtype, "30", **params)
    if response["samp.status"] != SAMP_STATUS_OK:
        raise RuntimeError(f"DS9 refused {mtype} {params}: {response['samp.error']['samp.errortxt']}")
    return response.get("samp.result", {})


async def main(reactor, path):
    client = SAMPIntegratedClient(name="drive-ds9", reactor=reactor)
    await client.connect()
    try:
        ds9_id = await client.find_client("SAOImageDS9")
        await ds9(client, ds9_id, "image.load.fits", url=Path(path).absolute().as_uri(), name="example")
        # ds9.set runs any DS9 command; ds9.get answers {"value": "..."}.
        await ds9(client, ds9_id, "ds9.set", cmd="zoom to 2")
        await ds9(client, ds9_id, "ds9.set", cmd="cmap heat")
        width, height = (await ds9(client, ds9_id, "ds9.get", cmd="fits size"))["value"].split()
        zoom = (await ds9(client, ds9_id, "ds9.get", cmd="zoom"))["value"].strip()
        print(f"DS9 shows {Path(path).name}: {width} x {height} pixels, zoom {zoom}")
    finally:
        await client.disconnect()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1])))
