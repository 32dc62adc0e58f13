"""The playground at `/` in a real browser (headless Chromium, Debian's `chromium` package driven
by playwright through `executable_path`; `make test` installs it where missing) against the real
stack: key, text-to-image with a moving progress bar, download, use as input, cancel, a painted
inpaint mask, a failed run's problem and retry, a validation problem, history after a reload, a
phone-sized screen. One browser for the module, one page per test, a tenant of its own.

Screenshots of the main states go to the module's temporary folder, and also to
$RENDERQ_PLAYGROUND_SHOTS when set (a stable place to look at them).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from playwright import sync_api as playwright_api
from playwright.sync_api import expect

from tests.conftest import wait_for_run

FINAL = ("completed", "failed", "canceled", "expired")
SMALL = {"width": "64", "height": "64"}


def chromium_path() -> str:
    path = os.environ.get("RENDERQ_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no chromium: `make test` installs Debian's chromium package (as root, with apt-get); "
                    "or apt-get install -y chromium, or set RENDERQ_TEST_CHROMIUM to a Chromium binary")
    return path


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=chromium_path())
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def tenant_key(stack) -> str:
    """A tenant of the module's own, so the page's history holds only what these tests made."""
    return stack.create_key(tenant="playground")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("playground-shots")
    yield folder
    stable = os.environ.get("RENDERQ_PLAYGROUND_SHOTS")
    if stable:
        shutil.copytree(folder, stable, dirs_exist_ok=True)
    print(f"playground screenshots: {folder}" + (f" and {stable}" if stable else ""))


class Playground:
    """The page, in the words of what a person does on it."""

    def __init__(self, page, shots: Path) -> None:
        self.page = page
        self.shots = shots

    def open(self, base: str) -> "Playground":
        self.page.goto(base + "/")
        self.page.wait_for_selector("body[data-ready=true]")
        return self

    def shot(self, name: str, full: bool = False) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=full)

    def fill(self, operation: str = "text-to-image", prompt: str | None = "a red kite over the sea", **fields) -> None:
        self.page.click(f"#ops [data-op={operation}]")
        if prompt is not None:
            self.page.fill("#prompt", prompt)
        for name, value in fields.items():
            self.page.fill(f"#{name}", str(value))

    def submit(self):
        """Press the button; the card of the new run (the first of the list)."""
        runs = self.page.locator(".run")
        before = runs.count()
        self.page.click("#submit")
        expect(runs).to_have_count(before + 1)
        return runs.first

    def wait_status(self, card, status: str, timeout: float = 30_000) -> None:
        # Locator waits: the page's Content-Security-Policy forbids eval, which wait_for_function needs.
        expect(card).to_have_attribute("data-status", status, timeout=timeout)

    def watch_progress(self) -> None:
        """Record, in order, every value the progress bars show, each live preview shown, and
        the final images appearing."""
        self.page.evaluate("""() => {
            window.seen = [];
            new MutationObserver((changes) => {
                for (const change of changes) {
                    const target = change.target;
                    if (change.attributeName === 'aria-valuenow') window.seen.push(['progress', Number(target.getAttribute('aria-valuenow'))]);
                    else if (change.attributeName === 'data-previews') window.seen.push(['preview', target.querySelector('.preview img').src.split(',')[0]]);
                    else if ([...change.addedNodes].some((node) => node.classList && node.classList.contains('shot'))) window.seen.push(['image']);
                }
            }).observe(document.getElementById('runs'), {subtree: true, childList: true, attributes: true,
                                                         attributeFilter: ['aria-valuenow', 'data-previews']});
        }""")

    def seen(self) -> list:
        return self.page.evaluate("window.seen")


@pytest.fixture
def playground(browser, stack, tenant_key, shots):
    """A fresh page holding the module tenant's key in its sessionStorage."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark", accept_downloads=True)
    context.add_init_script(f"sessionStorage.setItem('renderq.apiKey', {tenant_key!r})")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield Playground(page, shots).open(stack.api_url)
    context.close()
    assert not errors, f"the page threw: {errors}"


def test_the_page_asks_for_a_key_and_takes_it(browser, stack, tenant_key, shots):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    view = Playground(page, shots).open(stack.api_url)
    state = page.locator("#keystate")
    assert state.inner_text() == "API key needed"
    view.shot("01-key-needed")
    page.fill("#apikey", tenant_key)
    page.click("#keysave")
    expect(state).to_have_attribute("data-state", "ok")
    assert page.evaluate("sessionStorage.getItem('renderq.apiKey')") == tenant_key
    # The model picker lists the deployment's base models, from GET /v1/models.
    page.locator("#model_id option[value=broken-model]").wait_for(state="attached")
    context.close()


def test_text_to_image_moves_the_progress_bar_then_shows_the_image_and_downloads_the_png(playground, tmp_path):
    page = playground.page
    playground.watch_progress()
    playground.fill(prompt="a lighthouse at dusk, oil painting", num_inference_steps=40, seed=7, **SMALL)
    card = playground.submit()
    card.locator(".bar").wait_for()
    playground.wait_status(card, "running")
    card.locator(".preview img").wait_for(timeout=30_000)  # visible: a live preview is shown
    playground.shot("02-running")
    card.locator(".shot img").wait_for(timeout=30_000)
    assert card.get_attribute("data-status") == "completed"
    seen = playground.seen()
    progress = [event[1] for event in seen if event[0] == "progress"]
    between = [value for value in progress if 0 < value < 100]
    assert between and between == sorted(between), progress  # the bar moved, forward only
    # The stack previews every 2 steps: live previews (JPEGs from the SSE stream) before the image.
    kinds = [event[0] for event in seen]
    assert "preview" in kinds and kinds.index("preview") < kinds.index("image"), seen
    assert {event[1] for event in seen if event[0] == "preview"} == {"data:image/jpeg;base64"}, seen
    assert "64×64" in card.locator(".shot-meta").inner_text() and "seed 7" in card.locator(".shot-meta").inner_text()
    assert "expires in 23 h" in card.locator(".expiry").inner_text()
    # The gallery shows the image's thumbnail (a 64 px PNG is its own: worker/finishing.py); its
    # link and Download are the PNG.
    thumbnail, link = card.locator(".shot img").get_attribute("src"), card.locator(".shot-link").get_attribute("href")
    assert "/0.png" in thumbnail and "/0.png" in link, (thumbnail, link)
    playground.shot("03-completed")
    with page.expect_download() as download:
        card.locator(".act-download").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"{card.get_attribute('data-run-id')}-0.png"
    image = Image.open(saved)
    assert (image.format, image.size) == ("PNG", (64, 64))
    # "Use as input" puts the image's asset id in the form, for the next operation.
    card.locator(".act-use").click()
    asset_id = card.locator(".asset-id").inner_text()
    assert asset_id.startswith("ast_") and asset_id in page.locator("#input-asset").inner_text()
    assert page.locator("#ops [aria-selected=true]").get_attribute("data-op") == "image-to-image"
    # ... and the next operation takes it: upscale it ×2.
    page.click("#ops [data-op=upscale]")
    upscaled = playground.submit()
    upscaled.locator(".shot img").wait_for(timeout=30_000)
    assert upscaled.locator(".op").inner_text() == "Upscale"
    assert upscaled.locator(".shot-meta").inner_text() == "128×128"


def test_cancel_stops_a_long_run_and_shows_it_canceled(playground):
    page = playground.page
    playground.fill(prompt="a very slow render", num_inference_steps=60, width=256, height=256)
    card = playground.submit()
    playground.wait_status(card, "running")
    card.locator(".bar:not([aria-valuenow='0'])").wait_for(timeout=30_000)
    card.locator(".act-cancel").click()
    playground.wait_status(card, "canceled")
    assert card.locator(".act-cancel").is_hidden() and card.locator(".act-retry").is_visible()
    assert card.locator(".shot").count() == 0
    assert card.locator(".pct").inner_text().startswith("Stopped at")
    playground.shot("04-canceled")


def test_a_painted_mask_inpaints_only_there(playground, stack, tenant_key, tmp_path):
    page = playground.page
    source = tmp_path / "input.png"
    Image.new("RGB", (64, 64), (40, 90, 200)).save(source)
    playground.fill("inpaint", prompt="a yellow balloon", num_inference_steps=3)
    page.set_input_files("#file", str(source))
    page.locator("#mask").wait_for()
    box = page.locator("#mask").bounding_box()
    # Paint the left half's middle band (the brush is 28 screen pixels wide).
    page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5, steps=6)
    page.mouse.up()
    playground.shot("05-inpaint-mask")
    card = playground.submit()
    card.locator(".shot img").wait_for(timeout=30_000)
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {tenant_key}"}, timeout=10) as api:
        run = api.get(f"/v1/generations/{card.get_attribute('data-run-id')}").json()
        assert run["operation"] == "inpaint" and run["status"] == "completed"
        mask_url = api.get(f"/v1/assets/{run['request']['mask_asset_id']}").json()["url"]
        mask = Image.open(io.BytesIO(httpx.get(mask_url).content)).convert("L")
    assert mask.size == (64, 64)
    assert mask.getpixel((16, 32)) > 200 and mask.getpixel((60, 32)) < 50 and mask.getpixel((16, 4)) < 50
    playground.shot("06-inpaint-done")


def test_a_failed_run_shows_its_problem_and_retry_makes_a_new_run(playground):
    page = playground.page
    playground.fill(num_inference_steps=2, **SMALL)
    page.select_option("#model_id", "broken-model")
    card = playground.submit()
    playground.wait_status(card, "failed")
    error = card.locator(".run-error")
    assert error.locator(".problem-title").inner_text() == "Model unavailable"
    assert "could not be loaded" in error.locator(".problem-detail").inner_text()
    failed_id = card.get_attribute("data-run-id")
    card.locator(".act-retry").click()
    expect(page.locator(".run").first).not_to_have_attribute("data-run-id", failed_id)
    assert page.locator(".run").first.locator(".run-params").inner_text().startswith("64×64")
    playground.shot("07-failed-retried")


def test_a_validation_error_shows_the_problems_title_and_detail(playground):
    playground.fill(width=65, height=64)
    playground.page.click("#submit")
    problem = playground.page.locator("#form-problem")
    problem.wait_for()
    assert problem.locator(".problem-title").inner_text() == "Request validation failed"
    assert "width" in problem.locator(".problem-detail").inner_text()
    assert "multiple of 8" in problem.locator(".problem-detail").inner_text()
    # The field the problem's `errors` name is outlined, and only that one.
    assert playground.page.locator("#composer .invalid").evaluate_all("(elements) => elements.map((e) => e.id)") == ["width"]
    playground.shot("08-validation-problem")


def test_history_survives_a_reload(playground, stack, tenant_key):
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {tenant_key}"}, timeout=10) as api:
        submitted = api.post("/v1/generations", json={"prompt": "made by another client", "width": 64, "height": 64,
                                                      "num_inference_steps": 2}).json()
        wait_for_run(api, submitted["run_id"], statuses=FINAL)
    page = playground.page
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    card = page.locator(f".run[data-run-id={submitted['run_id']}]")
    card.locator(".shot img").wait_for()
    assert card.locator(".run-prompt").inner_text() == "made by another client"
    # Newest first, and the runs the page made earlier are there too.
    assert page.locator(".run").first.get_attribute("data-run-id") == submitted["run_id"]
    assert page.locator(".run").count() >= 2
    playground.shot("09-history", full=True)


def test_the_page_fits_a_phone_screen(playground):
    page = playground.page
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(100)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the phone"
    form, runs = page.locator("#composer").bounding_box(), page.locator(".runs").bounding_box()
    assert form["width"] <= 390 and runs["y"] >= form["y"] + form["height"]  # one column: the form, then the runs
    assert page.locator("#submit").is_visible()
    playground.shot("10-phone")
    page.locator(".runs").scroll_into_view_if_needed()
    playground.shot("11-phone-runs")
