"""Smallest useful Flask app: the buildpack tests GET / and check this text."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "Hello from python-flask on Yurt\n"
