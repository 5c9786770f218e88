"""The Gradio interface: Ask, Articles and Settings tabs. Presentation only.

:func:`create_blocks` returns a ``gr.Blocks`` bound to one :class:`~rag.config.Config`
(tests inject their own). Answers come from :func:`rag.ask`; HTML from
:mod:`rag.app.render`; article changes go through :class:`rag.app.library.Library`.
Errors a person can fix (empty question, no index yet) are shown as messages, never as
tracebacks. The Gradio client API exposes ``/answer`` (question, k, retrieval ->
the Answer as a dict, the same shape as ``python -m rag.ask --json``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gradio as gr

from ..config import RETRIEVAL_MODES, Config
from ..types import Answer, RagError
from . import render
from .errors import message_for
from .examples import MAX_EXAMPLES, example_questions
from .library import UPLOAD_SUFFIXES, Library
from .watch import index_status

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


class _Handlers:
    """The UI's event handlers over one config and its library: what :func:`create_blocks`
    wires to the components. ``demo`` is set once the Blocks exist (the upload check reads
    its record of uploaded files). Each handler returns the values of its outputs."""

    def __init__(self, cfg: Config, updater=None) -> None:
        self.cfg, self.updater = cfg, updater
        self.lib = Library(cfg)
        self.demo: gr.Blocks | None = None

    # -- asking -------------------------------------------------------------------------
    def run_ask(self, question: str, k: Any, mode: str, filters: dict | None = None,
                dates: bool = True, as_of: str | None = None) -> Answer:
        from ..answer.pipeline import ask

        return ask(question, k=int(k), config=self.cfg, retrieval=mode or None,
                   filters=filters, dates=dates, as_of=(as_of or "").strip() or None)

    @staticmethod
    def filters_of(sources, author, since, until) -> dict:
        return {"sources": list(sources or []),
                "authors": [a.strip() for a in (author or "").split(",") if a.strip()],
                "since": (since or "").strip() or None, "until": (until or "").strip() or None}

    def source_choices(self):
        try:
            rows = self.lib.articles()
        except RagError:
            rows = []
        # outlets, not file paths (a file's source is its path: filter those by folder)
        names = sorted({r["source"] for r in rows if r.get("source")
                        and not r["source"].lower().endswith(UPLOAD_SUFFIXES + (".htm",))})
        return gr.Dropdown(choices=names[:500])

    def on_ask(self, question, k, mode, sources=None, author="", since="", until="",
               dates=True, as_of=""):
        empty_radio = gr.Radio(choices=[], value=None, visible=False)
        try:
            a = self.run_ask(question or "", k, mode,
                             self.filters_of(sources, author, since, until), bool(dates), as_of)
        except RagError as exc:
            return (render.render_error(message_for(exc)), "", None, empty_radio,
                    render.render_article(None), gr.Button(visible=False))
        choices = [(f"[{c.n}] {_short(c.title)}", c.n) for c in a.citations]
        first = a.citations[0] if a.citations else None
        viewer = self.viewer(first) if first else render.render_article(None)
        return (render.render_answer(a), render.render_citations(a), a.to_dict(),
                gr.Radio(choices=choices, value=first.n if first else None,
                         visible=bool(choices)), viewer, gr.Button(visible=True))

    def viewer(self, c) -> str:
        try:
            article = self.lib.article(c.article_id)
        except RagError as exc:
            return render.render_article(None, note=message_for(exc))
        if article is None:
            return render.render_article(None, note="This article is no longer in the index.")
        return render.render_article(article, c)

    def on_open(self, n, state):
        if not state or n is None:
            return render.render_article(None)
        a = Answer.from_dict(state)
        c = next((c for c in a.citations if c.n == int(n)), None)
        return self.viewer(c) if c else render.render_article(None)

    def examples_update(self):
        """The example buttons: questions drawn from the index (rag.app.examples), the
        row hidden when there are none."""
        qs = example_questions(self.cfg)
        return (gr.Row(visible=bool(qs)),
                *[gr.Button(value=qs[i], visible=True) if i < len(qs)
                  else gr.Button(visible=False) for i in range(MAX_EXAMPLES)])

    # -- the Articles tab ---------------------------------------------------------------
    def page_of(self, query: str = "", page: int = 0) -> tuple[str, int]:
        """The Articles table's page ``page`` (clamped) of the rows matching ``query``."""
        try:
            return render.render_article_page(self.lib.articles(), query, int(page or 0),
                                              PER_PAGE)
        except RagError as exc:
            return render.render_error(message_for(exc)), 0

    def on_page(self, step: int):
        def turn(query, page):
            return self.page_of(query, int(page or 0) + step)
        return turn

    def file_choices(self):
        titles = {}
        try:
            titles = {r["id"]: r["title"] for r in self.lib.articles()}
        except RagError:
            pass
        return gr.Dropdown(choices=[(f"{titles[f]} ({f})" if f in titles else f, f)
                                    for f in self.lib.files()], value=None)

    def feed_choices(self):
        try:
            feeds = self.lib.feeds()
        except (RagError, OSError, ValueError):
            feeds = []
        return gr.Dropdown(choices=[(f.get("title") or f["url"], f["url"]) for f in feeds],
                           value=None)

    def status_html(self) -> str:
        return render.render_status(index_status(self.cfg, self.updater))

    def feeds_html(self) -> str:
        try:
            return render.render_feeds(self.lib.feeds())
        except (RagError, OSError, ValueError) as exc:
            return render.render_error(f"The feeds cannot be listed: {exc}")

    def after_change(self, query):
        """What every change of the library refreshes: the table (from its first page),
        the page number, the file and feed choices, the feeds list and the status."""
        html, page = self.page_of(query, 0)
        return (html, page, self.file_choices(), self.feed_choices(), self.feeds_html(),
                self.status_html())

    def on_upload(self, files, query, progress=gr.Progress(track_tqdm=True)):
        paths = files if isinstance(files, list) else ([files] if files else [])
        refused = [p for p in paths if not was_uploaded(str(p), self.demo)]
        if refused or not paths:
            why = ("Nothing was added: choose files to upload." if not paths else
                   "Nothing was added: only files uploaded through this page can be added.")
            return (*_only(0, render.render_error(why)), None, *self.after_change(query))
        uploads = [(str(p), str(getattr(p, "orig_name", None) or p).split("/")[-1])
                   for p in paths]
        progress(0, desc="Checking and indexing")
        result = self.lib.add(uploads, progress=True)
        return (*_only(0, _said(result)), None, *self.after_change(query))

    def on_web(self, text, as_feed, query, progress=gr.Progress(track_tqdm=True)):
        lines = [x.strip() for x in (text or "").replace(",", "\n").split() if x.strip()]
        progress(0, desc="Fetching and indexing")
        result = self.lib.add_web(urls=[] if as_feed else lines,
                                  feeds=lines if as_feed else [], progress=True)
        return (*_only(1, _said(result)), "" if result.ok else text, *self.after_change(query))

    @staticmethod
    def on_remove_ask(rel):
        if not rel:
            return (gr.Row(visible=False),
                    *_only(2, render.render_error("Choose an article file first.")))
        return (gr.Row(visible=True), *_only(2,
                f'<div class="rag-answer rag-confirm">Remove <b>{render.esc(rel)}</b> from the '
                'articles folder and the index? This deletes the file.</div>'))

    def on_remove(self, rel, query, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="Removing and re-indexing")
        result = self.lib.remove(rel or "", progress=True)
        return (gr.Row(visible=False), *_only(2, _said(result)), *self.after_change(query))

    def on_unsubscribe(self, url, delete_items, query, progress=gr.Progress(track_tqdm=True)):
        if not url:
            return (*_only(3, render.render_error("Choose a feed first.")),
                    *self.after_change(query))
        progress(0, desc="Unsubscribing")
        result = self.lib.remove_feed(url, delete_items=bool(delete_items), progress=True)
        return (*_only(3, _said(result)), *self.after_change(query))


def _said(result) -> str:
    return (f'<div class="rag-answer rag-done">{render.esc(result.message)}</div>'
            if result.ok else render.render_error(result.message))


def _only(which: int, html: str) -> tuple[str, str, str, str]:
    """The four action messages (upload, web, remove, feeds): ``html`` in the one that
    acted, the others emptied (an earlier "Added..." must not stay next to a removal's
    result)."""
    out = ["", "", "", ""]
    out[which] = html
    return tuple(out)


def create_blocks(cfg: Config, updater=None) -> gr.Blocks:
    """The whole UI for ``cfg`` (queue configured: ``cfg.concurrency`` at a time).
    ``updater`` (a running :class:`rag.app.watch.Updater`) feeds the Articles tab's
    status line, refreshed every few seconds. The handlers are :class:`_Handlers`'; the
    tabs are laid out by :func:`_ask_tab`, :func:`_articles_tab` and :func:`_settings_tab`
    and wired by :func:`_wire_ask` and :func:`_wire_articles`."""
    h = _Handlers(cfg, updater)

    def answer_api(question: str, k: int = cfg.k, retrieval: str = cfg.retrieval) -> dict:
        """Answer a question: returns the Answer as a dict (see `python -m rag.ask --json`).
        Its three inputs stay as they were for existing clients; filters are on
        POST /api/ask."""
        try:
            return h.run_ask(question, k, retrieval).to_dict()
        except RagError as exc:
            raise gr.Error(message_for(exc)) from None

    with gr.Blocks(title="rag: ask the articles") as demo:
        gr.HTML('<div class="rag-head"><h1>Ask the articles</h1><p>Answers are sentences '
                'quoted word for word from the indexed articles, with their sources.</p></div>')
        ask = _ask_tab()
        arts = _articles_tab(cfg)
        settings = _settings_tab(cfg)
        _wire_ask(demo, h, ask, settings)
        gr.api(answer_api, api_name="answer")
        _wire_articles(h, arts, ask, updater is not None)
    h.demo = demo
    demo.queue(default_concurrency_limit=cfg.concurrency, max_size=64)
    return demo


def _ask_tab() -> SimpleNamespace:
    """The Ask tab's components."""
    c = SimpleNamespace()
    with gr.Tab("Ask", id="ask"):
        c.question = gr.Textbox(placeholder="Ask a question and press Enter",
                                show_label=False, lines=1, submit_btn="Ask", autofocus=True,
                                elem_id="rag-question")
        with gr.Accordion("Filters: which articles to use", open=False,
                          elem_id="rag-filters"):
            with gr.Row():
                c.sources = gr.Dropdown(label="Source or outlet", multiselect=True,
                                        allow_custom_value=True, choices=[], scale=2,
                                        elem_id="rag-f-source")
                c.author = gr.Textbox(label="Author (part of the name)", scale=1,
                                      elem_id="rag-f-author")
            with gr.Row():
                c.since = gr.Textbox(label="Published since",
                                     placeholder="YYYY-MM-DD, or: last week, 7d",
                                     elem_id="rag-f-since")
                c.until = gr.Textbox(label="Published until", placeholder="YYYY-MM-DD",
                                     elem_id="rag-f-until")
                c.dates = gr.Checkbox(label="Read time words in the question "
                                            "(“last week”, “in March”) as dates",
                                      value=True, elem_id="rag-f-dates")
                c.as_of = gr.Textbox(label="Read them as of", placeholder="YYYY-MM-DD "
                                     "(default: today)", elem_id="rag-f-as-of")
        with gr.Row(elem_classes="rag-examples", visible=False,
                    elem_id="rag-examples") as c.examples_row:
            c.example_btns = [gr.Button("", size="sm", variant="secondary", visible=False)
                              for _ in range(MAX_EXAMPLES)]
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=280):
                c.answer_html = gr.HTML(render.render_answer(None), elem_id="rag-answer")
                c.copy_btn = gr.Button("Copy answer", size="sm", elem_id="rag-copy",
                                       visible=False)
                c.cites_html = gr.HTML("", elem_id="rag-citations")
            with gr.Column(scale=2, min_width=280, elem_id="rag-viewer-col"):
                c.chooser = gr.Radio(label="Read a source in its article", choices=[],
                                     visible=False, elem_id="rag-chooser")
                c.viewer = gr.HTML(render.render_article(None), elem_id="rag-viewer")
        c.state = gr.State(None)
    return c


def _articles_tab(cfg: Config) -> SimpleNamespace:
    """The Articles tab's components: the actions with their results, then the table."""
    c = SimpleNamespace()
    with gr.Tab("Articles", id="articles") as c.tab:
        c.index_state = gr.HTML("", elem_id="rag-index-status")
        with gr.Row(equal_height=False, elem_classes="rag-actions"):
            with gr.Column(min_width=280):
                gr.Markdown(f"**Add articles** ({', '.join(UPLOAD_SUFFIXES)}; at most "
                            f"{cfg.max_upload_bytes // 1024 // 1024} MB each)")
                c.upload = gr.File(file_count="multiple", file_types=list(UPLOAD_SUFFIXES),
                                   show_label=False, elem_id="rag-upload", height=120)
                c.upload_status = gr.HTML("", elem_id="rag-upload-status")
            with gr.Column(min_width=280):
                gr.Markdown("**Add from the web**: a page, or an RSS/Atom feed (one per "
                            "line; public http/https addresses only)")
                c.web_text = gr.Textbox(placeholder="https://…", show_label=False, lines=1,
                                        max_lines=6, elem_id="rag-web-url")
                with gr.Row(equal_height=True):
                    c.web_feed = gr.Checkbox(label="It is a feed (subscribe)", value=False,
                                             scale=2, elem_id="rag-web-feed")
                    c.web_btn = gr.Button("Fetch", scale=1, elem_id="rag-web-add")
                c.web_status = gr.HTML("", elem_id="rag-web-status")
        with gr.Row(equal_height=False, elem_classes="rag-actions"):
            with gr.Column(min_width=280):
                gr.Markdown("**Remove an article file**")
                with gr.Row(equal_height=True):
                    c.remove_choice = gr.Dropdown(choices=[], show_label=False, scale=4,
                                                  elem_id="rag-remove-choice")
                    c.remove_btn = gr.Button("Remove…", variant="stop", scale=1,
                                             elem_id="rag-remove")
                with gr.Row(visible=False) as c.confirm_row:
                    c.confirm_btn = gr.Button("Yes, remove it", variant="stop",
                                              elem_id="rag-remove-confirm")
                    c.cancel_btn = gr.Button("Cancel", elem_id="rag-remove-cancel")
                c.remove_status = gr.HTML("", elem_id="rag-remove-status")
            with gr.Column(min_width=280):
                gr.Markdown("**Feeds** (polled by builds and `--poll`)")
                c.feeds_list = gr.HTML("", elem_id="rag-feeds")
                with gr.Row(equal_height=True):
                    c.feed_choice = gr.Dropdown(choices=[], show_label=False, scale=4,
                                                elem_id="rag-feed-choice")
                    c.unsubscribe_btn = gr.Button("Unsubscribe", scale=1,
                                                  elem_id="rag-unsubscribe")
                c.feed_delete = gr.Checkbox(label="also remove its articles", value=False,
                                            elem_id="rag-feed-delete")
                c.feed_status = gr.HTML("", elem_id="rag-feed-status")
        c.search = gr.Textbox(placeholder="Search titles, sources and authors",
                              show_label=False, elem_id="rag-search")
        c.table = gr.HTML("", elem_id="rag-articles")
        with gr.Row(equal_height=True, elem_classes="rag-pager"):
            c.prev_btn = gr.Button("← Previous", size="sm", elem_id="rag-prev")
            c.next_btn = gr.Button("Next →", size="sm", elem_id="rag-next")
        c.page = gr.State(0)
    return c


def _settings_tab(cfg: Config) -> SimpleNamespace:
    """The Settings tab: citations and retrieval mode (this browser tab only)."""
    c = SimpleNamespace()
    with gr.Tab("Settings", id="settings"):
        c.k = gr.Slider(1, min(cfg.max_k, 20), value=cfg.k, step=1,
                        label="Number of citations", elem_id="rag-k")
        c.mode = gr.Radio([(MODE_LABELS[m], m) for m in RETRIEVAL_MODES],
                          value=cfg.retrieval, label="Retrieval mode", elem_id="rag-mode")
        gr.Markdown("Hybrid search suits most questions; keywords alone are best for exact "
                    "names and numbers, meaning alone for paraphrased questions. These "
                    "settings apply to this browser tab only.")
    return c


PRIVATE = dict(api_visibility="undocumented")  # events that are not part of the client API


def _wire_ask(demo: gr.Blocks, h: _Handlers, c: SimpleNamespace, s: SimpleNamespace) -> None:
    outs = [c.answer_html, c.cites_html, c.state, c.chooser, c.viewer, c.copy_btn]
    ask_ins = [c.question, s.k, s.mode, c.sources, c.author, c.since, c.until, c.dates,
               c.as_of]
    c.question.submit(h.on_ask, ask_ins, outs, **PRIVATE).then(None, js=SCROLL_JS, **PRIVATE)
    for b in c.example_btns:  # a button's label is its question
        b.click(lambda text: text, b, c.question, queue=False, **PRIVATE).then(
            h.on_ask, ask_ins, outs, **PRIVATE).then(None, js=SCROLL_JS, **PRIVATE)
    demo.load(h.source_choices, None, c.sources, queue=False, **PRIVATE)
    demo.load(h.examples_update, None, [c.examples_row, *c.example_btns], **PRIVATE)
    c.chooser.input(h.on_open, [c.chooser, c.state], c.viewer, **PRIVATE).then(
        None, js=SCROLL_PAGE_JS, **PRIVATE)
    c.copy_btn.click(None, js=COPY_JS, **PRIVATE)


def _wire_articles(h: _Handlers, a: SimpleNamespace, ask: SimpleNamespace,
                   watched: bool) -> None:
    statuses = [a.upload_status, a.web_status, a.remove_status, a.feed_status]
    refreshed = [a.table, a.page, a.remove_choice, a.feed_choice, a.feeds_list, a.index_state]
    examples = [ask.examples_row, *ask.example_btns]
    library = dict(concurrency_limit=1, concurrency_id="library", **PRIVATE)
    a.tab.select(h.after_change, a.search, refreshed, **PRIVATE)
    web_ins, web_outs = [a.web_text, a.web_feed, a.search], [*statuses, a.web_text, *refreshed]
    for trigger in (a.web_btn.click, a.web_text.submit):
        trigger(h.on_web, web_ins, web_outs, **library).then(
            h.examples_update, None, examples, **PRIVATE)
    if watched:  # the watched folder changes the index behind the page
        timer = gr.Timer(5.0)
        timer.tick(h.status_html, None, a.index_state, queue=False, **PRIVATE)
    a.search.change(lambda q: h.page_of(q, 0), a.search, [a.table, a.page], queue=False,
                    **PRIVATE)
    a.prev_btn.click(h.on_page(-1), [a.search, a.page], [a.table, a.page], queue=False,
                     **PRIVATE)
    a.next_btn.click(h.on_page(+1), [a.search, a.page], [a.table, a.page], queue=False,
                     **PRIVATE)
    a.upload.upload(h.on_upload, [a.upload, a.search], [*statuses, a.upload, *refreshed],
                    **library).then(h.examples_update, None, examples, **PRIVATE)
    a.remove_btn.click(h.on_remove_ask, a.remove_choice, [a.confirm_row, *statuses], **PRIVATE)
    a.cancel_btn.click(lambda: (gr.Row(visible=False), *_only(2, "")), None,
                       [a.confirm_row, *statuses], **PRIVATE)
    a.confirm_btn.click(h.on_remove, [a.remove_choice, a.search],
                        [a.confirm_row, *statuses, *refreshed], **library).then(
        h.examples_update, None, examples, **PRIVATE)
    a.unsubscribe_btn.click(h.on_unsubscribe, [a.feed_choice, a.feed_delete, a.search],
                            [*statuses, *refreshed], **library)


CSS = render.CSS + """
.rag-head h1{margin:0 0 2px;font-size:1.5em}.rag-head p{margin:0;opacity:.75}
.rag-examples button{flex:0 1 auto !important;min-width:0 !important;white-space:normal}
#rag-copy{align-self:flex-start;max-width:12em}
.rag-pager{justify-content:flex-start}
.rag-pager button{flex:0 0 auto !important;min-width:8em !important}
@media (max-width: 640px){.rag-list .rag-table{min-width:720px}}  /* scrolls in its box */
@media (min-width: 900px){#rag-viewer-col{position:sticky;top:8px;align-self:flex-start}}
"""
