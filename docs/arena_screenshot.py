#!/usr/bin/env python
"""Take the README's arena screenshot with the system Chromium (headless).

    sftkit arena quickstart.toml --port 8001 &      # in the directory the quickstart ran in
    python docs/arena_screenshot.py http://127.0.0.1:8001/ docs/arena.png
"""

from __future__ import annotations

import shutil
import sys
import time


def main(url: str, out: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,760",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        for _ in range(600):  # the answers to listed prompts are generated ahead: wait for the first battle
            browser.get(url)
            if "/battle/" in browser.current_url:
                break
            time.sleep(1)
        browser.save_screenshot(out)
    finally:
        browser.quit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
