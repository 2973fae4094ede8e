"""Screenshot a run's report.html in headless Chromium into docs/report_screenshot.png.

    fairvlm demo --quick --out /tmp/quick
    .venv/bin/python scripts/report_screenshot.py /tmp/quick/report.html

Needs Debian's ``chromium`` and ``chromium-driver`` (as tests/test_report_browser.py).
The page is shot at ``--width`` CSS pixels, cut at ``--height``, and saved as a palette
PNG so that the file stays small (``--max-kb``).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "report_screenshot.png"


def shoot(report: Path, width: int, height: int) -> bytes:
    """A PNG of the top ``height`` CSS pixels of ``report`` (an HTML file)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={width},{height}"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts
    )
    try:
        driver.get(report.resolve().as_uri())
        return driver.get_screenshot_as_png()
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="a report.html (e.g. of `fairvlm demo --quick`)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1500)
    ap.add_argument("--max-kb", type=int, default=400)
    args = ap.parse_args(argv)
    from PIL import Image

    image = Image.open(io.BytesIO(shoot(args.report, args.width, args.height))).convert("RGB")
    for colors in (256, 128, 64):  # fewer palette colours until the file is small enough
        buf = io.BytesIO()
        image.quantize(colors=colors, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
        if buf.tell() <= args.max_kb * 1024:
            break
    args.out.write_bytes(buf.getvalue())
    print(f"wrote {args.out} ({buf.tell() / 1024:.0f} KB, {image.width}x{image.height})")
    return 0 if buf.tell() <= args.max_kb * 1024 else 1


if __name__ == "__main__":
    sys.exit(main())
