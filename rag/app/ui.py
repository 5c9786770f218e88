"""The Gradio interface: Ask, Articles and Settings tabs. Presentation only.

:func:`create_blocks` returns a ``gr.Blocks`` bound to one :class:`~rag.config.Config`
(tests inject their own). Answers come from :func:`rag.ask`; HTML from
:mod:`rag.app.render`; article changes go through :class:`rag.app.library.Library`.
Errors a person can fix (empty question, no index yet) are shown as messages, never as
tracebacks. The Gradio client API exposes ``/answer`` (question, k, retrieval ->
the Answer as a dict, the same shape as ``python -m rag.ask --json``).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..config import RETRIEVAL_MODES, Config
from ..types import Answer, RagError
from . import render
from .errors import message_for
from .examples import MAX_EXAMPLES, example_questions
from .library import UPLOAD_SUFFIXES, Library

MODE_LABELS = {"hybrid": "Hybrid (keywords + meaning)", "dense": "Meaning only (dense)",
               "keyword": "Keywords only (BM25)"}
PER_PAGE = 20  # rows of the Articles table at a time

# Scroll the article viewer (only the viewer box, not the page) to the highlighted quote.
SCROLL_JS = """(...args) => { setTimeout(() => {
  const m = document.getElementById('%s');
  const box = m && m.closest('.rag-viewer');
  if (box) { box.scrollTop = Math.max(0, m.offsetTop - box.clientHeight / 3); }
}, 60); return args; }""" % render.HIGHLIGHT_ID
# ... and, when a citation was chosen, bring the viewer itself into view if it is not.
SCROLL_PAGE_JS = SCROLL_JS.replace("}, 60);", """  if (box) { const r = box.getBoundingClientRect();
    if (r.top < 0 || r.bottom > window.innerHeight) box.scrollIntoView({block: 'start'}); }
}, 60);""")
COPY_JS = """() => {
  const el = document.querySelector('.rag-answer[data-copy]');
  const text = el ? el.dataset.copy : '';
  const btn = document.getElementById('rag-copy');
  const done = (ok) => { if (btn) { const b = btn.querySelector('button') || btn;
      const old = b.textContent; b.textContent = ok ? 'Copied' : 'Nothing to copy';
      setTimeout(() => { b.textContent = old; }, 1500); } };
  if (!text) { done(false); return; }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => done(true), () => done(false));
  } else { const t = document.createElement('textarea'); t.value = text;
    document.body.appendChild(t); t.select(); document.execCommand('copy'); t.remove(); done(true); }
}"""


def was_uploaded(path: str, blocks: gr.Blocks) -> bool:
    """Whether ``path`` is a file that a client uploaded to this server (Gradio's upload
    route recorded it) inside Gradio's upload folder, reached without symlinks. The upload
    event's payload names a path: this check stands beside Gradio's own (which
    ``mount_gradio_app`` leaves off until :func:`rag.app.web.create_app` turns it on), so
    neither alone lets a payload name any server file."""
    import os

    from gradio.utils import get_upload_folder

    root = os.path.realpath(get_upload_folder())
    absolute = os.path.abspath(path)
    if os.path.realpath(absolute) != absolute or os.path.commonpath([root, absolute]) != root:
        return False
    return absolute in {os.path.abspath(p) for p in blocks.upload_file_set} and \
        os.path.isfile(absolute)  # realpath == absolute: no link on the way


def _short(text: str, n: int = 48) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def create_blocks(cfg: Config, updater=None) -> gr.Blocks:
    """The whole UI for ``cfg`` (queue configured: ``cfg.concurrency`` at a time).
    ``updater`` (a running :class:`rag.app.watch.Updater`) feeds the Articles tab's
    status line, refreshed every few seconds."""
    from ..answer.pipeline import ask
    from .watch import index_status

    lib = Library(cfg)

    def run_ask(question: str, k: Any, mode: str, filters: dict | None = None,
                dates: bool = True, as_of: str | None = None) -> Answer:
        return ask(question, k=int(k), config=cfg, retrieval=mode or None, filters=filters,
                   dates=dates, as_of=(as_of or "").strip() or None)

    def filters_of(sources, author, since, until) -> dict:
        return {"sources": list(sources or []),
                "authors": [a.strip() for a in (author or "").split(",") if a.strip()],
                "since": (since or "").strip() or None, "until": (until or "").strip() or None}

    def source_choices():
        try:
            rows = lib.articles()
        except RagError:
            rows = []
        # outlets, not file paths (a file's source is its path: filter those by folder)
        names = sorted({r["source"] for r in rows if r.get("source")
                        and not r["source"].lower().endswith(UPLOAD_SUFFIXES + (".htm",))})
        return gr.Dropdown(choices=names[:500])

    def on_ask(question, k, mode, sources=None, author="", since="", until="", dates=True,
               as_of=""):
        empty_radio = gr.Radio(choices=[], value=None, visible=False)
        try:
            a = run_ask(question or "", k, mode, filters_of(sources, author, since, until),
                        bool(dates), as_of)
        except RagError as exc:
            return (render.render_error(message_for(exc)), "", None, empty_radio,
                    render.render_article(None), gr.Button(visible=False))
        choices = [(f"[{c.n}] {_short(c.title)}", c.n) for c in a.citations]
        first = a.citations[0] if a.citations else None
        viewer = _viewer(first) if first else render.render_article(None)
        return (render.render_answer(a), render.render_citations(a), a.to_dict(),
                gr.Radio(choices=choices, value=first.n if first else None,
                         visible=bool(choices)), viewer, gr.Button(visible=True))

    def _viewer(c) -> str:
        try:
            article = lib.article(c.article_id)
        except RagError as exc:
            return render.render_article(None, note=message_for(exc))
        if article is None:
            return render.render_article(None, note="This article is no longer in the index.")
        return render.render_article(article, c)

    def on_open(n, state):
        if not state or n is None:
            return render.render_article(None)
        a = Answer.from_dict(state)
        c = next((c for c in a.citations if c.n == int(n)), None)
        return _viewer(c) if c else render.render_article(None)

    def answer_api(question: str, k: int = cfg.k, retrieval: str = cfg.retrieval) -> dict:
        """Answer a question: returns the Answer as a dict (see `python -m rag.ask --json`).
        Its three inputs stay as they were for existing clients; filters are on
        POST /api/ask."""
        try:
            return run_ask(question, k, retrieval).to_dict()
        except RagError as exc:
            raise gr.Error(message_for(exc)) from None

    def list_html(query: str = "", page: int = 0) -> str:
        return page_of(query, page)[0]

    def page_of(query: str = "", page: int = 0) -> tuple[str, int]:
        """The Articles table's page ``page`` (clamped) of the rows matching ``query``."""
        try:
            return render.render_article_page(lib.articles(), query, int(page or 0), PER_PAGE)
        except RagError as exc:
            return render.render_error(message_for(exc)), 0

    def on_page(step: int):
        def turn(query, page):
            return page_of(query, int(page or 0) + step)
        return turn

    def file_choices():
        titles = {}
        try:
            titles = {r["id"]: r["title"] for r in lib.articles()}
        except RagError:
            pass
        files = lib.files()
        return gr.Dropdown(choices=[(f"{titles[f]} ({f})" if f in titles else f, f)
                                    for f in files], value=None)

    def feed_choices():
        try:
            feeds = lib.feeds()
        except (RagError, OSError, ValueError):
            feeds = []
        return gr.Dropdown(choices=[(f.get("title") or f["url"], f["url"]) for f in feeds],
                           value=None)

    def said(result) -> str:
        return (f'<div class="rag-answer rag-done">{render.esc(result.message)}</div>'
                if result.ok else render.render_error(result.message))

    def only(which: int, html: str) -> tuple[str, str, str, str]:
        """The four action messages (upload, web, remove, feeds): ``html`` in the one
        that acted, the others emptied (an earlier "Added..." must not stay next to a
        removal's result)."""
        out = ["", "", "", ""]
        out[which] = html
        return tuple(out)

    def after_change(query):
        """What every change of the library refreshes: the table (from its first page),
        the page number, the file and feed choices, the feeds list and the status."""
        html, page = page_of(query, 0)
        return (html, page, file_choices(), feed_choices(), feeds_html(), status_html())

    def on_upload(files, query, progress=gr.Progress(track_tqdm=True)):
        paths = files if isinstance(files, list) else ([files] if files else [])
        refused = [p for p in paths if not was_uploaded(str(p), demo)]
        if refused or not paths:
            why = ("Nothing was added: choose files to upload." if not paths else
                   "Nothing was added: only files uploaded through this page can be added.")
            return (*only(0, render.render_error(why)), None, *after_change(query))
        uploads = [(str(p), str(getattr(p, "orig_name", None) or p).split("/")[-1])
                   for p in paths]
        progress(0, desc="Checking and indexing")
        result = lib.add(uploads, progress=True)
        return (*only(0, said(result)), None, *after_change(query))

    def status_html() -> str:
        return render.render_status(index_status(cfg, updater))

    def feeds_html() -> str:
        try:
            return render.render_feeds(lib.feeds())
        except (RagError, OSError, ValueError) as exc:
            return render.render_error(f"The feeds cannot be listed: {exc}")

    def on_web(text, as_feed, query, progress=gr.Progress(track_tqdm=True)):
        lines = [x.strip() for x in (text or "").replace(",", "\n").split() if x.strip()]
        progress(0, desc="Fetching and indexing")
        result = lib.add_web(urls=[] if as_feed else lines, feeds=lines if as_feed else [],
                             progress=True)
        return (*only(1, said(result)), "" if result.ok else text, *after_change(query))

    def on_remove_ask(rel):
        if not rel:
            return (gr.Row(visible=False),
                    *only(2, render.render_error("Choose an article file first.")))
        return (gr.Row(visible=True), *only(2,
                f'<div class="rag-answer rag-confirm">Remove <b>{render.esc(rel)}</b> from the '
                'articles folder and the index? This deletes the file.</div>'))

    def on_remove(rel, query, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="Removing and re-indexing")
        result = lib.remove(rel or "", progress=True)
        return (gr.Row(visible=False), *only(2, said(result)), *after_change(query))

    def on_unsubscribe(url, delete_items, query, progress=gr.Progress(track_tqdm=True)):
        if not url:
            return (*only(3, render.render_error("Choose a feed first.")),
                    *after_change(query))
        progress(0, desc="Unsubscribing")
        result = lib.remove_feed(url, delete_items=bool(delete_items), progress=True)
        return (*only(3, said(result)), *after_change(query))

    def examples_update():
        """The example buttons: questions drawn from the index (rag.app.examples), the
        row hidden when there are none."""
        qs = example_questions(cfg)
        return (gr.Row(visible=bool(qs)),
                *[gr.Button(value=qs[i], visible=True) if i < len(qs)
                  else gr.Button(visible=False) for i in range(MAX_EXAMPLES)])

    with gr.Blocks(title="rag: ask the articles") as demo:
        gr.HTML('<div class="rag-head"><h1>Ask the articles</h1><p>Answers are sentences '
                'quoted word for word from the indexed articles, with their sources.</p></div>')
        with gr.Tab("Ask", id="ask"):
            question = gr.Textbox(placeholder="Ask a question and press Enter",
                                  show_label=False, lines=1, submit_btn="Ask", autofocus=True,
                                  elem_id="rag-question")
            with gr.Accordion("Filters: which articles to use", open=False,
                              elem_id="rag-filters"):
                with gr.Row():
                    f_sources = gr.Dropdown(label="Source or outlet", multiselect=True,
                                            allow_custom_value=True, choices=[], scale=2,
                                            elem_id="rag-f-source")
                    f_author = gr.Textbox(label="Author (part of the name)", scale=1,
                                          elem_id="rag-f-author")
                with gr.Row():
                    f_since = gr.Textbox(label="Published since",
                                         placeholder="YYYY-MM-DD, or: last week, 7d",
                                         elem_id="rag-f-since")
                    f_until = gr.Textbox(label="Published until", placeholder="YYYY-MM-DD",
                                         elem_id="rag-f-until")
                    f_dates = gr.Checkbox(label="Read time words in the question "
                                                "(“last week”, “in March”) as dates",
                                          value=True, elem_id="rag-f-dates")
                    f_as_of = gr.Textbox(label="Read them as of", placeholder="YYYY-MM-DD "
                                         "(default: today)", elem_id="rag-f-as-of")
            with gr.Row(elem_classes="rag-examples", visible=False,
                        elem_id="rag-examples") as examples_row:
                example_btns = [gr.Button("", size="sm", variant="secondary", visible=False)
                                for _ in range(MAX_EXAMPLES)]
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=280):
                    answer_html = gr.HTML(render.render_answer(None), elem_id="rag-answer")
                    copy_btn = gr.Button("Copy answer", size="sm", elem_id="rag-copy",
                                         visible=False)
                    cites_html = gr.HTML("", elem_id="rag-citations")
                with gr.Column(scale=2, min_width=280, elem_id="rag-viewer-col"):
                    chooser = gr.Radio(label="Read a source in its article", choices=[],
                                       visible=False, elem_id="rag-chooser")
                    viewer = gr.HTML(render.render_article(None), elem_id="rag-viewer")
            state = gr.State(None)
        with gr.Tab("Articles", id="articles") as articles_tab:
            index_state = gr.HTML("", elem_id="rag-index-status")
            # the actions first, with their results beside them; the (paged) table after
            with gr.Row(equal_height=False, elem_classes="rag-actions"):
                with gr.Column(min_width=280):
                    gr.Markdown(f"**Add articles** ({', '.join(UPLOAD_SUFFIXES)}; at most "
                                f"{cfg.max_upload_bytes // 1024 // 1024} MB each)")
                    upload = gr.File(file_count="multiple", file_types=list(UPLOAD_SUFFIXES),
                                     show_label=False, elem_id="rag-upload", height=120)
                    upload_status = gr.HTML("", elem_id="rag-upload-status")
                with gr.Column(min_width=280):
                    gr.Markdown("**Add from the web**: a page, or an RSS/Atom feed (one per "
                                "line; public http/https addresses only)")
                    web_text = gr.Textbox(placeholder="https://…", show_label=False, lines=1,
                                          max_lines=6, elem_id="rag-web-url")
                    with gr.Row(equal_height=True):
                        web_feed = gr.Checkbox(label="It is a feed (subscribe)", value=False,
                                               scale=2, elem_id="rag-web-feed")
                        web_btn = gr.Button("Fetch", scale=1, elem_id="rag-web-add")
                    web_status = gr.HTML("", elem_id="rag-web-status")
            with gr.Row(equal_height=False, elem_classes="rag-actions"):
                with gr.Column(min_width=280):
                    gr.Markdown("**Remove an article file**")
                    with gr.Row(equal_height=True):
                        remove_choice = gr.Dropdown(choices=[], show_label=False, scale=4,
                                                    elem_id="rag-remove-choice")
                        remove_btn = gr.Button("Remove…", variant="stop", scale=1,
                                               elem_id="rag-remove")
                    with gr.Row(visible=False) as confirm_row:
                        confirm_btn = gr.Button("Yes, remove it", variant="stop",
                                                elem_id="rag-remove-confirm")
                        cancel_btn = gr.Button("Cancel", elem_id="rag-remove-cancel")
                    remove_status = gr.HTML("", elem_id="rag-remove-status")
                with gr.Column(min_width=280):
                    gr.Markdown("**Feeds** (polled by builds and `--poll`)")
                    feeds_list = gr.HTML("", elem_id="rag-feeds")
                    with gr.Row(equal_height=True):
                        feed_choice = gr.Dropdown(choices=[], show_label=False, scale=4,
                                                  elem_id="rag-feed-choice")
                        unsubscribe_btn = gr.Button("Unsubscribe", scale=1,
                                                    elem_id="rag-unsubscribe")
                    feed_delete = gr.Checkbox(label="also remove its articles", value=False,
                                              elem_id="rag-feed-delete")
                    feed_status = gr.HTML("", elem_id="rag-feed-status")
            search = gr.Textbox(placeholder="Search titles, sources and authors",
                                show_label=False, elem_id="rag-search")
            table = gr.HTML("", elem_id="rag-articles")
            with gr.Row(equal_height=True, elem_classes="rag-pager"):
                prev_btn = gr.Button("← Previous", size="sm", elem_id="rag-prev")
                next_btn = gr.Button("Next →", size="sm", elem_id="rag-next")
            page = gr.State(0)
        with gr.Tab("Settings", id="settings"):
            k = gr.Slider(1, min(cfg.max_k, 20), value=cfg.k, step=1,
                          label="Number of citations", elem_id="rag-k")
            mode = gr.Radio([(MODE_LABELS[m], m) for m in RETRIEVAL_MODES],
                            value=cfg.retrieval, label="Retrieval mode", elem_id="rag-mode")
            gr.Markdown("Hybrid search suits most questions; keywords alone are best for exact "
                        "names and numbers, meaning alone for paraphrased questions. These "
                        "settings apply to this browser tab only.")

        outs = [answer_html, cites_html, state, chooser, viewer, copy_btn]
        private = dict(api_visibility="undocumented")
        ask_ins = [question, k, mode, f_sources, f_author, f_since, f_until, f_dates, f_as_of]
        question.submit(on_ask, ask_ins, outs, **private).then(
            None, js=SCROLL_JS, **private)
        for b in example_btns:  # a button's label is its question
            b.click(lambda text: text, b, question, queue=False, **private).then(
                on_ask, ask_ins, outs, **private).then(None, js=SCROLL_JS, **private)
        demo.load(source_choices, None, f_sources, queue=False, **private)
        demo.load(examples_update, None, [examples_row, *example_btns], **private)
        chooser.input(on_open, [chooser, state], viewer, **private).then(
            None, js=SCROLL_PAGE_JS, **private)
        copy_btn.click(None, js=COPY_JS, **private)
        gr.api(answer_api, api_name="answer")

        statuses = [upload_status, web_status, remove_status, feed_status]
        refreshed = [table, page, remove_choice, feed_choice, feeds_list, index_state]
        library = dict(concurrency_limit=1, concurrency_id="library", **private)
        articles_tab.select(after_change, search, refreshed, **private)
        web_ins, web_outs = [web_text, web_feed, search], [*statuses, web_text, *refreshed]
        for trigger in (web_btn.click, web_text.submit):
            trigger(on_web, web_ins, web_outs, **library).then(
                examples_update, None, [examples_row, *example_btns], **private)
        if updater is not None:  # the watched folder changes the index behind the page
            timer = gr.Timer(5.0)
            timer.tick(status_html, None, index_state, queue=False, **private)
        search.change(lambda q: page_of(q, 0), search, [table, page], queue=False, **private)
        prev_btn.click(on_page(-1), [search, page], [table, page], queue=False, **private)
        next_btn.click(on_page(+1), [search, page], [table, page], queue=False, **private)
        upload.upload(on_upload, [upload, search], [*statuses, upload, *refreshed],
                      **library).then(
            examples_update, None, [examples_row, *example_btns], **private)
        remove_btn.click(on_remove_ask, remove_choice, [confirm_row, *statuses], **private)
        cancel_btn.click(lambda: (gr.Row(visible=False), *only(2, "")), None,
                         [confirm_row, *statuses], **private)
        confirm_btn.click(on_remove, [remove_choice, search],
                          [confirm_row, *statuses, *refreshed], **library).then(
            examples_update, None, [examples_row, *example_btns], **private)
        unsubscribe_btn.click(on_unsubscribe, [feed_choice, feed_delete, search],
                              [*statuses, *refreshed], **library)
    demo.queue(default_concurrency_limit=cfg.concurrency, max_size=64)
    return demo


CSS = render.CSS + """
.rag-head h1{margin:0 0 2px;font-size:1.5em}.rag-head p{margin:0;opacity:.75}
.rag-examples button{flex:0 1 auto !important;min-width:0 !important;white-space:normal}
#rag-copy{align-self:flex-start;max-width:12em}
.rag-pager{justify-content:flex-start}
.rag-pager button{flex:0 0 auto !important;min-width:8em !important}
@media (max-width: 640px){.rag-list .rag-table{min-width:720px}}  /* scrolls in its box */
@media (min-width: 900px){#rag-viewer-col{position:sticky;top:8px;align-self:flex-start}}
"""
