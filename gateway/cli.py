"""The `gateway` command line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from gateway import config as config_mod
from gateway.core import masking

# Locals in a traceback could hold a secret (a database URL, a token): never shown.
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Office hardware gateway.", pretty_exceptions_show_locals=False
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration.")
attendance_app = typer.Typer(no_args_is_help=True, help="Attendance records.")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(attendance_app, name="attendance")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML file (default ./gateway.toml)")]


def _fail(code: int, message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings(path: Path | None) -> config_mod.Settings:
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        _fail(2, f"config {exc.key}: {exc.reason}")
        raise  # unreachable


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per uplink call would drown the rest
    for noisy in ("amqtt", "transitions", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command()
def run(config: ConfigOpt = None) -> None:
    """Run the gateway service until SIGTERM or Ctrl-C."""
    settings = _settings(config)
    admin_token = settings.api.admin_token.get_secret_value()
    if not admin_token:
        _fail(2, "config api.admin_token: must be set for `gateway run` (or GATEWAY_API__ADMIN_TOKEN)")
    if len(admin_token) < config_mod.MIN_ADMIN_TOKEN_CHARS:
        _fail(
            2,
            f"config api.admin_token: too short ({len(admin_token)} characters); `gateway run` needs at least "
            f"{config_mod.MIN_ADMIN_TOKEN_CHARS} (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
    _logging()
    from gateway.app import Gateway, run_loop

    async def main() -> None:
        gateway = Gateway(settings)
        await gateway.start()
        try:
            await gateway.run_until_signal()
        finally:
            await gateway.stop()

    _run_or_explain(run_loop, main)


@app.command()
def demo(
    config: ConfigOpt = None,
    seconds: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    rate: Annotated[float, typer.Option(help="punches per second per simulated terminal")] = 2.0,
) -> None:
    """Run the gateway with an embedded broker and simulated devices."""
    settings = _settings(config)
    _logging()
    from gateway.app import run_loop
    from gateway.demo import run_demo

    _run_or_explain(run_loop, lambda: run_demo(settings, seconds=seconds, rate=rate))


def _run_or_explain(run_loop, main) -> None:
    try:
        run_loop(main())
    except OSError as exc:
        _fail(1, f"{exc.strerror or exc} (is another gateway or broker using the port?)")
    except KeyboardInterrupt:
        pass


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply schema migrations (also done at every start)."""
    settings = _settings(config)
    _open_store(settings)
    typer.echo("database schema is up to date")


def _open_store(settings: config_mod.Settings):  # -> Engine, imported lazily
    """The migrated store, or a clear message (the URL's password masked) and exit 1 or 2."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from gateway.store.db import make_engine, upgrade

    url = settings.database.url.get_secret_value()
    password = urlsplit(url).password if "://" in url else None

    def hidden(text: object) -> str:
        text = masking.mask_url(url).join(str(text).split(url))
        return text.replace(password, masking.MASK) if password else text

    try:
        engine = make_engine(url, settings.database.sqlite_synchronous)
        upgrade(engine)
        return engine
    except (ArgumentError, ImportError) as exc:
        _fail(2, f"config database.url: {hidden(exc)} (in {masking.mask_url(url)})")
    except SQLAlchemyError as exc:
        _fail(1, f"database: {exc.__class__.__name__}: {hidden(getattr(exc, 'orig', exc))}")


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the config and print the effective settings, secrets masked."""
    settings = _settings(config)
    typer.echo(json.dumps(masking.masked(settings), indent=2))
    typer.echo("config ok", err=True)


def _date(value: str, option: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        _fail(2, f"{option}: expected a date YYYY-MM-DD, got {value!r}")
        raise  # unreachable
    if not date(2000, 1, 1) <= day <= date(2199, 12, 31):
        _fail(2, f"{option}: {value} is outside 2000-01-01..2199-12-31")
    return day


@attendance_app.command("report")
def attendance_report(
    date_from: Annotated[str, typer.Option("--from", help="first day, YYYY-MM-DD")],
    date_to: Annotated[str, typer.Option("--to", help="last day, inclusive")],
    format: Annotated[str, typer.Option("--format", help="table | csv | xlsx")] = "table",
    out: Annotated[
        Path | None, typer.Option("--out", help="file to write (default: standard output; xlsx needs it)")
    ] = None,
    person: Annotated[str | None, typer.Option(help="one person only")] = None,
    config: ConfigOpt = None,
) -> None:
    """Daily attendance per person: status, first in, last out, worked minutes, final or provisional."""
    if format not in ("table", "csv", "xlsx"):
        _fail(2, f"--format: expected table, csv or xlsx, got {format!r}")
    start, end = _date(date_from, "--from"), _date(date_to, "--to")
    if end < start:
        _fail(2, "--to: before --from")
    if format == "xlsx" and out is None:
        _fail(2, "--out: an xlsx report needs a file name")
    settings = _settings(config)
    from zoneinfo import ZoneInfo

    from gateway.attendance import report
    from gateway.attendance.store import daily_records, record_dict

    engine = _open_store(settings)
    records, people = daily_records(engine, settings.site.timezone, start, end, person)
    items = [record_dict(r, people, ZoneInfo(settings.site.timezone)) for r in records]
    if format == "xlsx":
        assert out is not None
        report.write_xlsx(items, out)
        typer.echo(f"{len(items)} records written to {out}", err=True)
        return
    text = report.to_csv(items) if format == "csv" else report.to_table(items)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"{len(items)} records written to {out}", err=True)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
