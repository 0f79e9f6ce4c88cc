"""The demo app: a tiny Flask app that says which release answers."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    dyno = os.environ.get("DYNO", "local")
    return f"Hello from Yurt! ({dyno})\n"


@app.get("/health")
def health() -> str:
    return "ok\n"
