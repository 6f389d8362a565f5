"""The Spot instances page against its own server and moto in server mode on 127.0.0.1 (a fake
OpenAI plays the instance's vLLM): the empty state, a launch through the dialog, a field error
beside its field, and a confirmed termination; axe on the page and the dialog, screenshots."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer
from playwright.sync_api import Page, expect

from tests.conftest import Server, free_port, launch_server, make_database
from tests.ui.conftest import Watch, axe, open_ui, shoot
from tests.upstreams.openai import FakeOpenAI

REGION = "eu-west-1"
AMI = "ami-12c6146b"


@pytest.fixture(scope="module")
def vllm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=None) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def spot_server(tmp_path_factory: pytest.TempPathFactory, vllm: FakeOpenAI) -> Iterator[Server]:
    """A server of this module's own (SQLite) whose AWS is a moto of its own."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    _, moto_port = moto.get_host_and_port()
    folder = tmp_path_factory.mktemp("ui-spot")
    try:
        for db in make_database("sqlite", folder):
            port = free_port()
            env = {
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true",
                "UMP_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "UMP_SPOT_REGIONS": REGION,
                "UMP_SPOT_RECONCILE_S": "0.2",
                "UMP_SPOT_ENDPOINT_TEMPLATE": "http://127.0.0.1:{port}/v1",
                "UMP_GATEWAY_REFRESH_S": "0.1",
                "UMP_HEALTH_MONITOR": "false",
            }
            server = launch_server(db, folder / "data", env, start_timeout_s=60.0, port=port)
            try:
                yield server
            finally:
                server.stop()
            assert "Traceback" not in server.log(), server.log()
    finally:
        moto.stop()


def fill_launch(page: Page, name: str, port: int) -> None:
    dialog = page.get_by_role("dialog", name="Launch a spot instance")
    dialog.get_by_label("Name", exact=True).fill(name)
    dialog.get_by_label("Model", exact=True).fill("fake-model")
    dialog.get_by_label("Region").fill(REGION)
    dialog.get_by_label("Instance type").fill("g5.xlarge")
    dialog.get_by_label("Image id (AMI)").fill(AMI)
    dialog.get_by_label("Port").fill(str(port))
    dialog.get_by_label("Max price ($/h)").fill("0.9")
    dialog.get_by_label("Use in LiveKit").check()


def test_spot_page_launch_field_error_and_terminate(
    page: Page, watch: Watch, spot_server: Server, vllm: FakeOpenAI
) -> None:
    open_ui(page, spot_server, "#/spot")
    expect(page.get_by_role("heading", name="Spot instances", level=1)).to_be_visible()
    nav = page.get_by_role("navigation", name="Sections")
    expect(nav.get_by_role("link", name="Spot instances")).to_have_attribute("aria-current", "page")
    empty = page.get_by_role("heading", name="No spot instances yet")
    expect(empty).to_be_visible()
    expect(page.get_by_text("The server needs AWS credentials")).to_be_visible()
    axe(page, "the empty spot page")
    shoot(page, "spot-empty")

    # a bad field: port 0 is refused by the API, its message beside the Port field
    watch.expect_status(422)
    page.get_by_role("button", name="Launch").first.click()
    dialog = page.get_by_role("dialog", name="Launch a spot instance")
    expect(dialog).to_be_visible()
    fill_launch(page, "ui-spot-one", 0)
    axe(page, "the launch dialog")
    dialog.get_by_role("button", name="Launch", exact=True).click()
    port = dialog.get_by_label("Port")
    expect(port).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#spot-port-error")).to_be_visible()
    expect(dialog.get_by_label("Name", exact=True)).not_to_have_attribute("aria-invalid", "true")
    axe(page, "the launch dialog with a field error")
    shoot(page, "spot-launch-dialog")

    # corrected, it launches: the row shows up with its state, then ready once vLLM answers
    port.fill(str(vllm.port))
    dialog.get_by_role("button", name="Launch", exact=True).click()
    expect(dialog).to_be_hidden()
    row = page.locator("tr[data-spot='ui-spot-one']")
    expect(row).to_be_visible()
    expect(row.get_by_role("cell", name=REGION)).to_be_visible()
    expect(row.get_by_role("cell", name="g5.xlarge")).to_be_visible()
    expect(row.get_by_role("cell", name="fake-model")).to_be_visible()
    expect(row.locator("[data-state='ready']")).to_be_visible()
    link = row.get_by_role("link", name="ui-spot-one")
    expect(link).to_have_attribute("href", re.compile(r"^#/connections/[0-9a-f-]{36}$"))
    axe(page, "the spot page with an instance")
    shoot(page, "spot-list")

    # terminate: asked first; Cancel keeps it, Terminate ends it
    row.get_by_role("button", name="Terminate ui-spot-one").click()
    confirm = page.get_by_role("dialog", name="Terminate ui-spot-one?")
    expect(confirm).to_be_visible()
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()
    expect(row.locator("[data-state='ready']")).to_be_visible()
    row.get_by_role("button", name="Terminate ui-spot-one").click()
    confirm.get_by_role("button", name="Terminate").click()
    expect(confirm).to_be_hidden()
    expect(row.locator("[data-state='shutting-down'], [data-state='terminated']")).to_be_visible()
    expect(row.get_by_role("button", name="Terminate ui-spot-one")).to_have_count(0)
