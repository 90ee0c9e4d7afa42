"""Real-browser checks of the web page served by vericlip-server.

Debian's Chromium (headless, driven by Playwright) against a running server:
  1. an uploaded bundled sample shows the same verdict and scores as the server's own
     POST /v1/classify for that file (compared through the page's data-* attributes), by file
     picker and by drag and drop, as WAV and as FLAC and OGG Vorbis made with sox;
  2. a file of random bytes shows the server's error name and message;
  3. a live recording (Chromium's fake microphone playing a WAV made from the bundled samples)
     shows window verdicts while audio is still being sent, then a summary after Stop;
  4. choosing version 1 or the serving version (--serving-version, the newest bundled one)
     changes the version the result reports, and "compare" runs the same clip on the other
     version while the status line stays on the serving version's result;
  5. a silent clip shows "No speech found" (the server's `no_speech`), not a verdict; a clip
     under a second shows one consistent "too short" message;
  6. (with --keyed-base-url) a server with API keys: the page asks for the key and then lists,
     classifies (Bearer header) and streams (api_key query) with it;
plus the static assets' content types (and a favicon: no 404 on any load), the model card
dialog (no absolute path of the training machine), a phone-sized layout without horizontal
scrolling and no script errors. Screenshots go to --artifacts.

Usage: test_page.py --base-url http://127.0.0.1:8080 --artifacts DIR
                    [--keyed-base-url URL --api-key KEY] [--screenshot PNG]
Prints "browser tests: all checks passed" last when every check passes.
"""

import argparse
import base64
import json
import math
import os
import random
import subprocess
import sys
import urllib.error
import urllib.request
import wave
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "models" / "samples"
TOL = 1e-6
TIMEOUT_MS = 60_000


def log(msg):
    print(msg, flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def close(a, b, what):
    check(math.isfinite(a) and abs(a - b) <= TOL, f"{what}: page shows {a!r}, server said {b!r}")


def http(base, method, path, body=None, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def classify(base, data, version):
    status, _, body = http(base, "POST", f"/v1/classify?model=vericlip-lstm&version={version}", data,
                           {"content-type": "application/octet-stream"})
    return status, json.loads(body)


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        check(w.getsampwidth() == 2 and w.getnchannels() == 1, f"{path}: expected 16-bit mono")
        return w.getframerate(), w.readframes(w.getnframes())


def write_wav(out, rate, frames):
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def fake_mic_wav(out):
    """All bundled samples back to back (16 kHz mono 16-bit, about 14 s): Chromium loops it."""
    rate, frames = None, b""
    for p in sorted(SAMPLES.glob("*/*.wav")):
        r, f = read_wav(p)
        check(rate in (None, r), "bundled samples differ in sample rate")
        rate, frames = r, frames + f
    check(len(frames) / 2 / rate >= 8, "fake microphone audio shorter than 8 s")
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return len(frames) / 2 / rate


def card(page, version, live=False):
    return page.locator(f'.result[data-model-version="{version}"][data-live="{"true" if live else "false"}"]')


def wait_state(page, loc, states):
    """Waits until the card leaves 'pending' and returns its final data-state."""
    loc.wait_for(state="attached", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "([el, states]) => states.includes(el.dataset.state)",
        arg=[loc.element_handle(), states],
        timeout=TIMEOUT_MS,
    )
    return loc.get_attribute("data-state")


def compare_card(loc, expect, what):
    """The card's verdict, scores and segment table against the server's JSON."""
    state = loc.get_attribute("data-state")
    check(state == "done", f"{what}: card state {state!r}, expected done")
    check(loc.get_attribute("data-verdict") == expect["verdict"],
          f"{what}: verdict {loc.get_attribute('data-verdict')!r} != {expect['verdict']!r}")
    check(loc.get_attribute("data-model") == expect["model"], f"{what}: model name")
    check(int(loc.get_attribute("data-model-version")) == expect["model_version"], f"{what}: model version")
    close(float(loc.get_attribute("data-fake-score")), expect["fake_score"], f"{what}: fake_score")
    close(float(loc.get_attribute("data-threshold")), expect["threshold"], f"{what}: threshold")
    rows = loc.locator("tr.seg-row")
    check(rows.count() == len(expect["segments"]),
          f"{what}: {rows.count()} segment rows, server has {len(expect['segments'])}")
    for i, seg in enumerate(expect["segments"]):
        row = rows.nth(i)
        check(int(row.get_attribute("data-index")) == seg["index"], f"{what}: segment {i} index")
        close(float(row.get_attribute("data-fake-score")), seg["fake_score"], f"{what}: segment {i} fake_score")
        close(float(row.get_attribute("data-start")), seg["start_seconds"], f"{what}: segment {i} start")
        close(float(row.get_attribute("data-end")), seg["end_seconds"], f"{what}: segment {i} end")
        check(row.get_attribute("data-verdict") == seg["verdict"], f"{what}: segment {i} verdict")
    # The prose says the same as the attributes.
    text = loc.inner_text()
    word = {"fake": "Likely synthetic speech", "no_speech": "No speech found"}.get(expect["verdict"],
                                                                                   "Likely real human speech")
    check(word in text, f"{what}: headline {word!r} missing from {text!r}")
    if expect["verdict"] == "no_speech":
        # Nothing was scored: no score bar, and every row says so.
        check(loc.locator(".scorebar").is_hidden(), f"{what}: a score bar for audio with no speech")
        check(loc.locator(".pill.nospeech").count() == len(expect["segments"]), f"{what}: rows not marked NO SPEECH")
    else:
        check(f"{expect['fake_score']:.3f}" in text, f"{what}: score {expect['fake_score']:.3f} not shown")
    check(f"v{expect['model_version']}" in loc.locator(".badge").inner_text(), f"{what}: version badge")


def keyed_checks(browser, base, key, clip, art, errors):
    """A server with API keys: the page asks for the key, then lists, classifies and streams
    with it (header for HTTP, `api_key` query for the WebSocket)."""
    status, _, _ = http(base, "GET", "/v1/models")
    check(status == 401, f"keyed server: /v1/models without a key gave {status}")
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["microphone"])
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda e: errors.append(f"page error (keyed): {e}"))
    page.goto(base + "/")
    page.wait_for_selector('#model-info .error[data-error-name="unauthenticated"]')
    check(page.locator("#key-details").evaluate("d => d.open"), "the API key field did not open")
    check(page.evaluate("() => document.activeElement.id") == "api-key", "the API key field is not focused")
    page.screenshot(path=str(art / "10-needs-key.png"), full_page=True)
    page.keyboard.type(key)
    page.wait_for_selector('#model-select option[value*="|"]', state="attached")
    log("ok: keyed server: the page asks for the key, then lists the models with it")
    page.set_input_files("#file", str(clip))
    done = page.locator('.result[data-live="false"]')
    check(wait_state(page, done, ["done", "error"]) == "done", f"keyed upload failed: {done.inner_text()!r}")
    page.click("#record")
    page.wait_for_function(
        "() => { const c = document.querySelector('.result[data-live=\"true\"]');"
        " return c && c.dataset.state === 'recording' && c.querySelectorAll('tr.seg-row').length >= 1; }")
    page.click("#record")
    live = page.locator('.result[data-live="true"]')
    check(wait_state(page, live, ["done", "error"]) == "done", f"keyed live recording failed: {live.inner_text()!r}")
    ctx.close()
    log("ok: keyed server: upload (Bearer header) and live recording (api_key query) work with the key")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--artifacts", required=True)
    ap.add_argument("--chromium", default=os.environ.get("VERICLIP_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--keyed-base-url", help="a second server started with API keys")
    ap.add_argument("--api-key", help="a key that server accepts")
    ap.add_argument("--screenshot", help="also save the desktop upload result here (for the README)")
    ap.add_argument("--serving-version", type=int, default=4, help="the version the server serves (v1 is compared)")
    args = ap.parse_args()
    S = args.serving_version
    base = args.base_url.rstrip("/")
    art = Path(args.artifacts)
    art.mkdir(parents=True, exist_ok=True)
    check(Path(args.chromium).exists(), f"{args.chromium} missing: apt-get install chromium")
    log(f"browser tests: screenshots in {art}")

    # Static assets, with the MIME types module scripts and worklets need.
    for path, kind in [("/", "text/html"), ("/app.js", "javascript"), ("/style.css", "text/css"),
                       ("/pcm-worklet.js", "javascript"), ("/model-card", "text/"),
                       ("/favicon.ico", "image/svg+xml")]:
        status, headers, body = http(base, "GET", path)
        ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        check(status == 200 and body, f"GET {path}: {status}")
        check(kind in ctype, f"GET {path}: content-type {ctype!r}, expected {kind}")
    log("ok: / /app.js /style.css /pcm-worklet.js /model-card /favicon.ico served")

    fake_clip = SAMPLES / "fake" / "espeak_en__computer_voice.wav"  # 4.25 s: two segments
    # The README's screenshot: a real clip the serving version gets right (the GSM Spanish sample
    # is its documented false alarm; the demo says so).
    real_clip = SAMPLES / "real" / "fillets_cs_other__00000_0.wav"
    fake_bytes = fake_clip.read_bytes()
    expect = {}
    for v in (1, S):
        status, body = classify(base, fake_bytes, v)
        check(status == 200, f"POST /v1/classify version {v}: {status} {body}")
        expect[("fake", v)] = body
        status, body = classify(base, real_clip.read_bytes(), v)
        check(status == 200, f"POST /v1/classify version {v}: {status} {body}")
        expect[("real", v)] = body
    rnd = random.Random(7)
    bad = art / "random-bytes.bin"
    bad.write_bytes(bytes(rnd.getrandbits(8) for _ in range(4096)))
    status, bad_expect = classify(base, bad.read_bytes(), S)
    check(status >= 400 and "error" in bad_expect, f"random bytes: server said {status} {bad_expect}")
    bad_expect = bad_expect["error"]

    mic = art / "fake-mic.wav"
    mic_seconds = fake_mic_wav(mic)

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["microphone"])
        page = ctx.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" and
                "status of 4" not in m.text else None)
        # Refused uploads are 4xx on purpose; a 404 is always a missing asset (e.g. the favicon).
        page.on("response", lambda r: errors.append(f"404: {r.url}") if r.status == 404 else None)
        page.goto(base + "/")
        page.wait_for_selector(f'#model-select option[value="vericlip-lstm|{S}"]', state="attached")
        check(page.locator('#model-select option[value="vericlip-lstm|1"]').count() == 1, "version 1 not offered")
        check(page.locator("#model-select").input_value() == f"vericlip-lstm|{S}", f"serving version {S} not preselected")
        info = page.locator("#model-info").inner_text()
        check("EER" in info and "Threshold" in info, f"model info lacks metrics: {info!r}")
        val = page.locator('#model-info .fact[data-key="validation_eer"] dd')
        check(val.count() == 1 and val.inner_text().endswith("%"),
              f"model info lacks the validation EER beside the test metrics: {info!r}")
        page.screenshot(path=str(art / "01-start.png"), full_page=True)
        log(f"ok: models listed (v{S} serving, v1 selectable) with validation and test metrics")

        # 4 + 1: version 1, upload; page shows version 1 and the server's numbers.
        page.select_option("#model-select", "vericlip-lstm|1")
        check(f"no (serving v{S})" in page.locator("#model-info").inner_text(), "v1 info does not say it is not serving")
        page.set_input_files("#file", str(fake_clip))
        wait_state(page, card(page, 1), ["done", "error"])
        compare_card(card(page, 1), expect[("fake", 1)], "upload on v1")
        check(card(page, S).count() == 0, f"a v{S} card appeared for a v1 request")
        log(f"ok: upload on v1 matches POST /v1/classify ({expect[('fake', 1)]['verdict']}, "
            f"score {expect[('fake', 1)]['fake_score']:.6f}, {len(expect[('fake', 1)]['segments'])} segments)")

        # Switching to the serving version runs the same clip on it, beside the v1 result.
        page.select_option("#model-select", f"vericlip-lstm|{S}")
        wait_state(page, card(page, S), ["done", "error"])
        compare_card(card(page, S), expect[("fake", S)], f"same clip on v{S}")
        compare_card(card(page, 1), expect[("fake", 1)], f"v1 result kept beside v{S}")
        page.wait_for_timeout(300)  # the browser's own decode draws the waveform
        check(page.evaluate("() => !!document.querySelector('#audio').src"), "no playback source")
        page.click("#play")
        page.wait_for_timeout(700)
        cursor_left = page.locator(f'.result[data-model-version="{S}"] .cursor').evaluate("e => e.style.left")
        check(not page.locator(f'.result[data-model-version="{S}"] .cursor').is_hidden() and cursor_left not in ("", "0%"),
              f"playback cursor did not move ({cursor_left!r})")
        page.click("#play")  # pause
        page.screenshot(path=str(art / "02-upload-v1-and-serving.png"), full_page=True)
        log(f"ok: switching to v{S} re-runs the clip and shows v{S} (score {expect[('fake', S)]['fake_score']:.6f}) beside v1; "
            f"playback cursor at {cursor_left}")

        # A fresh upload on the serving version, then the compare button for v1: the status line
        # keeps speaking for the serving version.
        page.set_input_files("#file", str(real_clip))
        wait_state(page, card(page, S), ["done", "error"])
        compare_card(card(page, S), expect[("real", S)], f"upload {real_clip.name} on v{S}")
        check(card(page, 1).count() == 0, "the previous clip's v1 result was not cleared")
        page.click('[data-compare="vericlip-lstm|1"]')
        wait_state(page, card(page, 1), ["done", "error"])
        compare_card(card(page, 1), expect[("real", 1)], f"compare {real_clip.name} on v1")
        status_text = page.locator("#status").inner_text()
        check(f"· v{S}:" in status_text and f"{expect[('real', S)]['fake_score']:.3f}" in status_text,
              f"after compare, the status line shows {status_text!r}, not the serving v{S}'s result")
        legend = card(page, S).locator(".legend").inner_text()
        check("no speech" in legend and "not judged" in legend, f"legend lacks no speech / not judged: {legend!r}")
        page.wait_for_timeout(300)
        page.screenshot(path=str(art / "03-compare-serving-v1.png"), full_page=True)
        if args.screenshot:
            page.screenshot(path=args.screenshot, full_page=True)
        log(f"ok: {real_clip.name} on v{S} ({expect[('real', S)]['verdict']}) and 'Compare with v1' "
            f"({expect[('real', 1)]['verdict']}) match the server; the status line stays on v{S}")

        # Drag and drop onto the drop zone.
        page.evaluate(
            """([b64, name]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], name, { type: 'audio/wav' }));
                const zone = document.querySelector('#drop');
                for (const type of ['dragenter', 'dragover', 'drop'])
                    zone.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
            }""",
            [base64.b64encode(fake_bytes).decode(), fake_clip.name],
        )
        wait_state(page, card(page, S), ["done", "error"])
        compare_card(card(page, S), expect[("fake", S)], f"dropped file on v{S}")
        check(page.locator("#clip-heading").inner_text() == fake_clip.name, "dropped file's name not shown")
        log("ok: a file dropped on the drop zone is classified (matches the server)")

        # FLAC and OGG Vorbis (made with sox from the same clip): the server's numbers, and the
        # browser's own decode draws the waveform.
        for ext in ("flac", "ogg"):
            coded = art / f"{fake_clip.stem}.{ext}"
            r = subprocess.run(["sox", str(fake_clip), str(coded)], capture_output=True, text=True)
            check(r.returncode == 0, f"sox {ext} (apt-get install sox libsox-fmt-base): {r.stderr}")
            status, want = classify(base, coded.read_bytes(), S)
            check(status == 200, f"POST /v1/classify {ext}: {status} {want}")
            page.set_input_files("#file", str(coded))
            wait_state(page, card(page, S), ["done", "error"])
            compare_card(card(page, S), want, f"{ext} upload on v{S}")
            page.wait_for_function("() => ['true', 'false'].includes(document.querySelector('#clip').dataset.decoded)")
            check(page.locator("#clip").get_attribute("data-decoded") == "true", f"the browser did not decode the {ext}")
            log(f"ok: {ext.upper()} upload matches the server ({want['verdict']}, {want['fake_score']:.6f}); waveform decoded in the browser")

        # 5: three seconds of silence: "No speech found" (the server's no_speech), nothing scored.
        quiet = art / "silence-3s.wav"
        write_wav(quiet, 16000, bytes(3 * 16000 * 2))
        status, quiet_expect = classify(base, quiet.read_bytes(), S)
        check(status == 200 and quiet_expect["verdict"] == "no_speech", f"silence: server said {status} {quiet_expect}")
        page.set_input_files("#file", str(quiet))
        wait_state(page, card(page, S), ["done", "error"])
        compare_card(card(page, S), quiet_expect, "silent clip")
        check("No speech found" in page.locator("#status").inner_text(), "status line does not say no speech")
        page.screenshot(path=str(art / "04-no-speech.png"), full_page=True)
        log("ok: a silent clip shows 'No speech found' (no_speech), no score, rows marked NO SPEECH")

        # A clip under a second: one message, about a clip, with the server's own minimum.
        tiny = art / "half-second.wav"
        write_wav(tiny, 16000, read_wav(real_clip)[1][:16000])
        page.set_input_files("#file", str(tiny))
        check(wait_state(page, card(page, S), ["done", "error"]) == "error", "a 0.5 s clip was not refused")
        title = card(page, S).locator(".error-title").inner_text()
        message = card(page, S).locator(".error-message").inner_text()
        check("clip is too short" in title and "at least 1 second" in title and "at least 1.00 s" in message,
              f"too-short clip: headline {title!r} beside message {message!r}")
        log(f"ok: a 0.5 s clip: {title!r} / {message!r}")

        # 2: random bytes show the server's error name and message.
        page.set_input_files("#file", str(bad))
        bad_card = card(page, S)
        check(wait_state(page, bad_card, ["done", "error"]) == "error", "random bytes were not refused")
        err = bad_card.locator(".error")
        check(err.get_attribute("data-error-name") == bad_expect["name"],
              f"error name {err.get_attribute('data-error-name')!r} != {bad_expect['name']!r}")
        check(err.locator(".error-name").inner_text() == bad_expect["name"], "error name not shown")
        check(err.locator(".error-message").inner_text() == bad_expect["message"],
              f"error message {err.locator('.error-message').inner_text()!r} != {bad_expect['message']!r}")
        check(bad_expect["name"] in page.locator("#status").inner_text(), "status line lacks the error name")
        page.screenshot(path=str(art / "04-bad-file.png"), full_page=True)
        log(f"ok: random bytes show {bad_expect['name']}: {bad_expect['message']}")

        # 3: live recording from the fake microphone (the serving version).
        page.click("#record")
        live = card(page, S, live=True)
        live.wait_for(state="attached")
        page.wait_for_function(
            "() => { const c = document.querySelector('.result[data-live=\"true\"]');"
            " return c && c.dataset.state === 'recording' && c.querySelectorAll('tr.seg-row').length >= 2; }",
            timeout=TIMEOUT_MS,
        )
        during = live.evaluate(
            "c => ({state: c.dataset.state, rows: c.querySelectorAll('tr.seg-row').length,"
            " sent: document.querySelector('#rec-time').textContent,"
            " scores: [...c.querySelectorAll('tr.seg-row')].map(r => +r.dataset.fakeScore)})")
        check(during["state"] == "recording" and during["rows"] >= 1, f"no window verdict while recording: {during}")
        check(all(0 <= s <= 1 for s in during["scores"]), f"window scores out of range: {during}")
        check(page.locator("#record").get_attribute("aria-pressed") == "true", "record button not pressed")
        page.screenshot(path=str(art / "05-live-recording.png"), full_page=True)
        log(f"ok: {during['rows']} window verdicts while still recording (at {during['sent']}): {during['scores']}")
        page.wait_for_timeout(1500)
        page.click("#record")  # Stop
        check(wait_state(page, live, ["done", "error"]) == "done",
              f"no summary after Stop: {live.inner_text()!r}")
        check(live.get_attribute("data-verdict") in ("real", "fake"), "summary without a verdict")
        check(live.get_attribute("data-model-version") == str(S), f"live summary not from v{S}")
        rec_seconds = float(live.get_attribute("data-duration"))
        check(rec_seconds >= 3.5, f"summary covers only {rec_seconds} s")
        rows = live.locator("tr.seg-row").count()
        check(rows >= during["rows"], "windows lost after the summary")
        check(page.locator("#play").is_enabled(), "the recording cannot be played back")
        page.screenshot(path=str(art / "06-live-summary.png"), full_page=True)
        log(f"ok: summary after Stop: {live.get_attribute('data-verdict')} score "
            f"{float(live.get_attribute('data-fake-score')):.4f} over {rec_seconds:.2f} s "
            f"({rows} rows; fake microphone plays {mic_seconds:.2f} s in a loop)")

        # A recording shorter than one window ends cleanly: a summary (one zero-padded window)
        # or the server's error, shown with its name and message; never a hang.
        page.click("#record")
        card(page, S, live=True).wait_for(state="attached")
        page.wait_for_function("() => document.querySelector('#record').getAttribute('aria-pressed') === 'true'")
        page.wait_for_timeout(500)
        page.click("#record")
        short = card(page, S, live=True)
        if wait_state(page, short, ["done", "error"]) == "error":
            name = short.locator(".error").get_attribute("data-error-name")
            check(name and short.locator(".error-message").inner_text(), "short recording: no error name or message")
            if name == "audio_too_short":
                title = short.locator(".error-title").inner_text()
                check("recording is too short" in title and "1 second" in title, f"short recording headline {title!r}")
            log(f"ok: a short recording shows {name}: {short.locator('.error-message').inner_text()}")
        else:
            check(short.get_attribute("data-verdict") in ("real", "fake"), "short recording: summary without a verdict")
            if float(short.get_attribute("data-duration")) < 2:
                check(short.locator(".note").count() == 1, "short recording: no note that the verdict is less reliable")
            log(f"ok: a short recording ({float(short.get_attribute('data-duration')):.2f} s) gets a summary: "
                f"{short.get_attribute('data-verdict')}")
        page.screenshot(path=str(art / "07-short-recording.png"), full_page=True)

        # Model card dialog.
        page.click("#model-card-link")
        page.wait_for_selector("#card-dialog[open] .card-body h3")
        card_text = page.locator("#card-body").inner_text()
        check("Model card" in card_text, "model card text missing")
        check("/work/" not in card_text and "--out data/corpus-v4" in card_text,
              "the model card shows an absolute corpus path of the training machine")
        page.screenshot(path=str(art / "08-model-card.png"))
        page.keyboard.press("Escape")
        check(page.locator("#card-dialog[open]").count() == 0, "Escape did not close the model card")
        log("ok: model card opens in a dialog and closes with Escape")

        # Keyboard: the file picker, record button and version select are reachable with Tab.
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        reached = set()
        for _ in range(25):
            page.keyboard.press("Tab")
            reached.add(page.evaluate("() => document.activeElement && document.activeElement.id"))
        for want in ("model-select", "file", "record"):
            check(want in reached, f"#{want} not reachable with Tab (reached {sorted(x for x in reached if x)})")
        check(page.locator("[aria-live]").count() >= 2, "no aria-live regions")
        log("ok: version select, file picker and record button reachable by keyboard; aria-live regions present")

        # Phone-sized screen.
        phone = browser.new_context(viewport={"width": 375, "height": 812}, device_scale_factor=2,
                                    is_mobile=True, has_touch=True)
        m = phone.new_page()
        m.set_default_timeout(TIMEOUT_MS)
        m.on("pageerror", lambda e: errors.append(f"page error (phone): {e}"))
        m.goto(base + "/")
        m.wait_for_selector(f'#model-select option[value="vericlip-lstm|{S}"]', state="attached")
        m.set_input_files("#file", str(fake_clip))
        wait_state(m, card(m, S), ["done", "error"])
        compare_card(card(m, S), expect[("fake", S)], f"phone upload on v{S}")
        m.wait_for_timeout(300)
        width = m.evaluate("() => document.documentElement.scrollWidth")
        check(width <= 375, f"page is {width} px wide on a 375 px screen")
        m.screenshot(path=str(art / "09-phone.png"), full_page=True)
        phone.close()
        log(f"ok: 375 px screen: result shown, no horizontal scrolling ({width} px)")

        if args.keyed_base_url:
            keyed_checks(browser, args.keyed_base_url.rstrip("/"), args.api_key, fake_clip, art, errors)

        browser.close()

    check(not errors, "browser errors:\n" + "\n".join(errors))
    log("browser tests: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"browser tests FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
