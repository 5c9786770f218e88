"""The web app: :mod:`.web` (FastAPI + the REST API, serving), :mod:`.ui` (Gradio),
:mod:`.render` (HTML from Answer values), :mod:`.library` (article uploads and removal).
Presentation only: answers come from :func:`rag.answer.pipeline.ask`."""
