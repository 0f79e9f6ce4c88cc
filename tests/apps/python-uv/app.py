"""Flask app whose dependencies are locked with uv (uv.lock)."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "Hello from python-uv on Yurt\n"
