"""
Send a VOTable to TOPCAT, then pull TOPCAT's current table back.

Usage: ``python topcat_table.py table.xml`` with TOPCAT registered with the
running hub (found through ``SAMP_HUB`` or ``~/.samp``).  Needs astropy to
read the table TOPCAT sends back.
"""

import io
import sys
from pathlib import Path

from astropy.io.votable import parse_single_table
from twisted.internet import defer, task
from twisted.web.client import Agent, PartialDownloadError, readBody

from sampy_twisted import SAMP_STATUS_OK, SAMPIntegratedClient


async def fetch(reactor, url):
    """GET *url*: TOPCAT serves its tables over HTTP itself."""
    response = await Agent(reactor).request(b"GET", url.encode("ascii"))
    try:
        return await readBody(response)
    except PartialDownloadError as e:
        # TOPCAT's server sends no Content-Length: the body ends when it
        # closes the connection, which Twisted cannot tell from a cut.
        return e.response


async def current_table(client, reactor, topcat_id):
    """TOPCAT's current table (an astropy VOTable TableElement), or None."""
    response = await client.ecall_and_wait(topcat_id, "table.get.stil", "30", format="votable")
    if response["samp.status"] != SAMP_STATUS_OK:
        return None  # "No current table"
    return parse_single_table(io.BytesIO(await fetch(reactor, response["samp.result"]["url"])))


async def main(reactor, path):
    client = SAMPIntegratedClient(name="topcat-table", reactor=reactor)
    await client.connect()
    try:
        topcat_id = await client.find_client("topcat")
        name = Path(path).stem
        response = await client.ecall_and_wait(
            topcat_id, "table.load.votable", "30", url=Path(path).absolute().as_uri(), name=name
        )
        if response["samp.status"] != SAMP_STATUS_OK:
            raise RuntimeError(f"TOPCAT refused the table: {response['samp.error']['samp.errortxt']}")
        # TOPCAT says samp.ok before the table has loaded: ask until the
        # table it calls current is the one sent.
        for _ in range(120):
            table = await current_table(client, reactor, topcat_id)
            if table is not None and table.name == name:
                break
            await task.deferLater(reactor, 0.5, lambda: None)
        else:
            raise RuntimeError(f"TOPCAT did not show table {name} within a minute")
        rows = table.to_table()
        print(f"TOPCAT's current table {table.name}: {len(rows)} rows, columns {', '.join(rows.colnames)}")
    finally:
        await client.disconnect()


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1])))
