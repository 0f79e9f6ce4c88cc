"""A structural pre-pass over HCL2 job files, run next to ``pygohcl``.

``pygohcl`` (a binding of the real hashicorp/hcl parser) gives the values, but its JSON output
loses three things the fake needs to be as strict as Nomad's ``jobspec2`` decoder:

* whether a name was written as a block (``update { ... }``) or an attribute (``update = {}``);
  gohcl rejects the wrong form ("Unsupported argument" / "Unsupported block type");
* the source order and label counts of blocks (pygohcl returns labelled blocks as a map keyed
  by label, i.e. sorted, and a single nested block as an object instead of a list);
* the difference between a literal string and an expression: pygohcl returns the *source
  text* of ``var.x``, ``upper("a")`` or ``"${X}"`` (dropping the ``${ }``).

So this module tokenizes the file once, builds a tree of blocks and attributes with positions,
and enforces the fake's expression rule: **only literals** (strings, heredocs, numbers, bools,
null, lists and objects of literals). Interpolations ``${a.b.c}`` inside strings are allowed
only when they are plain traversals whose root is not ``var``/``local``: Nomad keeps those
verbatim for the client to interpolate at run time (``${NOMAD_PORT_http}``, ``${node.unique.id}``,
``${attr.x}``, ``${meta.x}``) [N:jobspec2/types.config.go EvalContext, the UndefinedVariable
hook of Nomad's patched hcl]. ``escape_interpolations`` then rewrites each allowed ``${`` to the
HCL escape ``$${`` so pygohcl returns the text exactly as Nomad would. Function calls, variables,
arithmetic, conditionals, ``for`` expressions and ``%{ }`` template directives are rejected:
Nomad would evaluate them, the fake does not, so accepting them would be lenient.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FILENAME = "input.hcl"
_TRAVERSAL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)(\.[A-Za-z0-9_-]+|\[\d+\])*\s*$")
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PUNCT = set("{}[](),=:?.+-*/%!<>&|")
_LITERALS_ONLY = "the fake accepts only literal values (strings, numbers, bools, lists, objects)"


class HCLScanError(ValueError):
    """A position-tagged error, formatted like hcl diagnostics: ``input.hcl:L,C: summary; detail``."""

    def __init__(self, line: int, col: int, summary: str, detail: str = "") -> None:
        text = f"{FILENAME}:{line},{col}: {summary}"
        if detail:
            text += f"; {detail}"
        super().__init__(text)


@dataclass
class Token:
    kind: str  # ident, string, heredoc, number, punct, newline, eof
    text: str
    line: int
    col: int


@dataclass
class Attr:
    name: str
    line: int
    col: int


@dataclass
class Block:
    type: str
    labels: list[str]
    line: int
    col: int
    attrs: list[Attr] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def children(self, block_type: str) -> list[Block]:
        return [b for b in self.blocks if b.type == block_type]


@dataclass
class ScanResult:
    body: Block  # the file body, type "" without labels
    template_spans: list[tuple[int, int]]  # offsets of string/heredoc contents


class _Lexer:
    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.line = 1
        self.col = 1
        self.spans: list[tuple[int, int]] = []

    def _advance(self, n: int) -> None:
        for ch in self.src[self.pos : self.pos + n]:
            if ch == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
        self.pos += n

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        while True:
            tok = self._next()
            out.append(tok)
            if tok.kind == "eof":
                return out

    def _skip_space_and_comments(self) -> None:
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if ch in " \t\r":
                self._advance(1)
            elif ch == "#" or src.startswith("//", self.pos):
                end = src.find("\n", self.pos)
                self._advance((len(src) if end < 0 else end) - self.pos)
            elif src.startswith("/*", self.pos):
                end = src.find("*/", self.pos + 2)
                if end < 0:
                    raise HCLScanError(self.line, self.col, "Unterminated comment")
                self._advance(end + 2 - self.pos)
            else:
                return

    def _next(self) -> Token:
        self._skip_space_and_comments()
        line, col, src = self.line, self.col, self.src
        if self.pos >= len(src):
            return Token("eof", "", line, col)
        ch = src[self.pos]
        if ch == "\n":
            self._advance(1)
            return Token("newline", "\n", line, col)
        if ch == '"':
            return self._string(line, col)
        if src.startswith("<<", self.pos):
            return self._heredoc(line, col)
        m = _NUMBER.match(src, self.pos)
        if m:
            self._advance(m.end() - self.pos)
            return Token("number", m.group(0), line, col)
        m = _IDENT.match(src, self.pos)
        if m:
            self._advance(m.end() - self.pos)
            return Token("ident", m.group(0), line, col)
        if ch in _PUNCT:
            self._advance(1)
            return Token("punct", ch, line, col)
        raise HCLScanError(line, col, "Invalid character", f"unexpected {ch!r}")

    def _check_template(self, start: int, end: int) -> None:
        """Validate interpolations and directives in src[start:end] (a string or heredoc body)."""
        text = self.src[start:end]
        i = 0
        while i < len(text):
            if text.startswith("$${", i) or text.startswith("%%{", i):
                i += 3
                continue
            if text.startswith("%{", i):
                raise self._at(
                    start + i,
                    "Unsupported template directive",
                    "the fake accepts no %{ } directives",
                )
            if text.startswith("${", i):
                close = text.find("}", i)
                inner = text[i + 2 : close] if close > 0 else text[i + 2 :]
                m = _TRAVERSAL.match(inner)
                if close < 0 or not m:
                    raise self._at(
                        start + i,
                        "Unsupported expression",
                        f"the fake keeps only plain run-time references like ${{NOMAD_PORT_http}}; got ${{{inner}}}",
                    )
                if m.group(1) in ("var", "local"):
                    raise self._at(
                        start + i,
                        "Unsupported expression",
                        "HCL variables are not supported by the fake",
                    )
                i = close + 1
                continue
            i += 1
        self.spans.append((start, end))

    def _at(self, offset: int, summary: str, detail: str) -> HCLScanError:
        line = self.src.count("\n", 0, offset) + 1
        col = offset - (self.src.rfind("\n", 0, offset) + 1) + 1
        return HCLScanError(line, col, summary, detail)

    def _string(self, line: int, col: int) -> Token:
        src = self.src
        i = self.pos + 1
        while i < len(src) and src[i] != '"':
            if src[i] == "\n":
                raise HCLScanError(line, col, "Unterminated template string")
            i += 2 if src[i] == "\\" else 1
        if i >= len(src):
            raise HCLScanError(line, col, "Unterminated template string")
        self._check_template(self.pos + 1, i)
        raw = src[self.pos + 1 : i]
        self._advance(i + 1 - self.pos)
        return Token("string", _unescape(raw), line, col)

    def _heredoc(self, line: int, col: int) -> Token:
        src = self.src
        m = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_-]*)[ \t]*\n").match(src, self.pos)
        if not m:
            raise HCLScanError(line, col, "Invalid heredoc")
        marker = m.group(1)
        body_start = m.end()
        end_re = re.compile(rf"^[ \t]*{re.escape(marker)}[ \t]*$", re.MULTILINE)
        end = end_re.search(src, body_start)
        if not end:
            raise HCLScanError(
                line, col, "Unterminated template string", f"no closing marker {marker!r}"
            )
        self._check_template(body_start, end.start())
        self._advance(end.end() - self.pos)
        return Token("heredoc", "", line, col)


def _unescape(raw: str) -> str:
    simple = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
                continue
            if nxt == "u" and i + 6 <= len(raw):
                out.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
                continue
        out.append(ch)
        i += 1
    return "".join(out).replace("$${", "${")


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def expect_punct(self, ch: str) -> Token:
        tok = self.take()
        if tok.kind != "punct" or tok.text != ch:
            raise HCLScanError(
                tok.line, tok.col, "Syntax error", f"expected {ch!r}, found {tok.text!r}"
            )
        return tok

    def body(self, block: Block, closing: bool) -> Block:
        while True:
            tok = self.peek()
            if tok.kind == "newline":
                self.take()
                continue
            if tok.kind == "eof":
                if closing:
                    raise HCLScanError(tok.line, tok.col, "Unclosed configuration block")
                return block
            if closing and tok.kind == "punct" and tok.text == "}":
                self.take()
                return block
            self.item(block)

    def item(self, block: Block) -> None:
        name = self.take()
        if name.kind != "ident":
            raise HCLScanError(name.line, name.col, "Argument or block definition required")
        nxt = self.peek()
        if nxt.kind == "punct" and nxt.text == "=":
            self.take()
            self.expr()
            block.attrs.append(Attr(name.text, name.line, name.col))
        else:
            labels: list[str] = []
            while self.peek().kind in ("string", "ident"):
                labels.append(self.take().text)
            self.expect_punct("{")
            child = self.body(Block(name.text, labels, name.line, name.col), closing=True)
            block.blocks.append(child)
        end = self.peek()
        if end.kind == "punct" and end.text not in "{}":
            raise HCLScanError(
                end.line,
                end.col,
                "Unsupported expression",
                _LITERALS_ONLY + f"; found operator {end.text!r}",
            )
        if end.kind not in ("newline", "eof") and not (end.kind == "punct" and end.text == "}"):
            raise HCLScanError(
                end.line, end.col, "Missing newline after argument or block definition"
            )

    def expr(self) -> None:
        tok = self.take()
        if tok.kind in ("string", "heredoc", "number"):
            return
        if tok.kind == "ident" and tok.text in ("true", "false", "null"):
            return
        if tok.kind == "punct" and tok.text == "-" and self.peek().kind == "number":
            self.take()
            return
        if tok.kind == "punct" and tok.text == "[":
            self.tuple()
            return
        if tok.kind == "punct" and tok.text == "{":
            self.object()
            return
        raise HCLScanError(
            tok.line,
            tok.col,
            "Unsupported expression",
            _LITERALS_ONLY + f"; found {tok.text!r}",
        )

    def _skip_newlines(self) -> None:
        while self.peek().kind == "newline":
            self.take()

    def tuple(self) -> None:
        while True:
            self._skip_newlines()
            tok = self.peek()
            if tok.kind == "punct" and tok.text == "]":
                self.take()
                return
            self.expr()
            self._skip_newlines()
            sep = self.peek()
            if sep.kind == "punct" and sep.text == ",":
                self.take()
            elif not (sep.kind == "punct" and sep.text == "]"):
                raise HCLScanError(
                    sep.line, sep.col, "Missing item separator", "expected ',' or ']'"
                )

    def object(self) -> None:
        while True:
            self._skip_newlines()
            tok = self.take()
            if tok.kind == "punct" and tok.text == "}":
                return
            if tok.kind not in ("ident", "string"):
                raise HCLScanError(
                    tok.line, tok.col, "Unsupported expression", "object keys must be literal names"
                )
            sep = self.take()
            if not (sep.kind == "punct" and sep.text in "=:"):
                raise HCLScanError(sep.line, sep.col, "Missing key/value separator")
            self.expr()
            nxt = self.peek()
            if nxt.kind == "punct" and nxt.text == ",":
                self.take()


def scan(src: str) -> ScanResult:
    """Tokenize and parse ``src``; raise HCLScanError on anything the fake does not accept."""
    lexer = _Lexer(src)
    tokens = lexer.tokens()
    body = _Parser(tokens).body(Block("", [], 1, 1), closing=False)
    return ScanResult(body=body, template_spans=lexer.spans)


def escape_interpolations(src: str, spans: list[tuple[int, int]]) -> str:
    """Rewrite ``${`` to ``$${`` inside string/heredoc spans so HCL keeps them verbatim."""
    out: list[str] = []
    last = 0
    for start, end in sorted(spans):
        out.append(src[last:start])
        out.append(re.sub(r"(?<!\$)\$\{", "$${", src[start:end]))
        last = end
    out.append(src[last:])
    return "".join(out)
