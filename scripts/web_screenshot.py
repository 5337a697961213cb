"""Screenshot of `stemsplit serve` after a real separation with the shipped models (docs/img/web.png).

Starts the server on a free loopback port, drives Debian's headless chromium through selenium: uploads the
song, separates it into four stems with soft masks, moves the playhead, shows the masks there, and saves a
screenshot of the whole page. Needs `apt-get install chromium chromium-driver` and `pip install selenium`.

    python scripts/web_screenshot.py [--input examples/example.flac] [--out docs/img/web.png]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from stemsplit.web import ServerConfig, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(ROOT / "examples" / "example.flac"))
    p.add_argument("--out", default=str(ROOT / "docs" / "img" / "web.png"))
    p.add_argument("--targets", default="vocals,drums,bass,other")
    p.add_argument("--mask", default="soft", choices=["soft", "binary"])
    p.add_argument("--width", type=int, default=1100)
    p.add_argument("--at", type=float, default=0.45, help="where to put the playhead (fraction of the song)")
    args = p.parse_args()

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        print("needs chromium and chromedriver (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 2
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
              "--autoplay-policy=no-user-gesture-required", f"--window-size={args.width},900"):
        opts.add_argument(a)
    wanted = set(args.targets.split(","))
    with serve_in_thread(ServerConfig(port=0)) as url:
        d = webdriver.Chrome(options=opts, service=Service(driver))
        try:
            d.get(url)
            wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#targets input"), 30, "the targets")
            for box in d.find_elements(By.CSS_SELECTOR, "#targets input"):
                if (box.get_attribute("value") in wanted) != box.is_selected():
                    d.execute_script("arguments[0].click()", box)
            d.find_element(By.CSS_SELECTOR, f'input[name="mask"][value="{args.mask}"]').click()
            d.find_element(By.ID, "file").send_keys(str(Path(args.input).resolve()))
            t0 = time.monotonic()
            d.find_element(By.ID, "go").click()
            wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#rows .row"), 600, "the stems")
            print(f"separated and loaded in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            wave = d.find_element(By.CSS_SELECTOR, '.row[data-stem="mixture"] .wave')
            ActionChains(d).move_to_element_with_offset(
                wave, int(wave.size["width"] * (args.at - 0.5)), 0).click().perform()
            d.find_element(By.ID, "masks-here").click()
            time.sleep(0.3)
            wait_for(lambda: d.execute_script(
                "const i = document.getElementById('masks-img'); return i.complete && i.naturalWidth > 0"),
                60, "the mask picture")
            height, chrome = d.execute_script("return [document.documentElement.scrollHeight, "
                                              "window.outerHeight - window.innerHeight]")
            d.set_window_size(args.width, height + chrome)
            d.execute_script("window.scrollTo(0, 0)")
            time.sleep(0.5)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            d.save_screenshot(args.out)
            print(f"wrote {args.out}", file=sys.stderr)
        finally:
            d.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
