"""The app `ganmix ui` serves (`mlflow server --app-name ganmix`, registered under MLflow's `mlflow.app` entry
points): MLflow's own FastAPI app, with its page told to open in Model training mode.

MLflow 3.17's UI picks GenAI or Model training per browser, not per experiment: the URL's `workflowType`
when a link carries it, else the browser's localStorage key `mlflow.workflowType_v1`, which defaults to GenAI.
Its own links (a run's name in the runs table, "Child runs", the experiment list) drop the URL's, so a
first-time user lands on GenAI pages (Traces, Evaluations) that show nothing of a ganmix search. A ganmix
store holds model-training runs only: the page sets that key before MLflow's script reads it (the toggle
still switches modes until the next page load).
"""

from __future__ import annotations

from typing import Any

from mlflow.server.fastapi_app import app as mlflow_app

WORKFLOW_KEY, MODEL_TRAINING = "mlflow.workflowType_v1", '"machine_learning"'  # its hook's key and JSON value
# Markdown tables (run descriptions) get cell padding: MLflow's style draws them with columns touching.
HEAD = (f"<script>try{{localStorage.setItem('{WORKFLOW_KEY}','{MODEL_TRAINING}')}}catch(e){{}}</script>"
        "<style>table th,table td{padding:2px 10px}</style>").encode()
PAGES = ("/", "/index.html")


class ModelTrainingFirst:
    """ASGI middleware: MLflow's index page with HEAD added to its <head>; everything else untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") not in PAGES:
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def rewrite(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            if b"<head>" in body:
                body = body.replace(b"<head>", b"<head>" + HEAD, 1)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"etag")]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, rewrite)


app = ModelTrainingFirst(mlflow_app)
