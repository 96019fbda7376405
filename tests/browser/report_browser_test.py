"""report.html in headless Chromium: the demo job's page and a 20,000-case run.

Runs the real runner on runner/examples/demo.textpb, then loads its
runs/latest/report.html from file:// in /usr/bin/chromium (--dump-dom after
the page's script ran) and checks: no console errors, every task with its
result in the DOM, one timeline bar per task, the failed-only and name filters
(set through the page's #failed / #q= state, the same path the controls take),
and a screenshot with the result colours, kept in $TEST_UNDECLARED_OUTPUTS_DIR
as demo_report.png. A big run (html_report_test_helper, 20,000 cases) is timed
from start to the rendered DOM.

Skips loudly (exit 0 with a SKIPPED banner) only when /usr/bin/chromium is not
installed; any other failure to start Chromium fails the test.
"""

import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

CHROMIUM = "/usr/bin/chromium"
# Flags headless Chromium needs as root on a machine without network.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]
DEMO_TASKS = {
    "hello": "passed", "pcall": "passed", "queue": "passed",
    "gtest": "passed", "shell": "passed", "fails": "failed",
    "too_slow": "aborted",
}
# The .r-<result> colours of reporter/html_report.cc.
COLOURS = {"passed": (0x2e, 0x7d, 0x32), "failed": (0xd3, 0x2f, 0x2f),
           "aborted": (0x6a, 0x1b, 0x9a)}


def chromium(args, timeout=120):
    """Runs Chromium with a fresh profile; returns (stdout, stderr)."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM] + FLAGS + ["--user-data-dir=" + profile] + args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
            check=False)
    if proc.returncode != 0:
        raise AssertionError("chromium %s exited %d: %s" % (
            args, proc.returncode, proc.stderr.decode(errors="replace")[-2000:]))
    return proc.stdout.decode(errors="replace"), proc.stderr.decode(
        errors="replace")


def console_errors(stderr):
    """Console messages of the page at level error, and uncaught exceptions."""
    return [l for l in stderr.splitlines()
            if "CONSOLE" in l and ("Uncaught" in l or "ERROR:CONSOLE" in l
                                   or "Error" in l)]


class Dom(html.parser.HTMLParser):
    """Elements of a dumped DOM as (tag, attrs, hidden) in document order."""

    def __init__(self):
        super().__init__()
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def with_class(self, cls):
        return [a for _, a in self.elements
                if cls in (a.get("class") or "").split()]


def read_png_rgb(path):
    """Decodes an 8-bit RGB/RGBA PNG (what Chromium writes) to rows of pixels."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG: " + path
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], None
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        prev = prev or bytearray(stride)
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return rows


class ReportBrowserTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        runs = os.path.join(cls.tmp, "runs")
        proc = subprocess.run(
            ["runner/runner", "--runinfo_dir=" + runs,
             "runner/examples/demo.textpb"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
            check=False)
        cls.runner_stdout = proc.stdout.decode(errors="replace")
        # The demo fails on purpose: exit 1, with a report.
        assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
        cls.demo = os.path.realpath(os.path.join(runs, "latest", "report.html"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def load(self, path, fragment=""):
        out, err = chromium(["--virtual-time-budget=5000", "--dump-dom",
                             "file://" + path + fragment])
        self.assertEqual(console_errors(err), [])
        dom = Dom()
        dom.feed(out)
        return dom

    def test_summary_names_the_page(self):
        self.assertIn("/report.html\n", self.runner_stdout)

    def test_every_task_and_result_and_one_bar_each(self):
        dom = self.load(self.demo)
        tasks = {a["data-task"]: a["data-result"]
                 for a in dom.with_class("task") if "data-result" in a}
        self.assertEqual(tasks, DEMO_TASKS)
        bars = [a["data-task"] for a in dom.with_class("bar")
                if "task" in a["class"].split()]
        self.assertEqual(sorted(bars), sorted(DEMO_TASKS))
        # A forked child that reports sections gets a bar inside its task's
        # (the demo's children only log, so they are listed by their logs).
        with open(self.demo, encoding="utf-8") as f:
            data = json.loads(re.search(
                r'id="report-data">(.*?)</script>', f.read(), re.S).group(1))
        self.assertEqual(len(dom.with_class("child")),
                         sum(len(t["children"]) for t in data["tasks"]))
        # Logs are linked relative to the page, ':' kept out of the scheme
        # (in the body of a task, rendered when it is opened).
        opened = self.load(self.demo, "#open=hello,pcall")
        hrefs = [a.get("href", "") for t, a in opened.elements if t == "a"]
        self.assertIn("./TaskLog.hello", hrefs)
        self.assertTrue(any(re.match(r"\./TaskLog\.pcall%3Apid-\d+$", h)
                            for h in hrefs), hrefs)

    def shown(self, dom):
        return sorted(a["data-task"] for a in dom.with_class("task")
                      if "data-result" in a and "hidden" not in a)

    def test_failed_only_filter(self):
        dom = self.load(self.demo, "#failed=1")
        self.assertEqual(self.shown(dom), ["fails", "too_slow"])

    def test_name_search_filter(self):
        self.assertEqual(self.shown(self.load(self.demo, "#q=HELLO")), ["hello"])
        # Section names match too: the demo's gtest runs DemoGTest.* cases.
        self.assertEqual(self.shown(self.load(self.demo, "#q=demogtest.str")),
                         ["gtest"])

    def test_screenshot_has_the_result_colours(self):
        out_dir = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", self.tmp)
        png = os.path.join(out_dir, "demo_report.png")
        chromium(["--virtual-time-budget=5000", "--window-size=1000,700",
                  "--hide-scrollbars", "--screenshot=" + png,
                  "file://" + self.demo])
        rows = read_png_rgb(png)
        seen = set(p for row in rows for p in row)
        self.assertGreater(len(seen), 20, "blank screenshot")
        for result, colour in COLOURS.items():
            self.assertIn(colour, seen, result + " colour missing")

    def test_twenty_thousand_cases_load(self):
        big = os.path.join(self.tmp, "big")
        os.mkdir(big)
        subprocess.run(["reporter/html_report_test_helper", big, "20000"],
                       check=True, timeout=60)
        start = time.monotonic()
        dom = self.load(os.path.join(big, "report.html"), "#failed=1")
        elapsed = time.monotonic() - start
        sys.stderr.write("20000-case report.html: %d bytes, loaded and "
                         "rendered in %.2f s (Chromium start included)\n" % (
                             os.path.getsize(os.path.join(big, "report.html")),
                             elapsed))
        self.assertEqual(self.shown(dom), ["gtest", "teardown"])
        self.assertLess(elapsed, 60)


if __name__ == "__main__":
    if not os.path.exists(CHROMIUM):
        sys.stderr.write("\n" + "!" * 72 + "\nSKIPPED: %s is not installed "
                         "(Debian package chromium, tools/debian_packages.txt);"
                         " report.html was NOT tested in a browser.\n" % CHROMIUM
                         + "!" * 72 + "\n")
        sys.exit(0)
    unittest.main()
