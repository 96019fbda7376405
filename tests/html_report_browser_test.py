"""report.html in a real headless Chromium (Debian's /usr/bin/chromium).

Runs the demo job with the //runner binary, then loads runs/latest/report.html
from file:// and checks: no console messages, every task of results.json in
the DOM with its result, one timeline bar per task, the failed-only and name
filters (set from the page's URL fragment), and a screenshot (non-blank, the
result colours present) kept as $TEST_UNDECLARED_OUTPUTS_DIR/report.png. A
job of 20,000 GoogleTest cases (reporter:html_report_test_helper) must load
and render its failed cases; the render time is printed.

Skips with a loud message only when /usr/bin/chromium is not installed;
Chromium failing to start or to load the page fails the test.
"""

import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]
# The page's colour of each result (reporter/html_report.cc's style).
COLOURS = {
    "passed": (0x2e, 0x7d, 0x32),
    "failed": (0xd3, 0x2f, 0x2f),
    "aborted": (0x6a, 0x1b, 0x9a),
}


def runfile(path):
    return os.path.join(os.environ["TEST_SRCDIR"], "taskfork", path)


def tmpdir():
    return tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))


def chromium(args, timeout=120):
    """Runs Chromium with a fresh profile; returns (stdout, console lines)."""
    profile = tmpdir()
    env = dict(os.environ, HOME=profile)
    proc = subprocess.run(
        [CHROMIUM] + FLAGS + ["--user-data-dir=" + profile,
                              "--enable-logging=stderr", "--v=0"] + args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        timeout=timeout)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise AssertionError("chromium %s exited %d:\n%s" %
                             (args, proc.returncode, err))
    console = [l for l in err.splitlines() if ":CONSOLE" in l]
    return proc.stdout.decode("utf-8"), console


def dump_dom(url):
    dom, console = chromium(["--dump-dom", url])
    if "data-render-ms=" not in dom:
        raise AssertionError("the page's script did not finish: %s\n%s" %
                             (url, "\n".join(console)))
    return dom, console


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB/RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG: " + path
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xff
            elif kind == 2:
                line[x] = (line[x] + b) & 0xff
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xff
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xff
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return width, height, rows


class ConsoleCheckTest(unittest.TestCase):
    """The console check sees errors (so the report's check can fail)."""

    def test_a_page_with_an_error_is_seen(self):
        page = os.path.join(tmpdir(), "bad.html")
        with open(page, "w") as f:
            f.write("<html><body><script>null.x;</script></body></html>")
        _, console = chromium(["--dump-dom", "file://" + page])
        self.assertTrue(any("Uncaught TypeError" in l for l in console),
                        console)


class DemoReportTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.runs = os.path.join(tmpdir(), "runs")
        run = subprocess.run(
            [runfile("runner/runner"), "--runinfo_dir=" + cls.runs,
             runfile("runner/examples/demo.textpb")],
            cwd=os.path.join(os.environ["TEST_SRCDIR"], "taskfork"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = run.stdout.decode("utf-8", "replace")
        # The demo exits 1 by design (a failed and a timed-out task).
        assert run.returncode == 1, out
        cls.dir = os.path.realpath(os.path.join(cls.runs, "latest"))
        cls.page = os.path.join(cls.dir, "report.html")
        assert ("Report:  %s\n" % cls.page) in out, out
        with open(os.path.join(cls.dir, "results.json")) as f:
            cls.tasks = json.load(f)["report"]["tasks"]
        assert len(cls.tasks) == 7, cls.tasks
        cls.dom, cls.console = dump_dom("file://" + cls.page)

    def test_loads_without_console_messages(self):
        self.assertEqual(self.console, [])

    def test_every_task_and_result_is_in_the_dom(self):
        found = re.findall(
            r'<details class="task" data-task="([^"]*)" data-result="([^"]*)"',
            self.dom)
        self.assertEqual(
            found, [(t["id"], t["result"]["value"]) for t in self.tasks])
        self.assertIn("<dt>uid</dt><dd>%s</dd>" % os.path.basename(self.dir),
                      self.dom)

    def test_one_timeline_bar_per_task(self):
        bars = re.findall(r'<div class="bar task r-(\w+)"[^>]*data-task="([^"]*)"',
                          self.dom)
        self.assertEqual(
            bars, [(t["result"]["value"], t["id"]) for t in self.tasks])

    def test_logs_are_linked_relative_to_the_page(self):
        dom, console = dump_dom("file://" + self.page + "#open=pcall")
        self.assertEqual(console, [])
        links = re.findall(r'<a href="([^"]*)">TaskLog\.pcall[^<]*</a>', dom)
        self.assertIn("./TaskLog.pcall", links)
        children = [l for l in links if l.startswith("./TaskLog.pcall%3Apid-")]
        self.assertTrue(children, links)
        for link in links:
            path = os.path.join(self.dir, link[2:].replace("%3A", ":"))
            self.assertTrue(os.path.isfile(path), path)

    def hidden(self, fragment):
        dom, console = dump_dom("file://" + self.page + fragment)
        self.assertEqual(console, [])
        shown = re.findall(r'<details class="task" data-task="([^"]*)"'
                           r' data-result="[^"]*">', dom)
        return shown, dom

    def test_failed_only_filter(self):
        shown, dom = self.hidden("#failed")
        bad = [t["id"] for t in self.tasks
               if t["result"]["value"] not in ("passed", "passx", "skipped")]
        self.assertEqual(shown, bad)
        self.assertIn("%d of 7 tasks shown" % len(bad), dom)

    def test_name_search_filter(self):
        shown, dom = self.hidden("#q=GTEST")
        self.assertEqual(shown, ["gtest"])
        self.assertIn("1 of 7 tasks shown", dom)

    def test_screenshot_has_the_result_colours(self):
        out = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", tmpdir())
        shot = os.path.join(out, "report.png")
        chromium(["--window-size=1000,720", "--screenshot=" + shot,
                  "file://" + self.page + "#open=gtest,fails"])
        width, height, rows = png_pixels(shot)
        self.assertEqual((width, height), (1000, 720))
        counts = {name: 0 for name in COLOURS}
        distinct = set()
        for row in rows:
            for px in row:
                distinct.add(px)
                for name, colour in COLOURS.items():
                    if px == colour:
                        counts[name] += 1
        self.assertGreater(len(distinct), 50, "the screenshot is blank")
        for name, n in counts.items():
            self.assertGreater(n, 200, "too few %s pixels: %s" % (name, counts))


class BigRunTest(unittest.TestCase):

    def test_twenty_thousand_cases_load_and_render(self):
        d = tmpdir()
        subprocess.run([runfile("reporter/html_report_test_helper"), d,
                        "20000"], check=True, timeout=60)
        start = time.monotonic()
        dom, console = dump_dom("file://%s/report.html#failed&open=gtest" % d)
        wall = time.monotonic() - start
        self.assertEqual(console, [])
        self.assertEqual(len(re.findall(r'<div class="bar task ', dom)), 3)
        # Every 100th of the 20,000 cases failed: the failed-only view lists
        # all 200 of them in the opened task.
        self.assertEqual(dom.count('<span class="reason">1 failure</span>'), 200)
        render_ms = float(re.search(r'data-render-ms="([0-9.]+)"', dom).group(1))
        size = os.path.getsize(os.path.join(d, "report.html"))
        print("20,000 cases: report.html %.1f MiB, render %.0f ms in the page,"
              " %.1f s chromium --dump-dom wall" %
              (size / 1048576.0, render_ms, wall))
        self.assertLess(render_ms, 15000)


if __name__ == "__main__":
    if not os.path.exists(CHROMIUM):
        print("*" * 72 + "\nSKIPPED: %s is not installed (Debian package "
              "'chromium', in tools/debian_packages.txt); the report.html "
              "browser tests did not run.\n" % CHROMIUM + "*" * 72)
        sys.exit(0)
    unittest.main(verbosity=2)
