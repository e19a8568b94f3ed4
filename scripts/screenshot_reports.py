"""Screenshots of the cluster report, the calibration report and the fleet dashboard for docs/,
in headless Chromium.

    python scripts/screenshot_reports.py                 # builds both reports, writes docs/*.png
    python scripts/screenshot_reports.py --workdir /tmp/shots --keep

What it does, all on this machine (about a minute on 2 cores):
1. `laps-central demo` (3 devices, 0.5-minute synthetic recordings, the shipped model): a broker,
   the ingest and the devices, then clustering -> <workdir>/demo/report/report.html;
2. `laps-calibrate run` on two synthetic validation recordings (seeds 500, 501; 1 minute each)
   with the shipped model -> <workdir>/calibration/report.html;
3. `laps-central serve` on the demo's central.toml (any free loopback port): the fleet
   dashboard over the demo's store (its devices have finished, so they show as stopped);
4. opens each page in Debian's Chromium (headless, --no-sandbox, background networking and
   extensions off; driven by Selenium through Debian's chromedriver, so nothing is downloaded),
   sizes the window to the whole page and saves docs/cluster-report.png,
   docs/calibration-report.png and docs/dashboard.png (the top `--max-height` pixels of each page).

Needs: `apt-get install chromium chromium-driver`, `pip install selenium` (in the dev extra),
mosquitto (for the demo).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", help="where the reports are built (default: a temporary folder)")
    parser.add_argument("--out", default=str(REPO / "docs"), help="folder for the PNGs (default: docs/)")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels (default: %(default)s)")
    parser.add_argument("--max-height", type=int, default=4000,
                        help="crop each page to this height in pixels (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    browser = next((b for b in CHROMIUM if Path(b).exists()), None)
    if browser is None or not Path(CHROMEDRIVER).exists():
        print("error: Chromium and its driver are not installed; apt-get install chromium chromium-driver",
              file=sys.stderr)
        return 2
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="laps-shots-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        cluster = build_cluster_report(work)
        calibration = build_calibration_report(work)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        dashboard, url = serve_dashboard(work / "demo" / "central.toml")
        try:
            shoot([(cluster, out / "cluster-report.png"), (calibration, out / "calibration-report.png"),
                   (url, out / "dashboard.png")], browser, args.width, args.max_height)
        finally:
            dashboard.terminate()
            dashboard.wait(10)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def build_cluster_report(work: Path) -> Path:
    subprocess.run([sys.executable, "-m", "central.cli", "demo", "--workdir", str(work / "demo"), "--devices", "3",
                    "--minutes", "0.5"], check=True)
    return work / "demo" / "report" / "report.html"


def build_calibration_report(work: Path) -> Path:
    subprocess.run([sys.executable, "-m", "calibration.cli", "run",
                    "synthetic://assembly?seed=500&minutes=1&size=320x240",
                    "synthetic://assembly?seed=501&minutes=1&size=320x240", "--model", "default",
                    "--out", str(work / "calibration"), "--quiet"], check=True)
    return work / "calibration" / "report.html"


def serve_dashboard(config: Path) -> tuple[subprocess.Popen, str]:
    """`laps-central serve` on a free loopback port: (the process, the dashboard's URL)."""
    proc = subprocess.Popen([sys.executable, "-m", "central.cli", "serve", "--config", str(config), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "dashboard on http://127.0.0.1:<port>/ (...)"
    if not line.startswith("dashboard on "):
        proc.terminate()
        raise SystemExit(f"error: laps-central serve did not start (it printed {line!r})")
    return proc, line.split()[2]


def shoot(pages: list[tuple[Path | str, Path]], browser: str, width: int, max_height: int) -> None:
    """Save a screenshot of each (html file or URL, png) pair: the page at `width`, as tall as its
    content (at most `max_height`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--disable-sync",
                 "--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        for html, png in pages:
            # The previous page's override would keep the viewport (and so scrollHeight) that tall.
            driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
            driver.set_window_size(width, 1000)
            driver.get(html if isinstance(html, str) else html.resolve().as_uri())
            height = min(int(driver.execute_script("return document.documentElement.scrollHeight")), max_height)
            # The viewport itself, not the window (whose frame would leave a black band at the bottom).
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
            driver.save_screenshot(str(png))
            print(f"{png} ({width} x {height} px of {html})")
    finally:
        driver.quit()


if __name__ == "__main__":
    raise SystemExit(main())
