# -*- test-case-name: tests.test_desktop_apps -*-
"""
The real desktop applications (SAOImage DS9, TOPCAT, Aladin) under Xvfb,
with our hub (in this process, and as ``twistd samp-hub`` and
``sampy-twisted hub``), and with our client on TOPCAT's own hub.

DS9 looks for a hub only as it starts and never reconnects, and trial lets
no process outlive a test method, so each test class starts its
applications once and runs its whole conversation with them in one test
method, step by step; a failing step names itself and shows the end of
every application's output.
"""

import io
import os
import re
import signal
import sys
from urllib.parse import urlsplit

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, PartialDownloadError, readBody

from sampy_twisted import SAMP_STATUS_OK, read_lockfile
from sampy_twisted._hub import SAMPHubServer
from sampy_twisted._process import ProcessTimedOut, lockfile_environ, start_hub, spawn

from .desktop import ALADIN_NAME, CLIENT_NAME, DS9_NAME, START_TIMEOUT, TOPCAT_NAME, CheckedClient, Desktop
from .test_tap import TWISTD

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "docs", "examples")

# The image: 40 x 30 pixels, its centre at the Crab nebula.
IMAGE_SIZE = (40, 30)
IMAGE_CENTRE = (83.6331, 22.0145)

ROWS = [("alpha", 10.5, -20.25), ("beta", 11.0, -21.0), ("gamma", 12.0, -22.0)]


def write_fits(path):
    """Write a small FITS image with a celestial WCS centred on IMAGE_CENTRE."""
    import numpy
    from astropy.io import fits

    width, height = IMAGE_SIZE
    header = fits.Header()
    header.update(
        CTYPE1="RA---TAN", CTYPE2="DEC--TAN",
        CRVAL1=IMAGE_CENTRE[0], CRVAL2=IMAGE_CENTRE[1],
        CRPIX1=(width + 1) / 2, CRPIX2=(height + 1) / 2,
        CDELT1=-0.001, CDELT2=0.001, RADESYS="ICRS", EQUINOX=2000.0,
    )
    data = numpy.arange(width * height, dtype=numpy.float32).reshape(height, width)
    fits.PrimaryHDU(data, header=header).writeto(path)
    return path


def read_fits_shape(url):
    """The shape of the image at a ``file:`` URL."""
    from astropy.io import fits

    # DS9 writes file://localhost//path: the path keeps a doubled slash.
    path = "/" + urlsplit(url).path.lstrip("/")
    with fits.open(path) as hdus:
        return hdus[0].data.shape


def write_votable(path, name):
    """Write a VOTable of ROWS, its table called *name*."""
    rows = "\n".join(f"<TR><TD>{n}</TD><TD>{ra}</TD><TD>{dec}</TD></TR>" for n, ra, dec in ROWS)
    with open(path, "w") as f:
        f.write(
            '<?xml version="1.0"?>\n'
            '<VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
            f'<RESOURCE><TABLE name="{name}">\n'
            '<FIELD name="name" datatype="char" arraysize="*"/>\n'
            '<FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra"/>\n'
            '<FIELD name="dec" datatype="double" unit="deg" ucd="pos.eq.dec"/>\n'
            f"<DATA><TABLEDATA>\n{rows}\n</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>\n"
        )
    return path


def file_url(path):
    return "file://" + os.path.abspath(path)


def table_rows(votable_bytes):
    """The rows of the first table of a VOTable, as (name, ra, dec) tuples."""
    from astropy.io.votable import parse_single_table

    table = parse_single_table(io.BytesIO(votable_bytes)).to_table()
    return [(str(row["name"]), float(row["ra"]), float(row["dec"])) for row in table]


async def fetch(url, timeout=30):
    """The body at *url* (an application's own HTTP server)."""
    response = await Agent(reactor).request(b"GET", url.encode("ascii")).addTimeout(timeout, reactor)
    if response.code != 200:
        raise AssertionError(f"GET {url} answered {response.code}")
    try:
        return await readBody(response).addTimeout(timeout, reactor)
    except PartialDownloadError as e:
        # JSAMP's server (TOPCAT's) gives no length: the body ends at the
        # close, which Twisted cannot tell from a cut.
        return e.response


class DesktopTestCase(TestCase):
    """
    Starts a desktop and our checked client; :meth:`step` runs one named
    part of the conversation.
    """

    timeout = 300

    def setUp(self):
        self.desktop = Desktop(self, reactor)
        self.data = os.path.join(self.desktop.directory, "data")
        os.makedirs(self.data)
        self.fits = write_fits(os.path.join(self.data, "crab.fits"))

    async def step(self, name, coroutine):
        """Run *coroutine*; a failure is reported with the applications' output."""
        try:
            return await coroutine
        except Exception as e:
            raise AssertionError(
                f"step '{name}' failed: {type(e).__name__}: {e}\n{self.desktop.tails()}"
            ) from e

    async def our_client(self, hub_params):
        client = CheckedClient(reactor)
        await client.connect(hub_params)
        self.addCleanup(client.disconnect)
        return client

    async def start_apps(self, lockfile, client, topcat=True):
        """
        Start Aladin and (unless *topcat* is false) TOPCAT without a hub of
        its own, then DS9, all on the hub of *lockfile*; wait for each.

        DS9 comes last: a second after each registration it hears of, it
        updates its list of clients with synchronous calls to the hub, and
        a message it handles meanwhile can cross their answers (its XML-RPC
        client keeps one response in a global variable), so the tests talk
        to it only once its own first update is over.
        """
        aladin = self.desktop.start_aladin(lockfile)
        waits = [client.registered(ALADIN_NAME, "coord.get.sky", aladin)]
        if topcat:
            waits.append(client.registered(TOPCAT_NAME, "table.get.stil", self.desktop.start_topcat(lockfile)))
        ids = await self.step("registration", defer.gatherResults(waits, consumeErrors=True))
        ids = dict(zip(("aladin", "topcat"), ids))
        # Aladin registers before it can take images: until then
        # image.load.fits fails with a NullPointerException.
        await self.step("Aladin ready", aladin.wait_for_line(r"Aladin is fully ready", timeout=START_TIMEOUT))
        ds9 = self.desktop.start_ds9(lockfile)
        ids["ds9"] = await self.step("DS9 registration", client.registered(DS9_NAME, "ds9.get", ds9))
        await self.step("DS9's first update", self.ds9_first_update(client, ids["ds9"]))
        return ids

    async def ds9_first_update(self, client, ds9_id):
        """
        Wait until DS9 has finished the update of its client list that it
        makes a second after registering, so that no update of its own
        crosses the ones the tests make it do.

        Now and then DS9 never finishes that update: it waits for ever for
        the answer to its first call (with JSAMP's hub as with ours; the
        hub has answered and closed the connection).  It handles everything
        else meanwhile, and no other update is pending then, so the tests
        go on after a while.
        """
        try:
            await self.desktop.apps["ds9"].wait_for_line(r"^SAMPUpdate: votable apps:", timeout=20)
        except ProcessTimedOut:
            pass

    # -- the conversation with each application ---------------------------

    async def check_ds9(self, client, ds9):
        process = self.desktop.apps["ds9"]
        before, first_line = client.sent, len(process.lines)
        await client.call(ds9, "samp.app.ping")
        await client.call(ds9, "image.load.fits", url=file_url(self.fits), name="crab")
        size = await client.call(ds9, "ds9.get", cmd="fits size")
        self.assertEqual(size["value"].split(), [str(n) for n in IMAGE_SIZE])
        filename = await client.call(ds9, "ds9.get", cmd="file")
        self.assertEqual(filename["value"].strip(), self.fits)
        await client.call(ds9, "ds9.set", cmd="zoom to 2")
        self.assertEqual((await client.call(ds9, "ds9.get", cmd="zoom"))["value"].strip(), "2")
        # The other way: DS9 saves its image and sends it to us.  It looks
        # us up by name, calling the hub from inside its ds9.set handler.
        await client.call(ds9, "ds9.set", cmd=f"samp send image {CLIENT_NAME}")
        sender, params = await client.images.get().addTimeout(30, reactor)
        self.assertEqual(sender, ds9)
        self.assertEqual(read_fits_shape(params["url"]), IMAGE_SIZE[::-1])
        self.assertEqual(len(client.images.pending), 0)
        # DS9's debug log shows each call it received: every one, once.
        calls = client.sent - before
        pattern = rf"^SAMPReceivedCall: \S+ {re.escape(client.client.get_public_id())} "
        for _ in range(calls):
            await process.wait_for_line(pattern, timeout=30)
        received = [line for line in process.lines[first_line:] if re.search(pattern, line)]
        self.assertEqual(len(received), calls, "\n".join(received))

    async def check_topcat(self, client, topcat, name="stars"):
        process = self.desktop.apps["topcat"]
        votable = write_votable(os.path.join(self.data, f"{name}.xml"), name)
        await client.call(topcat, "samp.app.ping")
        await client.call(topcat, "table.load.votable", url=file_url(votable), name=name, **{"table-id": name})
        # TOPCAT answers before the table has loaded; its log tells when it
        # has, and "No current table" may still come for a moment after.
        await process.wait_for_line(rf"Load new table \d+: {name} ", timeout=60)
        deadline = reactor.seconds() + 60
        while True:
            response = await client.call_for_response(topcat, "table.get.stil", format="votable")
            if response["samp.status"] == SAMP_STATUS_OK:
                break
            self.assertEqual(response["samp.error"]["samp.errortxt"], "No current table")
            self.assertLess(reactor.seconds(), deadline, "TOPCAT has no current table after 60 s")
            await task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(table_rows(await fetch(response["samp.result"]["url"])), ROWS)
        loaded = [line for line in process.lines if re.search(rf"Load new table \d+: {name} ", line)]
        self.assertEqual(len(loaded), 1, loaded)

    async def check_aladin(self, client, aladin):
        await client.call(aladin, "samp.app.ping")
        # A call of image.load.fits is now and then never answered: Aladin
        # loses the wake-up of its handler thread when the image loads
        # first (JSAMP's hub too).  So: a notification, then Aladin's
        # "status" until the plane is there, then "sync", which answers
        # once every plane is ready.
        await client.client.enotify(aladin, "image.load.fits", url=file_url(self.fits), name="crab")
        deadline = reactor.seconds() + 60
        while "PlaneID crab" not in await self.aladin_status(client, aladin):
            self.assertLess(reactor.seconds(), deadline, "Aladin shows no plane crab after 60 s")
            await task.deferLater(reactor, 0.2, lambda: None)
        await client.call(aladin, "script.aladin.send", script="sync")
        status = await self.aladin_status(client, aladin)
        self.assertRegex(status, rf"Width\s+{IMAGE_SIZE[0]}\s+Height\s+{IMAGE_SIZE[1]}")
        centre = await client.call(aladin, "coord.get.sky")
        # The view centre: within a few pixels (0.001 deg each) of the image's.
        offsets = [abs(float(centre[k]) - v) for k, v in zip(("ra", "dec"), IMAGE_CENTRE)]
        self.assertLess(max(offsets), 0.01, centre)
        result = await client.call(aladin, "script.aladin.send", script="zoom 2x")
        self.assertEqual(result["script.result"], "")
        await client.call(aladin, "coord.pointAt.sky", ra="83.64", dec="22.02")
        centre = await client.call(aladin, "coord.get.sky")
        self.assertEqual((float(centre["ra"]), float(centre["dec"])), (83.64, 22.02))

    async def aladin_status(self, client, aladin):
        """Aladin's description of its planes."""
        return (await client.call(aladin, "script.aladin.send", script="status"))["script.result"]

    async def check_all(self, client, ids):
        await self.step("DS9", self.check_ds9(client, ids["ds9"]))
        await self.step("TOPCAT", self.check_topcat(client, ids["topcat"]))
        await self.step("Aladin", self.check_aladin(client, ids["aladin"]))
        client.check_answered_once()

    def assertRunning(self, *names):
        for name in names:
            process = self.desktop.apps[name]
            self.assertIsNone(process.result, f"{name} ended: {process.result}\n{self.desktop.tails()}")


class TopcatHubTests(DesktopTestCase):
    """
    Our client with TOPCAT's own hub: TOPCAT, started with no hub running,
    runs JSAMP's hub and writes ``<its home>/.samp``; DS9 and Aladin join.
    """

    async def test_apps_on_topcats_hub(self):
        await self.desktop.start_display()
        topcat = self.desktop.start_topcat(hub=True)
        lockfile = os.path.join(topcat.home, ".samp")
        await self.step("TOPCAT's hub", topcat.wait_for_line(r"Wrote new lockfile", timeout=START_TIMEOUT))
        params = read_lockfile(lockfile)
        client = await self.our_client(params)
        hub_id = client.client.get_hub_id()
        self.assertEqual((await client.client.get_metadata(hub_id))["samp.name"], "Hub")
        ids = await self.start_apps(lockfile, client, topcat=False)
        ids["topcat"] = await client.registered(TOPCAT_NAME, "table.get.stil", topcat)
        await self.check_all(client, ids)
        await client.disconnect()


class OurHubTests(DesktopTestCase):
    """
    DS9, TOPCAT and Aladin with our hub running in this process; the
    guide's examples drive them; then the hub stops and starts again.
    """

    async def start_our_hub(self, lockfile):
        hub = SAMPHubServer(reactor=reactor, lockfile=lockfile)
        await hub.start()
        self.addCleanup(hub.stop)
        return hub

    async def test_apps_on_our_hub(self):
        lockfile = os.path.join(self.desktop.directory, "hub", ".samp")
        os.makedirs(os.path.dirname(lockfile))
        hub = await self.start_our_hub(lockfile)
        await self.desktop.start_display()
        client = await self.our_client(hub.params)
        ids = await self.start_apps(lockfile, client)
        await self.check_all(client, ids)
        await self.step("examples", self.run_examples(lockfile))
        await client.disconnect()

        await hub.stop()
        # DS9 takes the shutdown notice and stays up, unregistered: it
        # never looks for a hub again.
        await self.step("DS9 sees the shutdown", self.desktop.apps["ds9"].wait_for_line(
            r"^SAMPRcvdEventShutdown", timeout=30))
        self.assertRunning(*self.desktop.apps)

        # TOPCAT (JSAMP's client code) finds the new hub by itself.  So
        # does Aladin, but it registers with the callback URL of its first
        # registration, whose server it has stopped: the hub answers calls
        # to it with samp.error ("connection refused") and soon drops it.
        hub = await self.start_our_hub(lockfile)
        client = await self.our_client(hub.params)
        topcat = await self.step("TOPCAT registers again", client.registered(
            TOPCAT_NAME, "table.get.stil", self.desktop.apps["topcat"]))
        await self.step("TOPCAT again", client.call(topcat, "samp.app.ping"))
        client.check_answered_once()
        self.assertRunning(*self.desktop.apps)

    async def run_examples(self, lockfile):
        """The guide's examples, run as scripts, drive the applications."""
        environ = lockfile_environ(os.path.join(self.desktop.directory, "hub"), lockfile)
        votable = write_votable(os.path.join(self.data, "example.xml"), "example")
        runs = [
            ("drive_ds9.py", self.fits, r"^DS9 shows crab\.fits: 40 x 30 pixels, zoom 2$"),
            ("topcat_table.py", votable, r"^TOPCAT's current table example: 3 rows, columns name, ra, dec$"),
            ("aladin_image.py", self.fits, r"^Aladin shows crab\.fits centred at RA 83\.63\d\d Dec 22\.01\d\d$"),
        ]
        for name, argument, expected in runs:
            process = spawn(
                [sys.executable, os.path.join(EXAMPLES, name), argument],
                dict(environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1"),
                self.data,
                reactor,
                name=name,
            )
            self.addCleanup(process.stop)
            result = await process.ended.addTimeout(120, reactor)
            self.assertEqual((result.exit_code, result.signal), (0, None), result.output)
            self.assertNotIn("Traceback", result.output)
            self.assertTrue(any(re.search(expected, line) for line in process.lines), result.output)


class HubProcessTestsMixin:
    """
    DS9, TOPCAT and Aladin with our hub run as users run it, in a child
    process; they survive its shutdown.
    """

    command = None

    async def test_apps_on_hub_process(self):
        hub_directory = os.path.join(self.desktop.directory, "hub")
        os.makedirs(hub_directory)
        lockfile = os.path.join(hub_directory, ".samp")
        env = lockfile_environ(hub_directory, lockfile)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        argv = [sys.executable, *self.command, "--lockfile", lockfile]
        hub = await start_hub(argv, env, ROOT, lockfile, 60.0, name="our hub")
        self.addCleanup(hub.stop)
        await self.desktop.start_display()
        client = await self.our_client(hub.params)
        ids = await self.start_apps(lockfile, client)
        await self.check_all(client, ids)
        await client.disconnect()
        result = await hub.stop()
        # twistd ends itself with the SIGTERM it handled, once shut down.
        self.assertIn((result.exit_code, result.signal), [(0, None), (None, signal.SIGTERM)], result.output)
        self.assertNotIn("Traceback", result.output)
        await self.step("DS9 sees the shutdown", self.desktop.apps["ds9"].wait_for_line(
            r"^SAMPRcvdEventShutdown", timeout=30))
        self.assertRunning(*self.desktop.apps)


class TwistdHubTests(HubProcessTestsMixin, DesktopTestCase):
    """``twistd -n samp-hub``."""

    command = ["-c", TWISTD, "--pidfile=", "-n", "samp-hub"]


class CommandLineHubTests(HubProcessTestsMixin, DesktopTestCase):
    """``sampy-twisted hub``."""

    command = ["-m", "sampy_twisted._cli", "hub"]
