"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from kabar import __version__
from kabar.config import Config
from kabar.sources.jsonl import FIELDS, REQUIRED


def api_base_url(config: Config) -> str:
    """Where the API is reached from outside."""
    return (config.web.base_url or config.site.url).rstrip("/") + "/api/v1"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_ERRORS = {
    "401": _error("No token, or an unknown or revoked one."),
    "403": _error("The token lacks the scope this needs."),
    "422": _error("A field has a bad value; `field` names it."),
    "429": _error("Over the token's rate limit (see Retry-After)."),
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, scope: str, answer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary, "security": [{"bearer": [scope]}],
        "responses": {**answer, **_ERRORS}, **extra,
    }  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def openapi_document(config: Config) -> dict[str, Any]:
    article = {
        "type": "object", "required": list(REQUIRED),
        "properties": {name: {"type": "string"} for name in FIELDS if name not in
                       ("tags", "authors", "related")}
        | {"tags": {"type": "array", "items": {"type": "string"}},
           "authors": {"type": "array", "items": {"type": "string"}},
           "related": {"type": "array", "items": {"type": "object"}}},
    }  # fmt: skip
    subscriber = {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "list": {"type": "string"}, "email": {"type": "string"},
            "name": {"type": "string"}, "locale": {"type": "string"},
            "status": {"enum": ["pending", "active", "unsubscribed", "bounced", "complained"]},
            "origin": {"type": "string"}, "created": {"type": "string", "format": "date-time"},
            "updated": {"type": "string", "format": "date-time"},
            "confirm_url": {"type": "string", "description": "Pending only: the link that "
                            "activates the address, for the CMS to send its owner."},
        },
    }  # fmt: skip
    counts = {"type": "object", "properties": {
        name: {"type": "integer"}
        for name in (
            "audience", "sent", "deferred", "failed", "bounced", "complained", "skipped", "pending"
        )
    }}  # fmt: skip
    issue = {"type": "object", "properties": {
        "key": {"type": "string"}, "digest": {"type": "string"}, "list": {"type": "string"},
        "period": {"type": "string"}, "issue_time": {"type": "string", "format": "date-time"},
        "state": {"type": "string"}, "detail": {"type": "string"}, "counts": counts,
        "updated": {"type": "string", "format": "date-time"},
    }}  # fmt: skip
    sources = [source.id for source in config.sources]
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{config.site.title}: kabar API", "version": __version__},
        "servers": [{"url": api_base_url(config)}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `kabar tokens create`.",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "field"],
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": ["string", "null"]},
                    },
                },
                "Article": article,
                "Subscriber": subscriber,
                "Issue": issue,
            },
        },
        "paths": {
            "/sources/{source}/articles": {
                "post": _op(
                    'Store articles (one, an array, or {"articles": [...]}) in the JSON ingest '
                    "format, update related news, and rebuild the source's feeds (debounced).",
                    "articles:write",
                    {
                        "200": {
                            "description": "Stored ids, and each rejected record's index, field "
                            "and reason.",
                            **_json({"type": "object"}),
                        },
                        "404": _error("Unknown source."),
                        "413": _error("Too many articles."),
                    },
                    parameters=[{**_path("source"), "schema": {"enum": sources}}],
                    requestBody={
                        "required": True,
                        **_json(
                            {
                                "oneOf": [
                                    _ref("Article"),
                                    {"type": "array", "items": _ref("Article")},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "articles": {"type": "array", "items": _ref("Article")}
                                        },
                                    },
                                ]
                            }
                        ),
                    },
                )
            },
            "/subscribers": {
                "get": _op(
                    "Subscribers, by id, a page at a time (`after` = the last id).",
                    "subscribers:read",
                    {
                        "200": {
                            "description": "A page; `next` is the cursor or null.",
                            **_json({"type": "object"}),
                        }
                    },
                    parameters=[
                        _query("list", "Only this list.", {"type": "string"}),
                        _query("status", "Only this status.", {"type": "string"}),
                        _query(
                            "limit",
                            "At most this many (1-500).",
                            {"type": "integer", "default": 100},
                        ),
                        _query("after", "The `next` of the previous page.", {"type": "string"}),
                    ],
                ),
                "post": _op(
                    "Add an address (consent origin api): pending on double opt-in "
                    "lists, with the confirm_url for the CMS to send; an address that "
                    "left goes back to pending, never straight to active.",
                    "subscribers:write",
                    {
                        "201": {"description": "The subscriber.", **_json(_ref("Subscriber"))},
                        "409": _error("Already on the list."),
                    },
                    requestBody={
                        "required": True,
                        **_json(
                            {
                                "type": "object",
                                "required": ["list", "email"],
                                "properties": {
                                    "list": {"type": "string"},
                                    "email": {"type": "string"},
                                    "name": {"type": "string"},
                                    "locale": {"type": "string"},
                                },
                            }
                        ),
                    },
                ),
            },
            "/subscribers/{id}": {
                "parameters": [_path("id")],
                "get": _op(
                    "One subscriber.",
                    "subscribers:read",
                    {
                        "200": {"description": "The subscriber.", **_json(_ref("Subscriber"))},
                        "404": _error("No such subscriber."),
                    },
                ),
                "patch": _op(
                    "Change name or locale, or unsubscribe (status: unsubscribed).",
                    "subscribers:write",
                    {
                        "200": {"description": "The subscriber.", **_json(_ref("Subscriber"))},
                        "409": _error("A status only its owner can set."),
                    },
                    requestBody={"required": True, **_json({"type": "object"})},
                ),
                "delete": _op(
                    "Erase the subscriber and their delivery history.",
                    "subscribers:write",
                    {"204": {"description": "Erased."}, "404": _error("No such subscriber.")},
                ),
            },
            "/issues": {
                "get": _op(
                    "Issues, newest first, with the counts `kabar status` shows.",
                    "issues:read",
                    {
                        "200": {
                            "description": "Issues.",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "issues": {"type": "array", "items": _ref("Issue")}
                                    },
                                }
                            ),
                        }
                    },
                    parameters=[
                        _query("digest", "Only this digest.", {"type": "string"}),
                        _query(
                            "limit",
                            "At most this many (1-500).",
                            {"type": "integer", "default": 20},
                        ),
                    ],
                )
            },
            "/issues/{key}": {
                "get": _op(
                    "One issue with its counts.",
                    "issues:read",
                    {
                        "200": {"description": "The issue.", **_json(_ref("Issue"))},
                        "404": _error("No such issue."),
                    },
                    parameters=[_path("key")],
                )
            },
        },
    }
