"""`logcaster query`: SQL over the Parquet store with DuckDB (the table is `logs`)."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.errors import InputError


@click.command()
@click.argument("sql")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("logcaster-data/parquet"),
              show_default=True, help="The Parquet sink's directory.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def query(sql: str, data_dir: Path, fmt: str) -> int:
    """Run SQL over the Parquet store; the records are the view `logs`.

    \b
    Examples:
      logcaster query "SELECT hostname, count(*) FROM logs GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
      logcaster query --data-dir /var/lib/logcaster/parquet --format csv "SELECT * FROM logs WHERE severity <= 3"
    """
    import duckdb

    if not any(data_dir.glob("**/*.parquet")):
        raise InputError(f"{data_dir}: no Parquet files (run `logcaster demo` or `logcaster run` first)")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW logs AS SELECT * FROM read_parquet('{data_dir}/**/*.parquet', hive_partitioning = true)")
    try:
        rel = con.sql(sql)
    except duckdb.Error as exc:
        raise click.UsageError(f"query: {str(exc).splitlines()[0]}") from None
    if rel is None:
        return 0
    if fmt == "table":
        rel.show(max_rows=100)
    elif fmt == "csv":
        import csv
        import sys

        w = csv.writer(sys.stdout)
        w.writerow(rel.columns)
        w.writerows(rel.fetchall())
    else:
        import json

        cols = rel.columns
        for row in rel.fetchall():
            click.echo(json.dumps(dict(zip(cols, row)), default=str))
    return 0
