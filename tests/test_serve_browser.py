"""`mmbind serve` end to end in a real browser: Debian's headless Chromium driven by Playwright,
against a trained digits run (tests/serve_run.py: trained once per machine, then cached).

Set MMBIND_SCREENSHOTS=docs/images/explorer to keep the screenshots (docs/explorer.md shows them).
"""
from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api", reason="the test extra is not installed: run scripts/setup.sh")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is not installed: run scripts/setup.sh")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REAL_WAV = Path("/usr/share/asterisk/sounds/en/digits/7.wav")
TIMEOUT_MS = 60_000

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing: run scripts/setup.sh (it installs Debian's chromium package)",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A copy of the trained run's store (tests must not change the cached one), its binder and recipe."""
    from serve_run import trained_run

    from mmbind.binder import Binder

    folder = trained_run()
    copy = tmp_path_factory.mktemp("serve") / "embeddings.h5"
    shutil.copyfile(folder / "embeddings.h5", copy)
    return {"folder": folder, "store": copy, "binder": Binder.from_pretrained(folder / "model")}


@pytest.fixture(scope="module")
def server(run):
    from mmbind.serve.app import create_app
    from mmbind.serve.explorer import Explorer
    from mmbind.serve.sources import Sources

    explorer = Explorer(run["store"], run["binder"], sources=Sources.from_recipe(run["folder"] / "recipe.toml"),
                        map_method="pca")
    explorer.warm_up()
    port = free_port()
    instance = uvicorn.Server(uvicorn.Config(create_app(explorer), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}/", "explorer": explorer}
    instance.should_exit = True
    thread.join(10)
    explorer.close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    yield page
    context.close()
    assert not errors, errors


def open_page(page, server, query: str = "") -> None:
    page.goto(server["url"] + query)
    page.wait_for_selector("body[data-ready]")


def screenshot(page, name: str) -> None:
    """Keep a screenshot for docs/explorer.md when MMBIND_SCREENSHOTS names a folder (as a
    256-colour PNG, to keep the docs small)."""
    folder = os.environ.get("MMBIND_SCREENSHOTS")
    if not folder:
        return
    from PIL import Image

    Path(folder).mkdir(parents=True, exist_ok=True)
    target = Path(folder) / f"{name}.png"
    page.screenshot(path=str(target))
    Image.open(target).convert("RGB").quantize(256).save(target, optimize=True)


def search(page, query: str, target: str | None = None) -> list[dict]:
    if target:
        page.select_option("#target", target)
    page.fill("#query", query)
    page.press("#query", "Enter")
    return results(page)


def results(page) -> list[dict]:
    page.wait_for_function("document.getElementById('status').textContent.includes('results')")
    return page.eval_on_selector_all("#results li", "cards => cards.map(c => ({label: c.dataset.label, "
                                     "row: Number(c.dataset.row), collection: c.dataset.collection}))")


def test_the_map_shows_every_point_of_the_store(page, server):
    open_page(page, server)
    total = server["explorer"].total
    drawn = page.evaluate("document.getElementById('map').data.filter(t => t.x.length > 0 && !t.name.startsWith('query'))"
                          ".reduce((n, t) => n + t.x.length, 0)")
    assert drawn == total and total == sum(c.count for c in server["explorer"].collections.values())
    assert page.text_content("#status") == f"{total:,} points in 3 collections"
    legend = page.eval_on_selector_all(".legend .traces", "items => items.map(i => i.textContent)")
    assert [t.split(" (")[0] for t in legend] == ["zero", "one", "two", "three", "four", "five", "six", "seven",
                                                   "eight", "nine"]
    # every request went to the server itself: the page needs no network
    assert page.requests and all(url.startswith(server["url"]) or url.startswith("data:") for url in page.requests)
    screenshot(page, "map")


def test_a_text_query_shows_sevens_first(page, server):
    open_page(page, server)
    found = search(page, 'text:"the number seven"', "image")
    assert len(found) == 10 and found[0]["label"] == "seven"
    assert sum(r["label"] == "seven" for r in found[:5]) >= 4, found
    assert "q=text%3A%22the+number+seven%22" in page.url and "target=image" in page.url
    assert page.evaluate("document.getElementById('map').data.some(t => t.name === 'query')")
    screenshot(page, "text-query")
    # the URL is the state: opening it again shows the same results
    shared = page.url
    page.goto(shared)
    page.wait_for_selector("body[data-ready]")
    assert results(page) == found


THUMBNAIL_COLOURS = """() => [...document.querySelectorAll('#results li img')].map(img => {
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const g = canvas.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
  let r = 0, gr = 0, b = 0, n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.max(d[i], d[i + 1], d[i + 2]) > 100) { r += d[i]; gr += d[i + 1]; b += d[i + 2]; n++; }
  }
  return n ? [r / n, gr / n, b / n] : null;
})"""


def red_sevens(run) -> list[int]:
    """Rows of the red 7s in the image collection, the clearest 7 first (by the binder: nearest
    to "the number seven"; a badly drawn 7 also looks like an 8 or a 9)."""
    import numpy as np

    from mmbind.store.store import EmbeddingStore

    with EmbeddingStore(run["folder"] / "embeddings.h5", mode="r") as store:
        rows = [e["corpus_id"] for e in store.entries("image", slice(None)) if e["meta"]["key"] == "7/red"]
        vectors = store.vectors("image", rows)
    seven = np.asarray(run["binder"].encode(["the number seven"], modality="text"))[0]
    return [rows[i] for i in np.argsort(-(vectors @ seven), kind="stable")]


def test_red_seven_minus_red_plus_blue_shows_blue_sevens(page, server, run):
    from mmbind.store.store import EmbeddingStore

    rows = red_sevens(run)
    # Over every red 7 of the store, most of the top 5 are blue 7s ...
    blue = [sum(hit["label"] == "seven" and server["explorer"].item("image", hit["row"])["meta"]["key"] == "7/blue"
                for hit in server["explorer"].search(f'id:image/#{row} - text:"red" + text:"blue"', "image", 5)["results"])
            for row in rows]
    assert len(rows) >= 5 and sum(blue) / len(blue) >= 3, blue
    # ... and in the page, for the clearest one, the thumbnails are blue 7s.
    red_seven = rows[0]
    open_page(page, server)
    found = search(page, f'id:image/#{red_seven} - text:"red" + text:"blue"', "image")
    page.wait_for_function("[...document.querySelectorAll('#results li img')].every(i => i.complete && i.naturalWidth)")
    colours = page.evaluate(THUMBNAIL_COLOURS)
    blue_sevens = [r["label"] == "seven" and c[2] > 1.5 * max(c[0], c[1]) for r, c in zip(found, colours)]
    assert sum(blue_sevens[:5]) >= 3, list(zip(found, colours))
    with EmbeddingStore(run["folder"] / "embeddings.h5", mode="r") as store:  # the store agrees with the pixels
        keys = [e["meta"]["key"] for e in store.entries("image", [r["row"] for r in found[:5]])]
    assert sum(k == "7/blue" for k in keys) >= 3, keys
    assert page.text_content("#terms").startswith(f'= 1*id:image/#{red_seven} - 1*text:red + 1*text:blue')
    screenshot(page, "arithmetic")


def test_dropping_a_real_recording_returns_its_digits_phrases(page, server):
    open_page(page, server)
    page.select_option("#target", "text")
    data = base64.b64encode(REAL_WAV.read_bytes()).decode()
    page.evaluate("""([name, data]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
        const map = document.getElementById("map");
        map.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        map.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }""", ["7.wav", data])
    page.wait_for_function("document.getElementById('status').textContent.includes('embedded as audio')")
    found = results(page)
    assert page.input_value("#query").startswith("vec:upload-")
    assert found[0]["label"] == "seven" and sum(r["label"] == "seven" for r in found[:5]) >= 3, found
    phrases = page.eval_on_selector_all("#results li q", "qs => qs.map(q => q.textContent)")
    assert len(phrases) == 10 and all(phrases)
    screenshot(page, "dropped-wav")


def test_a_bad_expression_shows_its_error_at_its_column(page, server):
    open_page(page, server)
    query = 'id:image/#3 - text:"red" +'
    page.fill("#query", query)
    page.press("#query", "Enter")
    page.wait_for_selector("#error:not(.hidden)")
    message = page.text_content("#error")
    assert "expected an operand" in message and f"column {len(query) + 1}" in message
    caret = page.text_content("#error pre").splitlines()
    assert caret[0].strip() == query and caret[1].index("^") == caret[0].index("i") + len(query)
    assert page.evaluate("document.getElementById('query').selectionStart") == len(query)
    assert page.eval_on_selector_all("#results li", "cards => cards.length") == 0
    screenshot(page, "error")
    page.fill("#query", "id:image/#99999")  # a well-formed query the store cannot answer
    page.press("#query", "Enter")
    page.wait_for_function("document.getElementById('error').textContent.includes('out of range')")
    assert "Traceback" not in page.text_content("#error")


POINT_ON_SCREEN = """([curve, point]) => {
  const gd = document.getElementById('map'), L = gd._fullLayout, t = gd._fullData[curve];
  const box = gd.getBoundingClientRect();
  return [box.left + L._size.l + L.xaxis.d2p(t.x[point]), box.top + L._size.t + L.yaxis.d2p(t.y[point])];
}"""


def test_hover_pin_legend_and_colouring(page, server):
    explorer = server["explorer"]
    audio = explorer.collections["audio"]
    open_page(page, server, "?color=collection&show=audio")
    assert page.evaluate("document.getElementById('map').data.filter(t => t.x.length).map(t => t.name)") == \
        [f"audio ({audio.count})"]
    x, y = page.evaluate(POINT_ON_SCREEN, [0, 3])
    page.mouse.move(x, y)
    page.wait_for_selector("#hover:not(.hidden) audio")
    page.mouse.click(x, y)
    pin = page.wait_for_selector(".pin")
    assert pin.get_attribute("data-collection") == "audio"
    page.wait_for_selector(".pin audio")
    page.wait_for_selector(".pin .plot .main-svg")  # the waveform
    assert "pins=audio%2F%23" in page.url
    screenshot(page, "pinned-audio")
    page.select_option("#color", "label")
    page.check("#collections input[value='image']")
    image = explorer.collections["image"]
    drawn = f"document.getElementById('map').data.reduce((n, t) => n + (t.name.startsWith('pinned') ? 0 : t.x.length), 0) === {audio.count + image.count}"
    page.wait_for_function(drawn + " && document.querySelectorAll('.legend .traces').length >= 10")
    page.click(".legend .traces >> nth=7")  # "seven": hidden by a click on its legend entry
    # Plotly waits out its double-click delay before acting on a single click
    page.wait_for_function("document.getElementById('map')._fullData.some(t => t.visible === 'legendonly')")
    hidden = page.evaluate("document.getElementById('map')._fullData.filter(t => t.visible === 'legendonly').map(t => t.name)")
    assert len(hidden) == 1 and hidden[0].startswith("seven")
    assert "color=label" in page.url and "show=" in page.url


def test_the_command_listens_on_loopback_only(run, tmp_path):
    store = tmp_path / "store.h5"
    shutil.copyfile(run["store"], store)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mmbind", "serve", str(store), "--binder",
                                str(run["folder"] / "model"), "--port", str(port), "--map", "pca"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        import httpx

        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                meta = httpx.get(f"http://127.0.0.1:{port}/api/meta", timeout=5).json()
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read()
                time.sleep(1)
        assert meta["total"] > 0 and not meta["allow_embed"]
        listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        local = [fields[1] for fields in listening if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port]
        assert local == [f"0100007F:{port:04X}"]  # 127.0.0.1 and nothing else
    finally:
        process.terminate()
        process.wait(30)
