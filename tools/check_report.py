"""Open a `snakemake --report` HTML file in headless Chromium and click through it as a reader does:
the index, every category, every entry. Screenshots go to OUTDIR; exit 1 names each problem.

    python tools/check_report.py REPORT.html OUTDIR [--category NAME ...]

Problems: a category with no entries (Snakemake leaves such a category out of the menu, so
--category names those that must be there, and so does every category link of the workflow
description), entries without a category or subcategory (Snakemake files them under "Other"), an
entry offered only as a download instead of shown (a CSV, say), an image without pixels, an HTML
page without content, an entry without a caption, a broken reference in the workflow description
or a caption (what docutils renders for a link to a target that does not exist).

Screenshots: OUTDIR/index.png, and per category and subcategory its list of entries with the first
one shown (OUTDIR/<category>--<subcategory>.png; OUTDIR/<category>.png where the category has one
subcategory, which the report then opens at once). OUTDIR/summary.json lists what was seen: per
category and subcategory each entry's labels, how it is shown (image, html or download), its caption
and, for an HTML page, the rows of its tables.

Needs Chromium and its chromedriver (Debian: apt-get install chromium chromium-driver), exit 2
without them; Selenium drives them and, given both, downloads nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 30
WINDOW = (1800, 1100)  # wide enough to show most columns of a table beside the list of entries
OTHER = "Other"  # Snakemake's name for a missing category or subcategory
# The description's links to categories, as Snakemake writes them: javascript:app.showCategory('Name').
CATEGORY_LINK = re.compile(r"app\.showCategory\('([^']*)'\)")


class NoChromium(RuntimeError):
    """No Chromium with its chromedriver on this machine."""


def chromium_paths() -> tuple[str, str]:
    """The Chromium browser and chromedriver on PATH."""
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        raise NoChromium("no Chromium with chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    return browser, driver


def headless_chromium() -> webdriver.Chrome:
    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # --no-sandbox: as root (CI), Chromium does not start with its sandbox on
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size={},{}".format(*WINDOW)):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(driver))


def broken_references(element) -> list[str]:
    """What docutils rendered in place of references it could not resolve, with its reasons."""
    return ([f"broken reference {found.text!r}" for found in element.find_elements(By.CSS_SELECTOR, ".problematic")]
            + [f"docutils: {found.text.splitlines()[-1]}"
               for found in element.find_elements(By.CSS_SELECTOR, ".system-message") if found.text])


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class ReportPage:
    """The report in a browser, driven through its menu and buttons: the report is a React app,
    whose pages exist only once rendered and have no address of their own."""

    def __init__(self, driver: webdriver.Chrome, report: Path):
        self.driver, self.uri = driver, report.resolve().as_uri()
        self.wait = WebDriverWait(driver, TIMEOUT_S)

    def find(self, xpath: str, within=None) -> list:
        return (within or self.driver).find_elements(By.XPATH, xpath)

    def open_index(self) -> None:
        self.driver.get(self.uri)
        self.wait.until(lambda _: self.find("//nav//li"))
        # The navigation animates its width from one view to the next: a button clicked during the
        # animation has moved away from where the click lands.
        self.driver.execute_script(
            "const style = document.createElement('style');"
            "style.textContent = '* { transition: none !important; animation: none !important; }';"
            "document.head.appendChild(style);")

    def description(self):
        """The workflow description beside the rule graph on the index."""
        return self.wait.until(lambda _: self.find("//div[contains(@class, 'prose')]"))[0]

    def category_links(self) -> list:
        """The menu's links under its Results heading, one per category."""
        return self.find("//nav//li[normalize-space()='Results']/following-sibling::li/a")

    def open_category(self, category: str) -> list[str]:
        """Open a category from the index: its subcategories, or [] where it has one and the report
        lists that one's entries at once."""
        self.open_index()
        next(link for link in self.category_links() if link.text == category).click()
        self.wait.until(lambda _: self.breadcrumb(category))
        return [] if self.entry_rows() else [link.text for link in self.subcategory_links()]

    def open_subcategory(self, category: str, subcategory: str | None) -> None:
        """Open a subcategory's list of entries (None: that of a category with one subcategory)."""
        self.open_category(category)
        if subcategory is not None:
            next(link for link in self.subcategory_links() if link.text == subcategory).click()
            self.wait.until(lambda _: self.breadcrumb(subcategory))

    def breadcrumbs(self) -> list:
        """The links of the trail above the navigation: home, Results, the category, ..."""
        return self.find("//nav/div/nav/ol/li/a")

    def breadcrumb(self, text: str) -> list:
        return [link for link in self.breadcrumbs() if link.text == text]

    def subcategory_links(self) -> list:
        return self.find("//nav/div/div/ul/li/a")

    def entry_rows(self) -> list:
        return self.find("//nav//table/tbody/tr")

    def labels(self, row) -> list[str]:
        return [cell.text for cell in self.find("./td", row)[:-1]]

    def buttons(self, row) -> tuple:
        """An entry's view and information buttons."""
        view, information = self.find("./td[last()]//a", row)[:2]
        return view, information

    def caption(self, row) -> tuple[str, list[str]]:
        """Open an entry's information: its caption and the broken references in it; then go back
        to the list of entries."""
        self.buttons(row)[1].click()
        self.wait.until(lambda _: self.in_information())
        text, broken = "", []
        for heading in self.find("//nav//li[normalize-space()='Description']"):
            body = self.find("./following-sibling::li[1]", heading)[0]
            text, broken = body.text.strip(), broken_references(body)
        self.breadcrumbs()[-2].click()  # the one before the entry's own: the list it was opened from
        self.wait.until(lambda _: not self.in_information() and self.entry_rows())
        return text, broken

    def in_information(self) -> bool:
        """Whether the navigation shows an entry's information (which always has a Size heading)."""
        return bool(self.find("//nav//li[normalize-space()='Size']"))

    def show(self, row) -> tuple[dict, str]:
        """Click an entry's view button: how it is shown ({"shown_as": image, html or download,
        "rows": table rows of an HTML page}) and what is wrong with that ("" if nothing)."""
        view = self.buttons(row)[0]
        if view.get_attribute("download"):  # the report's view of what is neither image, PDF nor HTML
            return {"shown_as": "download", "rows": None}, "offered only as a download, not shown"
        before = self.shown_fingerprint()
        view.click()
        self.wait.until(lambda _: self.shown_fingerprint() not in (None, before))
        element = self.shown_element()
        if element.tag_name == "img":
            self.wait.until(lambda _: self.driver.execute_script("return arguments[0].complete", element))
            pixels = self.driver.execute_script("return arguments[0].naturalWidth", element)
            return {"shown_as": "image", "rows": None}, "" if pixels else "image without pixels"
        self.driver.switch_to.frame(element)
        try:
            self.wait.until(lambda driver: driver.execute_script("return document.readyState") == "complete")
            text = self.driver.execute_script("return document.body ? document.body.innerText.trim() : ''")
            rows = len(self.find("//table/tbody/tr"))
        finally:
            self.driver.switch_to.default_content()
        return {"shown_as": "html", "rows": rows}, "" if text else "HTML page without content"

    def shown_element(self):
        """The entry shown beside the navigation: an image, or a page (HTML, PDF) in an iframe."""
        found = self.find("//img[not(ancestor::nav)] | //iframe")
        return found[0] if found else None

    def shown_fingerprint(self) -> str | None:
        element = self.shown_element()
        if element is None:
            return None
        # an iframe is made anew for each entry shown, an image element is kept and given another src
        return self.driver.execute_script(
            "const e = arguments[0]; e.dataset.seen = e.dataset.seen || Math.random();"
            "return e.dataset.seen + e.src.length + e.src.slice(-64)", element)

    def screenshot(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))


def check_entries(page: ReportPage, category: str, subcategory: str | None, screenshot: Path) -> tuple[list, list]:
    """Every entry of one (sub)category: what was seen of each, and the problems."""
    where = category if subcategory is None else f"{category} / {subcategory}"
    problems = [f"{where}: entries without a category or subcategory land under {OTHER!r}"
                for name in (category, subcategory) if name == OTHER]
    page.open_subcategory(category, subcategory)
    if not page.entry_rows():
        return [], problems + [f"category {where!r}: no entries"]
    entries = []
    for index in range(len(page.entry_rows())):
        labels = page.labels(page.entry_rows()[index])
        caption, broken = page.caption(page.entry_rows()[index])
        shown, problem = page.show(page.entry_rows()[index])
        if index == 0:
            page.screenshot(screenshot)
        entries.append({"labels": labels, "caption": caption, **shown})
        name = " ".join(labels)
        problems += [f"{where}: {name}: {text}" for text in [problem, "" if caption else "no caption", *broken] if text]
    return entries, problems


def check_report(report: Path, outdir: Path, required: list[str]) -> tuple[list[str], dict]:
    """Click through the report: the problems found and what was seen (see the module docstring)."""
    outdir.mkdir(parents=True, exist_ok=True)
    driver = headless_chromium()
    try:
        page = ReportPage(driver, report)
        page.open_index()
        description = page.description()
        page.screenshot(outdir / "index.png")
        menu = [link.text for link in page.category_links()]
        linked = [unquote(name) for link in description.find_elements(By.TAG_NAME, "a")
                  for name in CATEGORY_LINK.findall(link.get_attribute("href") or "")]
        problems = [f"workflow description: {text}" for text in broken_references(description)]
        problems += [f"category {category!r}: no entries (not in the report's menu)"
                     for category in dict.fromkeys(required + linked) if category not in menu]
        seen = {}
        for category in menu:
            seen[category] = {}
            for subcategory in page.open_category(category) or [None]:
                name = slug(category) + ("" if subcategory is None else f"--{slug(subcategory)}")
                entries, found = check_entries(page, category, subcategory, outdir / f"{name}.png")
                seen[category][subcategory or ""] = entries
                problems += found
    finally:
        driver.quit()
    return problems, seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the HTML file `snakemake --report` wrote")
    parser.add_argument("outdir", type=Path, help="where the screenshots and summary.json go")
    parser.add_argument("--category", action="append", default=[],
                        help="a category that must have entries (repeat for several)")
    args = parser.parse_args(argv)
    try:
        problems, seen = check_report(args.report, args.outdir, args.category)
    except NoChromium as missing:
        print(missing, file=sys.stderr)
        return 2
    (args.outdir / "summary.json").write_text(json.dumps(seen, indent=1, ensure_ascii=False) + "\n")
    entries = sum(len(entries) for subcategories in seen.values() for entries in subcategories.values())
    print(f"{len(seen)} categories, {entries} entries, {len(problems)} problems; screenshots in {args.outdir}")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
