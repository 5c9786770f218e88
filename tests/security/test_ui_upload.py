"""Attack 1 (HIGH): the UI's upload event must index only files that were uploaded to this
server, never a server file named in the request. Driven through Gradio's HTTP queue
protocol (``/gradio_api/queue/join`` + the SSE stream), as an attacker would."""

from __future__ import annotations

import json
import os
import uuid

import httpx

SECRET = "The vault code is 7341-secret-server-file."


def upload_event(url: str) -> tuple[int, int]:
    """(fn_index, trigger id) of the Articles tab's upload handler, read from /config."""
    config = httpx.get(url + "/config", timeout=30).json()
    files = [c["id"] for c in config["components"] if c.get("type") == "file"]
    for i, dep in enumerate(config["dependencies"]):
        for target, event in dep["targets"]:
            if target in files and event == "upload":
                return dep.get("id", i), target
    raise AssertionError("no upload event in the UI's config")


def call_event(url: str, fn: int, trigger: int, data: list) -> list[dict]:
    """Join the queue with ``data`` and read the event stream to the end."""
    session = uuid.uuid4().hex[:10]
    join = httpx.post(url + "/gradio_api/queue/join", timeout=30, json={
        "data": data, "fn_index": fn, "trigger_id": trigger, "session_hash": session,
        "event_data": None})
    assert join.status_code == 200, join.text
    messages = []
    with httpx.stream("GET", url + "/gradio_api/queue/data",
                      params={"session_hash": session}, timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                messages.append(json.loads(line[5:]))
                if messages[-1].get("msg") in ("process_completed", "close_stream"):
                    break
    return messages


def indexed_text(url: str) -> str:
    rows = httpx.get(url + "/api/articles", timeout=30).json()["articles"]
    return " ".join(httpx.get(url + "/api/articles/" + r["id"], timeout=30).json()["text"]
                    for r in rows)


def test_a_server_file_named_in_the_upload_event_is_not_indexed(small_index, served,
                                                                tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("Server secrets\n\n" + SECRET + "\n", encoding="utf-8")
    link_dir = tmp_path / "links"
    link_dir.mkdir()
    with served(small_index) as url:
        fn, trigger = upload_event(url)
        payload = {"path": str(secret), "orig_name": "secret.txt", "meta": {"_type":
                                                                              "gradio.FileData"}}
        call_event(url, fn, trigger, [[payload], ""])
        # the same through a symlink placed inside Gradio's upload folder
        from gradio.utils import get_upload_folder

        upload_root = get_upload_folder()
        os.makedirs(upload_root, exist_ok=True)
        link = os.path.join(upload_root, f"rag-test-{uuid.uuid4().hex}.txt")
        os.symlink(secret, link)
        try:
            call_event(url, fn, trigger, [[{**payload, "path": link}], ""])
        finally:
            os.unlink(link)
        assert "vault code" not in indexed_text(url)
        assert not any("vault code" in p.read_text(errors="ignore")
                       for p in small_index.source.rglob("*") if p.is_file())
        answer = httpx.post(url + "/api/ask", json={"question": "What is the vault code?"},
                            timeout=60).json()
        assert "7341" not in json.dumps(answer)


def test_a_file_really_uploaded_is_indexed(small_index, served, tmp_path):
    """The defence must not break the feature: upload through /gradio_api/upload, then the
    event indexes it."""
    with served(small_index) as url:
        fn, trigger = upload_event(url)
        story = ("Otters\n\nSea otters hold hands while they sleep so that they do not "
                 "drift apart. They use stones to open shellfish.\n")
        up = httpx.post(url + "/gradio_api/upload", timeout=30,
                        files={"files": ("otters.txt", story.encode(), "text/plain")})
        assert up.status_code == 200, up.text
        path = up.json()[0]
        messages = call_event(url, fn, trigger, [[{"path": path, "orig_name": "otters.txt",
                                                  "meta": {"_type": "gradio.FileData"}}], ""])
        assert messages[-1].get("success", True), messages[-1]
        assert "Sea otters hold hands" in indexed_text(url)
