"""Rendered shop HTML read the way BeautifulSoup's ``html.parser`` tree reads it, without building the tree.

The observations are defined by BeautifulSoup's tree (which strings it makes, their parents, what
``get_text`` joins), but building that tree cost a server ~2.5 ms per page, a third of its time under
load. :func:`read_markup` walks the markup once, one regular expression per token built from
``html.parser``'s patterns for tags and attributes, and applies the tree builder's rules directly:

* text between two markup tokens is one string, its character references resolved; a string of
  ASCII whitespace only becomes ``"\\n"`` if it holds a newline and ``" "`` otherwise (not inside
  ``pre`` or ``textarea``);
* comments, declarations and processing instructions end the current string and add none;
* a void element (``br``, ``input``, ...) or ``<x/>`` closes at once; an end tag closes the innermost
  open element of its name and everything opened inside it, and is ignored when none is open;
* the content of ``script`` and ``style`` is raw text up to its end tag.

It covers the markup the shop's templates produce (text and attribute values escaped, so every
``&`` starts a complete character reference); ``tests/test_webshop_markup.py`` checks it against
BeautifulSoup on the rules' edge cases and on samples of the catalogue's pages (it matched on all
8,101 item, sub-, done, results and search pages when written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape

ROOT = "[document]"
"""The name BeautifulSoup gives the document itself: the parent of text outside every element."""
VOID_ELEMENTS = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "menuitem", "meta",
        "param", "source", "track", "wbr", "basefont", "bgsound", "command", "frame", "image", "isindex",
        "nextid", "spacer",
    }
)  # fmt: skip
"""BeautifulSoup's empty-element tags for HTML: closed as soon as they open."""
_PRESERVE_WHITESPACE = frozenset({"pre", "textarea"})
_RAW_TEXT = frozenset({"script", "style"})
_ASCII_SPACES = " \n\t\f\r"
_TOKEN = re.compile(
    r"""<!--.*?(?:--!?>|\Z)
    |<[!?][^>]*>?
    |</\s*(?P<end>[a-zA-Z][-.a-zA-Z0-9:_]*)\s*>
    |</[^>]*>?
    |<(?P<start>[a-zA-Z][^\t\n\r\f\ />\x00]*)
     (?P<attrs>(?:[\s/]*(?:(?<=['"\s/])[^\s/>][^\s/=>]*(?:\s*=+\s*(?:'[^']*'|"[^"]*"|(?!['"])[^>\s]*)\s*)?(?:\s|/(?!>))*)*)?)
     \s*(?P<close>/?)>""",
    re.DOTALL | re.VERBOSE,
)
"""One markup token: a comment, a declaration or processing instruction, an end tag, a bogus end tag, or a
start tag (html.parser's ``locatestarttagend_tolerant`` followed by ``>`` or ``/>``)."""
_ATTRIBUTE = re.compile(r"""((?<=['"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*('[^']*'|"[^"]*"|(?!['"])[^>\s]*))?""")
"""html.parser's ``attrfind_tolerant`` without its trailing separators."""
_RAW_TEXT_END = {name: re.compile(rf"</\s*{name}\s*>", re.IGNORECASE) for name in _RAW_TEXT}


@dataclass(eq=False, slots=True)
class Element:
    """One element: its name and attributes, and which of the document's strings lie inside it."""

    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    first_string: int = 0
    end_string: int = -1
    """Strings ``[first_string, end_string)`` of :attr:`Markup.strings` are its descendants."""

    @property
    def classes(self) -> list[str]:
        """The class attribute as BeautifulSoup splits it (a missing one is an empty list)."""
        return self.attrs["class"].split() if "class" in self.attrs else []


@dataclass(slots=True)
class Markup:
    """Every string of a document with its parent element, in document order, and every element
    in the order of its start tag."""

    strings: list[tuple[str, Element]]
    elements: list[Element]

    def text(self, element: Element) -> str:
        """``element.get_text()``: its descendant strings joined (those of ``script``/``style`` excluded)."""
        inside = self.strings[element.first_string : element.end_string]
        return "".join(text for text, parent in inside if parent.name not in _RAW_TEXT)


def _attributes(source: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for name, rest, value in _ATTRIBUTE.findall(source):
        if not rest:
            value = ""
        elif value[:1] == value[-1:] and value[:1] in ("'", '"'):
            value = value[1:-1]
        attrs[name.lower()] = unescape(value) if "&" in value else value
    return attrs


def _string(pieces: list[str], preserving: bool) -> str:
    text = "".join(pieces)
    if not preserving and not text.strip(_ASCII_SPACES):
        return "\n" if "\n" in text else " "
    return text


def read_markup(html: str) -> Markup:
    """The strings and elements BeautifulSoup's ``html.parser`` tree would hold for ``html``."""
    root = Element(ROOT)
    open_elements = [root]
    strings: list[tuple[str, Element]] = []
    elements: list[Element] = []
    pending: list[str] = []  # text since the last markup token: one string when a token ends it
    closed_voids: list[str] = []  # a later </br> for an open-and-shut <br> is ignored outright
    open_names: dict[str, int] = {}  # how many elements of each name are open
    preserving = 0  # open pre/textarea elements
    position = 0

    def close_top() -> Element:
        nonlocal preserving
        element = open_elements.pop()
        element.end_string = len(strings)
        open_names[element.name] -= 1
        if element.name in _PRESERVE_WHITESPACE:
            preserving -= 1
        return element

    while True:
        token = _TOKEN.search(html, position)
        text = html[position : token.start() if token else len(html)]
        if text:
            pending.append(unescape(text) if "&" in text else text)
        if token is None:
            break
        position = token.end()
        name = token.group("end")
        if name is not None:
            name = name.lower()
            if name in closed_voids:
                closed_voids.remove(name)
                continue
        if pending:
            strings.append((_string(pending, preserving > 0), open_elements[-1]))
            pending = []
        if name is not None:
            if open_names.get(name):
                while close_top().name != name:
                    pass
            continue
        name = token.group("start")
        if name is None:  # a comment, declaration, processing instruction or bogus end tag: no string
            continue
        name = name.lower()
        element = Element(name, _attributes(token.group("attrs")), first_string=len(strings))
        elements.append(element)
        open_elements.append(element)
        open_names[name] = open_names.get(name, 0) + 1
        if name in _PRESERVE_WHITESPACE:
            preserving += 1
        if token.group("close"):
            close_top()
        elif name in VOID_ELEMENTS:
            close_top()
            closed_voids.append(name)
        elif name in _RAW_TEXT:
            raw_end = _RAW_TEXT_END[name].search(html, position)
            stop = len(html) if raw_end is None else raw_end.start()
            if stop > position:
                pending.append(html[position:stop])  # raw: no character references
            position = stop
    if pending:
        strings.append((_string(pending, preserving > 0), open_elements[-1]))
    while len(open_elements) > 1:
        close_top()
    root.end_string = len(strings)
    return Markup(strings, elements)
