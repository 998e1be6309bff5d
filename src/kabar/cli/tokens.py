"""kabar tokens: bearer tokens of the HTTP API."""

from __future__ import annotations

import click

from kabar.cli.app import App, echo_json, echo_table, fail, pass_app

SCOPE_CHOICE = click.Choice(
    ["articles:write", "subscribers:read", "subscribers:write", "issues:read"]
)


@click.group()
def tokens() -> None:
    """Bearer tokens for the HTTP API under /api/v1 (`kabar serve`).

    A token is shown once, when made; kabar keeps only a hash of it. Each request is
    limited per token (api.rate_limit per api.rate_window).
    """


@tokens.command("create")
@click.option("--scope", "scopes", type=SCOPE_CHOICE, multiple=True, required=True,
              help="What the token may do; repeat for more than one.")  # fmt: skip
@click.option("--name", default="", help="A note saying who uses it (the CMS, a script).")
@click.option("--json", "as_json", is_flag=True, help="Print the token and its id as JSON.")
@pass_app
def create(app: App, scopes: tuple[str, ...], name: str, as_json: bool) -> None:
    """Make a token and print it (once: it cannot be shown again)."""
    from kabar.api.tokens import Tokens

    token, text = Tokens(app.store.engine).create(list(scopes), name)
    if as_json:
        echo_json({**token.to_dict(), "token": text})
        return
    click.echo(text)
    click.echo(f"token {token.id} ({', '.join(token.scopes)}): store it now, it is not "
               "shown again", err=True)  # fmt: skip


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per token.")
@pass_app
def list_tokens(app: App, as_json: bool) -> None:
    """Tokens (ids, names, scopes, last use), never their secrets."""
    from kabar.api.tokens import Tokens

    found = Tokens(app.store.engine).list()
    if as_json:
        for token in found:
            echo_json(token.to_dict())
        return
    if not found:
        click.echo("no tokens")
        return
    echo_table(
        ("id", "name", "scopes", "created", "last used", "revoked"),
        (
            (t.id, t.name, " ".join(t.scopes), t.created.isoformat(timespec="seconds"),
             t.last_used.isoformat(timespec="seconds") if t.last_used else "-",
             t.revoked.isoformat(timespec="seconds") if t.revoked else "-")
            for t in found
        ),
    )  # fmt: skip


@tokens.command("revoke")
@click.argument("token_id")
@pass_app
def revoke(app: App, token_id: str) -> None:
    """Revoke a token by its id (from `kabar tokens list`): it stops working at once."""
    from kabar.api.tokens import Tokens

    if not Tokens(app.store.engine).revoke(token_id):
        fail(f"TOKEN_ID: no live token {token_id!r}", 1)
    click.echo(f"token {token_id} revoked")
