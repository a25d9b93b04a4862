"""The human shop: the WebShop pages in a browser, driven by the same sessions as the JSON API.

A visit to ``/`` opens a session on the server (the same capped, expiring sessions agents get; query
parameters ``goal_index``, ``split``, ``session`` and ``seed`` choose the goal as reset options do)
and redirects to its search page. Pages live at the original's URLs (``/<session_id>``,
``/search_results/<session_id>/...``, ``/item_page/...``, ``/item_sub_page/...``, ``/done/...``);
every button, product link and option posts a ``click[...]`` / ``search[...]`` action to
``/act/<session_id>``, which steps the session's state machine and redirects to the page it is now
on. The session is the source of truth: a page URL for another page than the current one (the
browser's back button) redirects to the current page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from flask import Blueprint, Response, current_app, redirect, request, url_for
from markupsafe import escape

from environments.core.engine import InvalidOptionsError, SessionStateError
from environments.core.server import session_manager
from environments.core.sessions import UnknownSessionError
from environments.webshop.engine import WebShopSession
from environments.webshop.pages import STATIC_DIR, STATIC_URL_PATH, Links, PageKind

log = logging.getLogger(__name__)

BLUEPRINT_NAME = "webshop_shop"
_INT_OPTIONS = ("goal_index", "seed")
_T = TypeVar("_T")


def _run(session_id: str, fn: Callable[[WebShopSession], _T]) -> _T:
    """Call ``fn`` with the WebShop session behind ``session_id`` (under its lock)."""

    def checked(session: Any) -> _T:
        if not isinstance(session, WebShopSession):
            raise TypeError("the human shop needs a server whose sessions are WebShop sessions")
        return fn(session)

    return session_manager(current_app).run(session_id, checked)  # type: ignore[return-value]


def _links(session_id: str) -> Links:
    return Links(
        act=url_for(f"{BLUEPRINT_NAME}.act", session_id=session_id),
        static=STATIC_URL_PATH,
        new_task=url_for(f"{BLUEPRINT_NAME}.new_task"),
    )


def _current_path(session: WebShopSession, session_id: str) -> str:
    return quote(session.url(base_url="", session_id=session_id), safe="/+")


def _message(status: int, text: str) -> Response:
    home = url_for(f"{BLUEPRINT_NAME}.new_task")
    body = f'<!DOCTYPE html><html><body><h3>{escape(text)}</h3><p><a href="{home}">Start a new task</a></p>'
    return Response(body + "</body></html>", status=status, mimetype="text/html")


def _reset_options() -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in request.args.items():
        if key in _INT_OPTIONS:
            try:
                options[key] = int(value)
            except ValueError:
                raise InvalidOptionsError(f"{key} must be an integer, got {value!r}") from None
        else:
            options[key] = value
    return options


def _action_from_request() -> str | None:
    values = request.form if request.method == "POST" else request.args
    if "search_query" in values:
        return f"search[{values['search_query']}]"
    return values.get("action")


def shop_blueprint() -> Blueprint:
    """The human shop's pages (mounted at the server root, beside ``/api``)."""
    shop = Blueprint(BLUEPRINT_NAME, __name__, static_folder=STATIC_DIR, static_url_path=STATIC_URL_PATH)

    @shop.errorhandler(UnknownSessionError)
    def unknown_session(exc: UnknownSessionError) -> Response:
        return _message(404 if exc.reason == "does not exist" else 410, f"This shopping session {exc.reason}.")

    @shop.errorhandler(InvalidOptionsError)
    def bad_options(exc: InvalidOptionsError) -> Response:
        return _message(400, str(exc))

    @shop.get("/")
    def new_task() -> Response:
        options = _reset_options()
        manager = session_manager(current_app)
        session_id, _ = manager.create()
        try:
            _run(session_id, lambda session: session.reset(options))
        except Exception:
            manager.close(session_id, reason="was closed because its first reset failed")
            raise
        log.info("human shop session %s started (%s)", session_id, options or "weighted random goal")
        return redirect(url_for(f"{BLUEPRINT_NAME}.show_search", session_id=session_id))

    def show(session_id: str, kind: PageKind) -> Response:
        def render(session: WebShopSession) -> Response:
            if session.state.kind is not kind:
                return redirect(_current_path(session, session_id))
            page = Response(session.html(_links(session_id)), mimetype="text/html")
            page.headers["Cache-Control"] = "no-store"  # "back" must ask the session, not the cache
            return page

        return _run(session_id, render)

    @shop.get("/<session_id>")
    def show_search(session_id: str) -> Response:
        return show(session_id, PageKind.SEARCH)

    for kind in (PageKind.RESULTS, PageKind.ITEM, PageKind.SUB_PAGE, PageKind.DONE):
        shop.add_url_rule(
            f"/{kind.value}/<session_id>/<path:rest>",
            endpoint=f"show_{kind.value}",
            view_func=lambda session_id, rest, kind=kind: show(session_id, kind),
        )

    @shop.route("/act/<session_id>", methods=["GET", "POST"])
    def act(session_id: str) -> Response:
        action = _action_from_request()

        def step(session: WebShopSession) -> Response:
            if action is not None and not session.done:
                try:
                    outcome = session.step(action)
                except SessionStateError as exc:
                    log.info("human shop session %s: %s", session_id, exc)
                else:
                    if not outcome.info["action_valid"]:
                        log.info("human shop session %s: %r is not valid on this page", session_id, action)
            return redirect(_current_path(session, session_id), code=303)

        return _run(session_id, step)

    return shop
