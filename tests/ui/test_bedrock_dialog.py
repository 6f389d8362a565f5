"""The Add dialog for a Bedrock connection: region, access key id and the AWS secret in the key
field (never received back), the model list and a test against the fake Bedrock, which checks
the server's SigV4 signatures."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, Response, expect

from tests.conftest import Server
from tests.ui.conftest import UI_PATH, Watch, axe
from tests.upstreams.bedrock import FakeBedrock

AKID = "AKIAUIDIALOGTEST0001"
SECRET = "Hq7/Rm2Kx9+Vb4Tn6Wc1Zp8Ls3Fd5Gj0Ya+Ue2Oi"


@pytest.fixture(scope="module")
def bedrock() -> Iterator[FakeBedrock]:
    with FakeBedrock(credentials={AKID: SECRET}) as fake:
        yield fake


def test_a_bedrock_connection_with_keys_of_its_own(
    page: Page, server: Server, api: httpx.Client, bedrock: FakeBedrock, watch: Watch
) -> None:
    # while the form is half filled the model list is refused (no region, or a key id without
    # its secret: 422); the dialog says so beside Model. The keys go in before the region, so
    # the server never turns to its own AWS credential chain (which could ask the instance
    # metadata service, off this machine).
    watch.expect_status(422)
    answers: list[Response] = []
    page.on("response", lambda answer: answers.append(answer))
    page.goto(f"{server.url}{UI_PATH}")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog", name="Add Connection")
    dialog.get_by_label("Base URL").fill(bedrock.url)  # the fake, not AWS
    dialog.get_by_label("Name", exact=True).fill("Bedrock Claude")
    dialog.get_by_label("Type", exact=True).select_option(label="AWS Bedrock")
    expect(dialog.get_by_label("Organisation")).to_have_count(0)
    dialog.get_by_label("AWS access key ID").fill(AKID)
    dialog.get_by_label("AWS secret access key").fill(SECRET)
    dialog.get_by_label("AWS region").fill("us-east-1")
    dialog.get_by_label("Model", exact=True).fill(bedrock.models[0])
    expect(dialog.get_by_text("2 models offered")).to_be_visible()
    axe(page, "bedrock connection dialog")
    dialog.get_by_role("region", name="Test").get_by_role("button", name="Test").click()
    expect(dialog.get_by_text("Works.")).to_be_visible()
    dialog.get_by_role("button", name="Create Connection").click()
    expect(dialog).to_be_hidden()

    stored = api.get("/api/connections/Bedrock Claude").json()
    assert (stored["connection_type"], stored["api_format"]) == ("bedrock", "bedrock")
    assert (stored["aws_region"], stored["aws_access_key_id"]) == ("us-east-1", AKID)
    assert stored["has_api_key"] is True
    assert bedrock.signed_with and set(bedrock.signed_with) == {AKID}
    page.get_by_role("button", name="Edit Bedrock Claude").click()
    editor = page.get_by_role("dialog", name="Edit Bedrock Claude")
    expect(editor.get_by_role("group", name="AWS secret access key")).to_contain_text(
        stored["api_key_mask"]
    )
    expect(editor.get_by_label("AWS access key ID")).to_have_value(AKID)
    editor.get_by_role("button", name="Cancel").click()

    read = [a for a in answers if not a.url.endswith("/api/events")]
    for answer in read:
        assert SECRET[:8] not in answer.body().decode(errors="replace"), answer.url
    assert SECRET[:8] not in page.content()
