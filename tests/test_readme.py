"""The README's API examples run as written: the ``bash`` block after "Every command below
runs as written" is taken from README.md and run, command by command, in bash against a
real server on 127.0.0.1 (a seed-like index with the fake embedder). The test substitutes
only the server's address (``RAG=``) and the token (the ``export RAG_API_TOKEN`` line);
it starts the server itself instead of ``rag-serve``. Each command's ``# →`` comment gives
the status (2xx unless it starts with one) and keys the JSON answer must hold.

The two commands that fetch from the web (``https://example.org/``) are not run (no test
reaches beyond loopback): they are checked for shape only (a JSON body that parses, sent
with the content-type header, to an API route)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rag
from rag.app.web import BackgroundServer, create_app
from tests.conftest import SEEDS

README = Path(__file__).resolve().parents[1] / "README.md"
TOKEN = "readme-test-token-0123456789"
NETWORK = "https://example.org/"
pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def readme_commands() -> list[tuple[str, str]]:
    """(command, its "# →" expectation) in the README's order; a command spans lines
    while a quote is open or a line ends with a backslash."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```bash\n", text.index("Every command below runs as written")) + 8
    block = text[start:text.index("```", start)]
    out: list[list[str]] = []
    pending = ""
    for line in block.splitlines():
        if pending or not line.startswith("#"):
            pending = f"{pending}\n{line}" if pending else line
            try:
                shlex.split(pending)
                complete = not pending.endswith("\\")
            except ValueError:  # a quote is still open
                complete = False
            if complete:
                out.append([pending, ""])
                pending = ""
        elif line.startswith("# →"):
            out[-1][1] = line[3:].strip()
        elif line.startswith("#  ") and out and out[-1][1]:
            out[-1][1] += " " + line[1:].strip()
    assert not pending, pending
    return [(c, e) for c, e in out]


def keys_of(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def expected(expectation: str) -> tuple[int | None, set[str]]:
    m = re.match(r"(\d{3}) ", expectation)
    return (int(m.group(1)) if m else None), set(re.findall(r'"(\w+)":', expectation))


def check_shape(command: str) -> None:
    args = shlex.split(command.replace("\\\n", " "))
    assert args[0] == "curl" and any(a.startswith("$RAG/api/") for a in args), command
    body = args[args.index("-d") + 1]
    json.loads(body)
    assert args[args.index("-d") - 1] == "$J" or "$J" in args, command


@pytest.fixture
def server(tmp_path):
    src = tmp_path / "articles"
    shutil.copytree(SEEDS, src)
    cfg = rag.Config(source=src, index_dir=tmp_path / "index", model="fake",
                     chunk_tokens=40, chunk_overlap=5, abstain_threshold=0.0,
                     selector=False, api_token=TOKEN)
    rag.build(config=cfg)
    with BackgroundServer(create_app(cfg)) as url:
        yield url


def test_the_readme_lists_the_commands_this_test_runs():
    commands = [c for c, _ in readme_commands()]
    assert len(commands) >= 18
    # every JSON body is sent as JSON, but the last example, which shows what happens
    without = [c for c in commands if " -d " in c and '-H "$J"' not in c]
    assert without == [commands[-1]] and "400" in readme_commands()[-1][1]


def test_every_readme_curl_command_runs_as_written(server, tmp_path):
    lines = ["set -u", f"export PATH={Path(sys.executable).parent}:$PATH",
             f"export RAG_API_TOKEN={TOKEN}",
             # the status of each request on stderr (stdout stays as the README shows it)
             "curl() { command curl -w '%{stderr}@@status %{http_code}\\n' \"$@\"; }"]
    plan = []
    for n, (command, expect) in enumerate(readme_commands()):
        if command.startswith(("export RAG_API_TOKEN=", "rag-serve ")):
            continue  # substituted: this test's token, this test's server
        if NETWORK in command:
            check_shape(command)
            continue
        if command.startswith("RAG="):
            assert command == "RAG=http://127.0.0.1:7860"
            command = f"RAG={server}"
        lines += [f"echo '@@cmd {n}'; echo '@@cmd {n}' >&2", command]
        plan.append((n, command, expect))
    run = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=tmp_path, text=True,
                         capture_output=True)
    assert run.returncode == 0, run.stderr
    outs = dict(re.findall(r"@@cmd (\d+)\n(.*?)(?=@@cmd |\Z)", run.stdout, re.S))
    errs = dict(re.findall(r"@@cmd (\d+)\n(.*?)(?=@@cmd |\Z)", run.stderr, re.S))
    ran = 0
    for n, command, expect in plan:
        if not command.startswith("curl") and not command.startswith("B="):
            continue
        statuses = re.findall(r"@@status (\d+)", errs[str(n)])
        assert statuses, (command, errs[str(n)])
        status, keys = expected(expect)
        got = int(statuses[-1])
        assert (got == status) if status else 200 <= got < 300, (command, got, outs[str(n)])
        if expect:
            answer = json.loads(outs[str(n)])
            assert keys <= keys_of(answer), (command, keys - keys_of(answer), answer)
        ran += 1
    assert ran >= 13
    assert not (tmp_path / "story.txt").read_text().startswith("$")  # printf ran too
