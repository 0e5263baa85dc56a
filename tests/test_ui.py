"""`ganmix ui`: one clear line when the server cannot start, SIGTERM stops the server it became, and
(marked `browser`) what a new user sees in a real headless Chromium after a small digits search."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from _ports import free_port

SCREENSHOTS = os.environ.get("GANMIX_SCREENSHOTS")  # a folder: the browser test saves its screenshots there


def ganmix(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ganmix.search.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def make_store(results: Path) -> Path:
    """An empty store: `ganmix ui` refuses a results folder that holds none (it would serve an empty one)."""
    from ganmix.tracking import store

    store.check_reachable(store.default_tracking_uri(results))
    return results


def start_ui(results: Path, port: int, *, stderr: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ganmix.search.cli", "ui", "--results-dir", str(results),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=stderr, text=True)


def wait_healthy(port: int, proc: subprocess.Popen[str], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ganmix ui exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the MLflow UI did not answer on port {port} within {seconds} s")


def descendants(pid: int) -> list[int]:
    """Child processes, recursively (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("port", ["70000", "0", "taken"])
def test_a_server_that_cannot_start_is_one_line_and_non_zero(tmp_path, port):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        value = str(holder.getsockname()[1]) if port == "taken" else port
        done = ganmix("ui", "--results-dir", str(make_store(tmp_path / "r")), "--port", value, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("ganmix: error:")
    assert ("must be in 1..65535" if port != "taken" else f"cannot serve the MLflow UI on 127.0.0.1:{value}") \
        in done.stderr


def _server_group(proc: subprocess.Popen[str]) -> list[int]:
    """The MLflow server's processes (MLflow's CLI, uvicorn): ganmix's children and theirs."""
    children = descendants(proc.pid)
    assert children, "ganmix ui started no server"
    return children


def _gone(pids: list[int], port: int) -> None:
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in pids if alive(pid)]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_sigterm_stops_the_server(tmp_path):
    port = free_port()
    proc = start_ui(make_store(tmp_path / "r"), port, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"MLflow UI at http://127.0.0.1:{port} over " \
            f"sqlite:///{(tmp_path / 'r' / 'mlflow.db').resolve()} (Ctrl-C stops it)"
        pids = _server_group(proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "Traceback" not in out + err, out + err
        _gone(pids, port)
    finally:
        stop(proc)


def _ui_bypassing_the_port_check(results: Path, port: int) -> subprocess.CompletedProcess[str]:
    """`ganmix ui` as if another server took the port between its check and the server's start."""
    code = ("import sys; from ganmix.tracking import ui, store; ui.check_port = lambda host, port: None; "
            f"uri = store.default_tracking_uri({str(results)!r})\n"
            "try:\n    sys.exit(ui.serve(uri, port=int(sys.argv[1])))\n"
            "except store.TrackingError as exc:\n    print('ganmix: error:', exc, file=sys.stderr); sys.exit(2)")
    return subprocess.run([sys.executable, "-c", code, str(port)], capture_output=True, text=True, timeout=600)


def test_a_second_ui_on_the_same_port_is_one_line_and_ctrl_c_stops_the_first_quietly(tmp_path):
    """Two `ganmix ui` on one port: the second says so in one line (from the port check, and from the
    server's own log when the port was taken after the check); Ctrl-C stops the first, no traceback."""
    results = make_store(tmp_path / "r")
    port = free_port()
    first = start_ui(results, port, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, first)
        pids = _server_group(first)
        second = ganmix("ui", "--results-dir", str(results), "--port", str(port), cwd=tmp_path)
        raced = _ui_bypassing_the_port_check(results, port)
        for done in (second, raced):
            assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
            assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
            assert f"cannot serve the MLflow UI on 127.0.0.1:{port}" in done.stderr
            assert "pick another --port" in done.stderr and done.stdout == ""
        assert "address already in use" in raced.stderr.lower()
        assert all(alive(pid) for pid in pids)  # the first server is untouched
        first.send_signal(signal.SIGINT)  # what Ctrl-C sends (the server, in its own group, gets no SIGINT)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0 and "Traceback" not in out + err and "Error" not in err, out + err
        _gone(pids, port)
    finally:
        stop(first)


# --- the real browser --------------------------------------------------------------------------------

SPEC = {
    "dataset": "digits", "trials": 3, "max_concurrent": 2, "metric": "val_auc", "grace_period": 2,
    "finalists": {"count": 0},  # the finalists stage is not what this tests: no extra runs
    "space": {"generator": {"type": "categorical", "choices": ["dcgan", "acgan"]},
              "synthetic_ratio": {"type": "float", "low": 0.3, "high": 1.0}},
    "fixed": {"classifier_epochs": 2, "classifier_min_steps": 0, "generator_epochs": 2, "latent_dim": 16,
              "augment": "none"},
}


def chromium() -> str:
    found = os.environ.get("GANMIX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no Chromium installed (apt-get install chromium, or set GANMIX_CHROMIUM)")
    return found


@pytest.fixture(scope="module")
def browser_ui(tmp_path_factory: pytest.TempPathFactory):
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    root = tmp_path_factory.mktemp("ui")
    (root / "space.yaml").write_text(yaml.safe_dump(SPEC))
    # --confirm: the search's row and description then lead with the confirmed verdict (tiny: 2 seeds, top 1).
    done = ganmix("search", "--config", str(root / "space.yaml"), "--results-dir", str(root / "r"), "--name", "uitest",
                  "--no-sample-metrics", "--confirm", "2", "--confirm-top", "1", "--allow-underpowered", "--quiet", cwd=root,
                  timeout=1800)  # a search and its confirmation: 10 minutes on the shared 2-core machine
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    port = free_port()
    proc = start_ui(root / "r", port)
    try:
        wait_healthy(port, proc)
        banner = proc.stdout.readline() + proc.stdout.readline() if proc.stdout else ""
        link = re.search(r"http://\S+#/experiments/(\d+)/runs\?workflowType=machine_learning&viewStateShareKey=ganmix",
                         banner)
        assert link, banner
        client = MlflowClient(f"sqlite:///{root / 'r' / 'mlflow.db'}")
        runs = client.search_runs([link.group(1)])
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.set_default_timeout(60_000)
            yield {"page": page, "link": link.group(0), "experiment_id": link.group(1), "runs": runs,
                   "base": f"http://127.0.0.1:{port}", "browser": browser}
            browser.close()
    finally:
        stop(proc)


def _shot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        close = page.get_by_role("button", name="Close")  # MLflow's assistant panel hides half the page
        if close.count():
            close.first.click()
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=name == "description")


@pytest.mark.browser
@pytest.mark.integration
def test_runs_table_lists_the_search_and_its_trials_by_name(browser_ui):
    page = browser_ui["page"]
    page.goto(browser_ui["link"])
    page.get_by_text("uitest", exact=True).first.wait_for()
    # ganmix's shared view: the objective, lift, test metric and rank are columns from the first visit.
    for column in ("val/auc", "lift/val_auc", "test/auc", "ganmix.rank"):
        page.get_by_text(column, exact=True).first.wait_for()
    page.locator("button[data-component-id*='runnamecellrenderer']").first.click()  # expand the search
    trials = [r.info.run_name for r in browser_ui["runs"] if r.data.tags.get("ganmix.kind") == "trial"]
    assert "baseline" in trials and len(trials) == SPEC["trials"]
    for name in trials:
        page.get_by_text(name, exact=True).first.wait_for()
    assert not any(name.startswith("run_trial") for name in trials)
    _shot(page, "runs_table")


@pytest.mark.browser
@pytest.mark.integration
def test_parent_description_names_the_winner(browser_ui):
    page, runs = browser_ui["page"], browser_ui["runs"]
    parent = next(r for r in runs if r.data.tags.get("ganmix.kind") == "search")
    winner = next(r for r in runs if r.data.tags.get("ganmix.best") == "true")
    page.goto(f"{browser_ui['base']}/#/experiments/{browser_ui['experiment_id']}/runs/{parent.info.run_id}"
              "?workflowType=machine_learning")
    # Confirmed (the fixture's --confirm): the one-seed ranking's winner "ranks first"; it "wins" only unconfirmed.
    answer = page.get_by_text(re.compile(r"^On digits, .* ranks first")).first
    answer.wait_for()
    assert winner.info.run_name in answer.inner_text()
    assert answer.evaluate("e => getComputedStyle(e).fontWeight") in ("400", "normal")  # not bold: no claim
    link = page.get_by_role("link", name=winner.info.run_name).first
    assert f"/runs/{winner.info.run_id}?workflowType=machine_learning" in link.get_attribute("href")
    _shot(page, "description")


@pytest.mark.browser
@pytest.mark.integration
def test_the_confirmed_verdict_leads_the_search_row_and_description(browser_ui):
    page, runs = browser_ui["page"], browser_ui["runs"]
    parent = next(r for r in runs if r.data.tags.get("ganmix.kind") == "search")
    confirmed, verdict = parent.data.tags["ganmix.confirmed"], parent.data.tags["ganmix.verdict"]
    short = parent.data.tags["ganmix.verdict_short"]
    assert {"val/auc", "test/auc", "lift/test_auc"} <= set(parent.data.metrics)  # the answer on the search's row
    assert "95% CI" in confirmed and confirmed.split(":")[0] in ("did not help", "helped (the generator)",
                                                                  "helped (not the generator)", "no GAN recipe")
    assert re.fullmatch(r"[+-]\d\.\d{3,6}\*|no lift|no GAN", short), short
    page.goto(browser_ui["link"])
    page.get_by_text("uitest", exact=True).first.wait_for()
    for column in ("lift/test_auc", "ganmix.verdict_short"):
        page.get_by_text(column, exact=True).first.wait_for()
    # The search's own row (not expanded: no trial row is shown) carries the short verdict, whole.
    page.get_by_text(short, exact=True).first.wait_for()
    row_text = _row_text(page, "uitest")
    for key in ("val/auc", "test/auc", "lift/test_auc"):
        assert str(parent.data.metrics[key]) in row_text, (key, row_text)  # rounded when logged: shown whole
    assert short in row_text
    _shot(page, "runs_table_confirmed")
    # The confirmation's own row (expand the search) shows its numbers, not "-" in every column.
    confirmation = next(r for r in runs if r.data.tags.get("ganmix.kind") == "confirmation")
    assert confirmation.data.metrics["test/auc"] == parent.data.metrics["test/auc"]
    page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
    page.get_by_text(confirmation.info.run_name, exact=True).first.wait_for()
    confirmation_row = _row_text(page, confirmation.info.run_name)
    assert short in confirmation_row and str(confirmation.data.metrics["test/auc"]) in confirmation_row
    _shot(page, "runs_table_confirmation_row")
    page.goto(f"{browser_ui['base']}/#/experiments/{browser_ui['experiment_id']}/runs/{parent.info.run_id}"
              "?workflowType=machine_learning")
    lead = page.get_by_text(re.compile(r"^Confirmed over 2 seeds on the test split: ")).first
    lead.wait_for()
    assert verdict in lead.inner_text()
    ranking = page.get_by_text(re.compile(r"^One-seed ranking")).first
    ranking.wait_for()
    answer = page.get_by_text(re.compile(r"^On digits, .* ranks first")).first
    assert lead.bounding_box()["y"] < ranking.bounding_box()["y"] < answer.bounding_box()["y"]
    show_more = page.get_by_text("Show more", exact=True)
    if show_more.count():
        show_more.first.click()
    # Markdown tables render as tables, their cells padded apart (tracking/ui_app.py's style).
    table = page.locator(".note-editor-preview-content table").first
    table.wait_for()
    assert table.locator("td").first.evaluate("e => getComputedStyle(e).paddingLeft") == "10px"
    lead.scroll_into_view_if_needed()
    _shot(page, "description_confirmed")


def _in_model_training_mode(page, experiment_id: str) -> None:
    """MLflow's Model training pages: the experiment's side nav offers its Runs and Models, none of the GenAI
    pages (Sessions, Judges, Evaluation runs: what its GenAI mode lists), and the browser's stored mode is
    Model training."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    def tab(name: str) -> Any:  # MLflow may carry URL state in the link (e.g. ?startTime=ALL&workflowType=...)
        path = f"#/experiments/{experiment_id}/{name.lower()}"
        return page.locator(f"a[href='{path}'], a[href^='{path}?']", has_text=name).first

    runs, models = tab("Runs"), tab("Models")
    try:
        runs.wait_for()
        models.wait_for()
    except PlaywrightTimeoutError:  # what the page showed instead: the side nav's links and text
        _shot(page, "side_nav_missing")
        links = page.evaluate("() => [...document.querySelectorAll('a[href*=\"experiments\"]')]"
                              ".map(a => a.getAttribute('href') + ' ' + a.innerText.trim()).slice(0, 40)")
        stored = page.evaluate("() => localStorage.getItem('mlflow.workflowType_v1')")
        raise AssertionError(f"no side nav with Runs and Models at {page.url} (stored mode {stored}); "
                             f"links: {links}; page text: {page.inner_text('body')[:1500]!r}") from None
    for genai in ("Sessions", "Judges", "Evaluation runs", "Evaluations"):
        assert page.get_by_role("link", name=genai, exact=True).count() == 0, (genai, page.url)
    assert page.evaluate("() => localStorage.getItem('mlflow.workflowType_v1')") == '"machine_learning"'


@pytest.mark.browser
@pytest.mark.integration
def test_every_path_a_user_clicks_stays_in_model_training_mode(browser_ui):
    """A first visit (nothing stored in the browser): the home page, the experiment clicked in the list, the
    search clicked by name in the runs table and a child run clicked on its page all open Model training
    pages, not MLflow's GenAI ones (its default)."""
    context = browser_ui["browser"].new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(browser_ui["base"] + "/")
        page.wait_for_function("() => localStorage.getItem('mlflow.workflowType_v1') !== null")
        assert page.evaluate("() => localStorage.getItem('mlflow.workflowType_v1')") == '"machine_learning"'
        _shot(page, "home")
        experiment_id, runs = browser_ui["experiment_id"], browser_ui["runs"]
        page.goto(browser_ui["base"] + "/#/experiments")
        page.get_by_role("link", name="ganmix/digits").first.click()  # the experiment in the list
        page.wait_for_url(re.compile(rf"/experiments/{experiment_id}"))
        _in_model_training_mode(page, experiment_id)
        page.get_by_text("uitest", exact=True).first.wait_for()
        page.get_by_role("link", name="uitest", exact=True).first.click()  # the search's name in the runs table
        page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}"))
        _in_model_training_mode(page, experiment_id)
        assert "workflowType" not in page.url  # MLflow's own link: the mode comes from the browser's choice
        page.get_by_role("tab", name="Model metrics").first.wait_for()
        # MLflow's "Child runs" list on the search's page (its links carry no mode, unlike the description's).
        baseline = next(r for r in runs if r.info.run_name == "baseline")
        page.locator(f"a[href='#/experiments/{experiment_id}/runs/{baseline.info.run_id}']").first.click()
        page.wait_for_url(re.compile(baseline.info.run_id))
        _in_model_training_mode(page, experiment_id)
        page.get_by_role("tab", name="Model metrics").first.wait_for()
        _shot(page, "child_run")
    finally:
        context.close()


def _row_text(page, name: str) -> str:
    """A runs-table row's text: the grid splits a row into a pinned and a scrolled part with the same row-index."""
    index = page.locator("[row-index]", has=page.get_by_text(name, exact=True)).first.get_attribute("row-index")
    return " ".join(page.locator(f"[row-index='{index}']").all_inner_texts())


def _open_gan_trial(browser_ui, tab: str):
    """A trial with a generator, opened at one tab of its run page."""
    page, runs = browser_ui["page"], browser_ui["runs"]
    trial = next(r for r in runs if r.data.tags.get("ganmix.kind") == "trial" and r.data.params["generator"] != "none")
    page.goto(f"{browser_ui['base']}/#/experiments/{browser_ui['experiment_id']}/runs/{trial.info.run_id}"
              f"/{tab}?workflowType=machine_learning")
    return page


@pytest.mark.browser
@pytest.mark.integration
def test_a_trials_sample_grid_loads(browser_ui):
    page = _open_gan_trial(browser_ui, "artifacts/samples/grid.png")
    page.get_by_text("samples/grid.png").first.wait_for()
    page.wait_for_function("() => [...document.images].some(i => i.complete && i.naturalWidth > 300)")
    widest = page.evaluate("() => Math.max(...[...document.images].filter(i => i.complete).map(i => i.naturalWidth))")
    assert widest > 300, widest  # the grid itself rendered, not only the page around it
    _shot(page, "grid")


@pytest.mark.browser
@pytest.mark.integration
def test_a_trials_charts_are_grouped_into_sections(browser_ui):
    """Generator curves (generator epochs) and classifier curves (classifier epochs) in sections of their own."""
    page = _open_gan_trial(browser_ui, "model-metrics")
    for section in ("generator", "sample", "train", "val"):
        page.get_by_text(section, exact=True).first.wait_for()
    assert page.get_by_text("val_auc", exact=True).count() == 0  # no flat, alphabetical list of 50 charts
    _shot(page, "charts")
