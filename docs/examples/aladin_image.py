"""
Show a FITS image in Aladin, run an Aladin script, and ask where it looks.

Usage: ``python aladin_image.py image.fits`` with Aladin registered with the
running hub (Aladin finds it only through ``~/.samp``).
"""

import sys
from pathlib import Path

from twisted.internet import defer, task

from sampy_twisted import SAMP_STATUS_OK, SAMPIntegratedClient


async def aladin(client, aladin_id, mtype, **params):
    """Send Aladin one call; return its result map, or raise its error."""
    response = await client.ecall_and_wait(aladin_id, mtype, "30", **params)
    if response["samp.status"] != SAMP_STATUS_OK:
        raise RuntimeError(f"Aladin refused {mtype} {params}: {response['samp.error']['samp.errortxt']}")
    return response.get("samp.result", {})


async def main(reactor, path):
    client = SAMPIntegratedClient(name="aladin-image", reactor=reactor)
    await client.connect()
    try:
        aladin_id = await client.find_client("Aladin")
        # Sent as a notification: Aladin now and then never answers the call.
        await client.enotify(aladin_id, "image.load.fits", url=Path(path).absolute().as_uri(), name="example")
        # Script commands answer {"script.result": "..."}: "status"
        # describes the planes, "sync" waits until every plane has loaded.
        for _ in range(300):
            status = await aladin(client, aladin_id, "script.aladin.send", script="status")
            if "PlaneID example\n" in status["script.result"]:
                break
            await task.deferLater(reactor, 0.2, lambda: None)
        else:
            raise RuntimeError("Aladin did not show the image within a minute")
        await aladin(client, aladin_id, "script.aladin.send", script="sync")
        await aladin(client, aladin_id, "script.aladin.send", script="zoom 2x")
        centre = await aladin(client, aladin_id, "coord.get.sky")
        print(f"Aladin shows {Path(path).name} centred at RA {float(centre['ra']):.4f} Dec {float(centre['dec']):.4f}")
    finally:
        await client.disconnect()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1])))
