"""Flask app whose dependencies are locked with Poetry (poetry.lock)."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "Hello from python-poetry on Yurt\n"
