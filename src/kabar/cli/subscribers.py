"""The `kabar subscribers` group: the mailing lists' subscribers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, cast

import click

from kabar.cli.app import EXIT_PARTIAL, App, echo_json, echo_table, fail, pass_app


def _list_id(app: App, list_id: str | None) -> str:
    known = [mailing_list.id for mailing_list in app.config.lists]
    if list_id is None and len(known) == 1:
        return known[0]
    if list_id is None or list_id not in known:
        what = "--list is required" if list_id is None else f"unknown list id {list_id!r}"
        fail(f"{what} (configured lists: {', '.join(known) or 'none'})")
    return list_id


_list_option = click.option(
    "--list", "list_id", metavar="ID", help="Mailing list id [default: the only list]."
)


@click.group()
def subscribers() -> None:
    """Subscribers of the mailing lists, kept in the database.

    Statuses: pending (double opt-in, unconfirmed), active, unsubscribed, bounced,
    complained. Only active subscribers receive issues.
    """


@subscribers.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_list_option
@click.option(
    "--status",
    type=click.Choice(["active", "pending"]),
    default="active",
    show_default=True,
    help="Status of the imported subscribers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@pass_app
def subscribers_import(
    app: App, file: Path, list_id: str | None, status: str, as_json: bool
) -> None:
    """Import subscribers from a CSV FILE.

    The first row may name the columns (`email`, and optionally `name` and `locale`);
    without it the columns are email, name, locale. Addresses are checked with
    email-validator (syntax only, no DNS). Each rejected row is reported as
    FILE:LINE: reason (an invalid address, or a duplicate in the file or on the list) and
    the others are imported; subscribers already on the list are never changed. An address
    that left (unsubscribed, bounced, complained) is never re-activated: it is reported,
    listed under "left" with --json, and counted. Exit status 1 if any row was rejected.
    """
    from kabar.subscribers import Status, Subscribers

    target = _list_id(app, list_id)
    report = Subscribers(app.store.engine).import_csv(file, target, status=cast(Status, status))
    if as_json:
        echo_json({
            "file": str(file), "list": target, "imported": report.imported,
            "rejected": report.rejected, "left": report.left,
        })  # fmt: skip
    else:
        for line in report.rejected:
            click.echo(line, err=True)
        click.echo(report.describe())
    if report.rejected:
        sys.exit(EXIT_PARTIAL)


@subscribers.command("list")
@_list_option
@click.option("--status", type=click.Choice(["pending", "active", "unsubscribed", "bounced",
              "complained"]), help="Only subscribers with this status.")  # fmt: skip
@click.option("--digest", "digest_id", metavar="ID", help="Only those who receive this digest.")
@click.option("--section", metavar="NAME", help="Only those who picked this section.")
@click.option("--language", metavar="CODE", help="Only those who chose this language (id, en).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def subscribers_list(
    app: App, list_id: str | None, status: str | None, digest_id: str | None,
    section: str | None, language: str | None, as_json: bool,
) -> None:  # fmt: skip
    """List subscribers (of every list unless --list is given), by address.

    --digest keeps those who receive the digest (all the list's digests, or it chosen);
    --section those who picked the section (any case); --language those whose language
    is CODE.
    """
    from kabar.subscribers import Status, Subscribers

    if list_id is not None:
        _list_id(app, list_id)
    if digest_id is not None and digest_id not in {d.id for d in app.config.digests}:
        fail(f"unknown digest id {digest_id!r}")
    found = (
        s
        for s in Subscribers(app.store.engine).iter(list_id, status=cast("Status | None", status))
        if (digest_id is None or (s.list_id == app.config.digest(digest_id).list_id
                                  and s.receives(digest_id)))
        and (section is None or section.casefold() in {x.casefold() for x in s.sections})
        and (language is None or s.locale == language)
    )  # fmt: skip
    if as_json:
        for subscriber in found:
            echo_json(subscriber.to_dict())
        return
    echo_table(
        ("list", "email", "name", "locale", "status", "digests", "sections"),
        (
            (s.list_id, s.email, s.name, s.locale, s.status, ",".join(s.digests) or "all",
             ",".join(s.sections) or "all")
            for s in found
        ),
    )  # fmt: skip


@subscribers.command("show")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def subscribers_show(app: App, email: str, as_json: bool) -> None:
    """Show EMAIL's subscriptions on every list with their consent record: how each came
    (form, import, api, admin, preferences), when, from which IP and user agent, in which
    language, and when and from where it was confirmed. Exit status 1 if not found."""
    from kabar.consent import Consent, described_consent

    rows = _rows_of(app, email)
    records = [row.to_dict() | {"consent": described_consent(row)} for row in rows]
    if as_json:
        echo_json({"email": rows[0].email, "subscriptions": records})
        return
    for record in records:
        consent = record.pop("consent")
        click.echo(f"{record['list']}: {record['status']}")
        for key in ("name", "locale", "digests", "sections", "created", "updated"):
            value = record[key]
            shown = ", ".join(value) or "all" if isinstance(value, list) else value or "-"
            click.echo(f"  {key}: {shown}")
        for key, value in consent.items():
            click.echo(f"  consent.{key}: {value if value not in (None, '') else '-'}")
    del Consent  # imported for the record's shape only


def _rows_of(app: App, email: str) -> list[Any]:
    from kabar.addresses import InvalidAddress
    from kabar.consent import Consent

    try:
        rows = Consent(app.store.engine).rows_of(email)
    except InvalidAddress as exc:
        raise click.BadParameter(f"{email!r}: {exc}", param_hint="EMAIL") from None
    if not rows:
        fail(f"{email} is not on any list", EXIT_PARTIAL)
    return rows


@subscribers.command("export")
@click.argument("email")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON to this file [default: standard output].",
)  # fmt: skip
@pass_app
def subscribers_export(app: App, email: str, output: Path | None) -> None:
    """Write everything kabar holds about EMAIL as JSON: subscriptions with consent and
    changes, deliveries, bounces and mails (a data subject's access request). The
    preference centre offers the reader the same file."""
    import json

    from kabar.consent import Consent

    _rows_of(app, email)
    data = json.dumps(Consent(app.store.engine).export(email), ensure_ascii=False, indent=2)
    if output is None:
        click.echo(data)
    else:
        output.write_text(data + "\n", encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@subscribers.command("forget")
@click.argument("email")
@click.option("--dry-run", is_flag=True, help="Say what would be erased; erase nothing.")
@pass_app
def subscribers_forget(app: App, email: str, dry_run: bool) -> None:
    """Erase EMAIL's personal data: every subscription, delivery, mail and recorded change.
    Only a SHA-256 of the address is kept, so a later import does not bring it back; its
    owner can still subscribe again through the form."""
    from kabar.consent import Consent

    rows = _rows_of(app, email)
    if dry_run:
        click.echo(f"would erase {len(rows)} subscription(s) of {rows[0].email}")
        return
    erased = Consent(app.store.engine).forget(email)
    click.echo(f"erased {erased} subscription(s); kept only a hash of the address")


@subscribers.command("add")
@click.argument("email")
@_list_option
@click.option("--name", default="", help="The subscriber's name, as greetings show it.")
@click.option("--locale", default="", help="id or en [default: the list's or the site's].")
@click.option(
    "--status", type=click.Choice(["active", "pending"]), default="active", show_default=True,
    help="Status to add them with (pending: they still have to confirm).",
)  # fmt: skip
@pass_app
def subscribers_add(
    app: App, email: str, list_id: str | None, name: str, locale: str, status: str
) -> None:
    """Add EMAIL to a list (no confirmation mail: the admin vouches for it)."""
    from kabar.addresses import InvalidAddress
    from kabar.consent import consent_record
    from kabar.deliver.send import utcnow
    from kabar.subscribers import Status, Subscribers, SuppressedAddress

    target = _list_id(app, list_id)
    try:
        subscriber, made = Subscribers(app.store.engine).add(
            target, email, name=name, locale=locale, status=cast(Status, status),
            consent=consent_record("admin", now=utcnow(), source="kabar subscribers add"),
        )  # fmt: skip
    except InvalidAddress as exc:
        raise click.BadParameter(f"{email!r}: {exc}", param_hint="EMAIL") from None
    except SuppressedAddress as exc:
        fail(f"{exc} (kabar suppression remove lifts it)", EXIT_PARTIAL)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--locale") from None
    if made:
        click.echo(f"added {subscriber.email} to {target} ({subscriber.status})")
    else:
        click.echo(f"{subscriber.email} is already on {target} ({subscriber.status})")


@subscribers.command("remove")
@click.argument("email")
@_list_option
@click.option(
    "--purge", is_flag=True, help="Erase the subscriber and their delivery history instead."
)
@pass_app
def subscribers_remove(app: App, email: str, list_id: str | None, purge: bool) -> None:
    """Unsubscribe EMAIL from a list (kept, so a re-import cannot add it back)."""
    from kabar.subscribers import Subscribers

    target = _list_id(app, list_id)
    store = Subscribers(app.store.engine)
    subscriber = store.find(target, email.strip())
    if subscriber is None:
        fail(f"{email} is not on list {target}", EXIT_PARTIAL)
    if purge:
        store.purge(subscriber.id)
        click.echo(f"erased {subscriber.email} from {target}")
    else:
        store.set_status(subscriber.id, "unsubscribed")
        click.echo(f"unsubscribed {subscriber.email} from {target}")


@subscribers.command("mails")
@click.argument("email", required=False)
@_list_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def subscribers_mails(app: App, email: str | None, list_id: str | None, as_json: bool) -> None:
    """Show the mails sent to subscribers one at a time (the subscribe form's confirmation
    links), oldest first: when each was queued and sent, and what the mail server said.

    Give EMAIL to see only that address's. A failed send shows state `failed`, the reply
    (code 0: no answer) and the error.
    """
    from kabar.mails import Mails

    if list_id is not None:
        _list_id(app, list_id)
    found = Mails(app.store.engine).iter(email=email, list_id=list_id)
    if as_json:
        for mail in found:
            echo_json(mail.to_dict())
        return
    echo_table(
        ("queued", "list", "email", "kind", "state", "sent", "reply"),
        (
            (
                m.queued.isoformat(timespec="seconds"), m.list_id, m.email, m.kind, m.state,
                m.sent.isoformat(timespec="seconds") if m.sent else "-",
                (m.reply or m.error)[:60],
            )
            for m in found
        ),
    )  # fmt: skip
