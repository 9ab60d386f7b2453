"""The arena page: HTTP rules (CSRF, one vote, bounds, escaping) and a real headless Chromium run."""

from __future__ import annotations

import re
import shutil

import pytest

pytest.importorskip("uvicorn", reason="the arena needs uvicorn and starlette (pip install sftkit[serve])")
httpx = pytest.importorskip("httpx")

XSS = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'
PROMPT = "Say <b>hi</b>"


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    from sftkit.arena.app import Arena
    from sftkit.arena.store import Store
    from sftkit.serving.http import BackgroundServer, bind
    from sftkit.serving.loading import load_models
    from sftkit.tiny import CHATML_TEMPLATE, save_tiny_model

    root = tmp_path_factory.mktemp("arena")
    model = save_tiny_model(root / "model", chat_template=CHATML_TEMPLATE)
    served = load_models([f"alpha={model}", f"beta={model}"], device="cpu")
    settings = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 12, "seed": 0}
    store = Store(root / "arena")
    # a model answer that tries to run script: stored as if generated ahead
    store.add_answer("list", PROMPT, "alpha", XSS, settings)
    store.add_answer("list", PROMPT, "beta", "Hello there!", settings)
    app = Arena(store, served, [("list", PROMPT)], settings, seed=1)
    app.generate_ahead()
    srv = BackgroundServer(app.app(), bind("127.0.0.1", 0)).start()
    yield srv, app
    srv.stop()
    for m in served.values():
        m.engine.close()


def _battle(client):
    page = client.get("/", follow_redirects=True)
    assert page.status_code == 200
    token = re.search(r'name=csrf value="([0-9a-f]{64})"', page.text).group(1)
    return page, str(page.url).rsplit("/", 1)[1], token


def test_vote_rules_over_http(arena):
    srv, app = arena
    client = httpx.Client(base_url=srv.url)
    page, bid, token = _battle(client)
    battles = app.store.count("battles")
    assert _battle(client)[1] == bid and app.store.count("battles") == battles  # reloading: the same open battle
    no_cookie = httpx.get(srv.url + "/")
    assert no_cookie.status_code == 303 and app.store.count("battles") == battles  # no battle without a voter
    assert "&lt;script&gt;" in page.text and "<script>" not in page.text and "<img" not in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no script at all
    assert "alpha" not in page.text and "beta" not in page.text  # blind before the vote
    other = httpx.Client(base_url=srv.url)
    other.get("/")
    stolen = other.post(f"/battle/{bid}/vote", data={"csrf": token, "choice": "a"})  # another voter's token
    assert stolen.status_code == 403
    assert client.post(f"/battle/{bid}/vote", data={"csrf": token, "choice": "maybe"}).status_code == 400
    assert client.post(f"/battle/{bid}/vote", data={"csrf": token, "choice": "a", "better": "x" * 9000}).status_code == 413
    huge = client.post(f"/battle/{bid}/vote", content=b"csrf=" + b"a" * (70 * 1024),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 403
    voted = client.post(f"/battle/{bid}/vote", data={"csrf": token, "choice": "b", "better": "Hi <i>you</i>"},
                        follow_redirects=True)
    assert voted.status_code == 200 and "You voted: B is better" in voted.text
    assert {m for m in re.findall(r"id=model-[ab]>([^<]+)<", voted.text)} == {"alpha", "beta"}  # revealed
    assert client.post(f"/battle/{bid}/vote", data={"csrf": token, "choice": "a"}).status_code == 409
    assert app.store.vote_of(bid, client.cookies["sftkit_voter"]) == "b"
    assert client.get("/battle/nope").status_code == 404
    assert client.get("/../../etc/passwd").status_code == 404
    assert client.get("/static/arena.sqlite").status_code == 404


def test_typed_prompt_is_answered_on_demand(arena):
    srv, app = arena
    client = httpx.Client(base_url=srv.url)
    _, _, token = _battle(client)
    before = app.store.count("answers")
    made = client.post("/ask", data={"csrf": token, "prompt": "Typed <u>question</u>?"}, follow_redirects=True)
    assert made.status_code == 200 and "Typed &lt;u&gt;question&lt;/u&gt;?" in made.text
    assert app.store.count("answers") == before + 2
    assert client.post("/ask", data={"csrf": token, "prompt": "x" * 5000}).status_code == 400


def _chrome():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no system Chromium + chromedriver (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a test dependency (pip install sftkit[test])")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_headless_chromium_battle_vote_reveal_ratings(arena):
    srv, _ = arena
    browser = _chrome()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        browser.get(srv.url + "/")
        assert "/battle/" in browser.current_url
        texts = [browser.find_element(By.CSS_SELECTOR, f"#answer-{s} .text").text for s in "ab"]
        assert XSS in texts  # shown as text
        assert browser.title != "pwned" and not browser.find_elements(By.CSS_SELECTOR, ".answer img")
        assert browser.find_element(By.ID, "prompt").text == PROMPT
        assert not browser.find_elements(By.CSS_SELECTOR, ".model")  # names hidden
        browser.find_element(By.ID, "vote-a").click()
        # the vote is a form post: wait for the next page instead of racing the navigation
        wait = WebDriverWait(browser, 60)
        assert wait.until(EC.presence_of_element_located((By.ID, "voted"))).text == "You voted: A is better."
        names = {browser.find_element(By.ID, f"model-{s}").text for s in "ab"}
        assert names == {"alpha", "beta"}
        browser.find_element(By.ID, "ratings").click()
        table = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "table.ratings"))).text
        assert "alpha" in table and "beta" in table and "win rate" in table
        assert browser.title != "pwned"
    finally:
        browser.quit()
