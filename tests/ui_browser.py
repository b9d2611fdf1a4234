"""Drives procwarden's status page (GET /ui) in real headless Chromium through Selenium.

Usage: ui_browser.py URL TOKEN [SCREENSHOT.png]

The server at URL must require TOKEN. The script opens the page, answers the token prompt,
starts processes through the API (as another client would), and checks what the page shows:
a running process appears, its output grows while followed, the kill button ends it, the
start form starts one, and a command that looks like HTML is shown as text. With a third
argument it also saves a screenshot of the page. Exits non-zero with a message on the first
failure; every wait is bounded.
"""

import json
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 20  # seconds, per step

url, token = sys.argv[1], sys.argv[2]
screenshot = sys.argv[3] if len(sys.argv) > 3 else None


def api(method, path, body=None):
    request = urllib.request.Request(
        url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token},
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.load(response)


def start(command):
    return api("POST", "/api/v0/processes/start", {"command": command})["id"]


def step(what):
    print(f"[{time.monotonic() - began:6.2f}s] {what}", flush=True)


began = time.monotonic()
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,820",
]:
    options.add_argument(flag)
profile = tempfile.mkdtemp(prefix="procwarden-ui-")
options.add_argument(f"--user-data-dir={profile}")
driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
# The list is re-rendered as it refreshes, so an element found a moment ago may be gone.
RACES = (NoSuchElementException, StaleElementReferenceException)
wait = WebDriverWait(driver, WAIT, poll_frequency=0.05, ignored_exceptions=RACES)


def text(selector):
    """The text of the element `selector` matches now, read in one step ('' if none)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector
    )


def click(selector):
    """A real click on the element `selector` matches, found again if the list re-rendered."""
    def attempt(d):
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait.until(attempt)
try:
    step("browser up")
    driver.get(url + "/ui")
    # The list call gets 401: the page asks for the token.
    dialog = wait.until(lambda d: d.find_element(By.ID, "token-dialog"))
    wait.until(lambda d: dialog.get_attribute("open") is not None)
    driver.find_element(By.ID, "token-input").send_keys(token)
    driver.find_element(By.ID, "token-submit").click()
    wait.until(lambda d: dialog.get_attribute("open") is None)
    stored = driver.execute_script("return sessionStorage.getItem('procwarden-token')")
    assert stored == token, f"token in sessionStorage: {stored!r}"
    assert driver.execute_script("return localStorage.length") == 0, "nothing in localStorage"
    step("token accepted")

    # A process started by another client appears, running.
    ticker = start("for i in $(seq 1 600); do echo tick $i; sleep 0.1; done")
    row = f"tr[data-id='{ticker}']"
    wait.until(lambda d: text(f"{row} .status") == "running")
    pid = text(f"{row} .pid")
    assert pid.isdigit(), f"pid cell {pid!r}"
    step(f"running process {ticker} (pid {pid}) listed")

    # Selected, its output is followed live and grows.
    click(f"{row} .command")
    output = driver.find_element(By.ID, "output")
    wait.until(lambda d: "tick 3\n" in output.text + "\n")
    first = output.text
    last = int(first.strip().splitlines()[-1].split()[-1])
    wait.until(lambda d: f"tick {last + 5}\n" in output.text + "\n")
    assert output.text.startswith(first) and len(output.text) > len(first), "the output grew"
    step("output grows")

    # A command that looks like markup is shown as text.
    tricky = start("echo '<b>bold</b>'; true '<script>alert(1)</script>'")
    shown = wait.until(lambda d: text(f"tr[data-id='{tricky}'] .command"))
    assert "<script>alert(1)</script>" in shown, f"command shown as {shown!r}"
    assert not driver.find_elements(By.CSS_SELECTOR, "#processes script, #processes b")
    step("markup shown as text")

    if screenshot:
        start("du -sh /usr/share/* 2>/dev/null | sort -h | tail -n 4; sleep 45")
        start("python3 -c 'import time; [print(\"epoch\", e, \"loss\", round(1/(e+1), 4), flush=True) or time.sleep(0.3) for e in range(200)]'")
        failing = start("ls /nonexistent")
        api("GET", f"/api/v0/processes/{failing}/output?wait=true&timeout_ms=10000")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#processes tr")) >= 5)
        wait.until(lambda d: "tick 40\n" in output.text + "\n")
        driver.save_screenshot(screenshot)
        step(f"screenshot saved to {screenshot}")

    # The kill button ends it; the page shows the exit.
    click(f"{row} button.kill")
    wait.until(lambda d: text(f"{row} .status") == "killed")
    assert text(f"{row} .exit") == "SIGKILL"
    wait.until(lambda d: output.get_attribute("data-running") == "false")
    assert not driver.find_elements(By.CSS_SELECTOR, f"{row} button.kill"), "no kill button once exited"
    info = api("GET", f"/api/v0/processes/{ticker}/output")
    assert info["running"] is False and info["signal"] == "SIGKILL", info
    step("killed")

    # The start form starts a process and follows it to its exit.
    driver.find_element(By.ID, "command").send_keys("echo started-from-the-form")
    driver.find_element(By.ID, "start-button").click()
    wait.until(lambda d: "started-from-the-form" in output.text)
    wait.until(lambda d: output.get_attribute("data-running") == "false")
    listed = api("GET", "/api/v0/processes/list?limit=100")["processes"]
    mine = [p for p in listed if p["command"] == "echo started-from-the-form"]
    assert mine and mine[0]["exit_code"] == 0, listed
    row = f"tr[data-id='{mine[0]['id']}']"
    wait.until(lambda d: text(f"{row} .exit") == "0")
    step("start form works")
    print("UI OK", flush=True)
finally:
    driver.quit()
