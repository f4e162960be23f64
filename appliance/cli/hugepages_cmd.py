"""`logcaster hugepages`: inspect, reserve and release hugepages per NUMA
node, mount hugetlbfs, and clean files left by crashed runs.

Errors are raised as appliance.errors exceptions; the top-level entry turns
them into one line and an exit code.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click

import hugepages as hp
from hugepages import mount as hmount
from hugepages import sysfs

_ROOTS = "hugepages.roots"


def _roots(ctx: click.Context) -> tuple[str, str]:
    return ctx.meta[_ROOTS]


def _size_kb(text: str) -> int:
    return sysfs.parse_size_kb(text)


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB"


@click.group("hugepages")
@click.option("--sysfs-root", default=sysfs.SYSFS_ROOT, hidden=True, help="sysfs root (tests)")
@click.option("--proc-root", default=hmount.PROC_ROOT, hidden=True, help="procfs root (tests)")
@click.pass_context
def hugepages(ctx: click.Context, sysfs_root: str, proc_root: str) -> None:
    """Hugepages per NUMA node: status, reserve/release, hugetlbfs mounts, stale files.

    \b
    Examples:
      logcaster hugepages status
      logcaster hugepages reserve 512 --total --node 0
    """
    ctx.meta[_ROOTS] = (sysfs_root, proc_root)


def _status_data(sysfs_root: str, proc_root: str) -> dict:
    if not sysfs.page_sizes_kb(sysfs_root):
        raise hp.HugepageError(f"no hugepage support in this kernel ({sysfs_root}/{sysfs.GLOBAL_DIR} is missing)")
    scan = hp.find_stale(proc_root=proc_root)
    return {
        "pools": [asdict(c) for c in hp.read_all_counts(sysfs_root)],
        "mounts": [{"path": m.path, "pagesize_kb": m.pagesize_kb, "source": m.source}
                   for m in hp.find_mounts(proc_root)],
        "stale": [{**asdict(f), "pages": f.pages} for f in scan.stale],
        "held": [asdict(f) for f in scan.held],
        "warnings": list(scan.warnings),
    }


@hugepages.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Pages per node and size, hugetlbfs mounts, stale files.

    \b
    Example:
      logcaster hugepages status --json
    """
    data = _status_data(*_roots(ctx))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    rows = [("NODE", "SIZE", "TOTAL", "FREE", "RESERVED", "SURPLUS")]
    for pool in data["pools"]:
        rows.append(("all" if pool["node"] is None else str(pool["node"]), sysfs.format_size(pool["size_kb"]),
                     str(pool["total"]), str(pool["free"]),
                     "-" if pool["reserved"] is None else str(pool["reserved"]), str(pool["surplus"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    click.echo("")
    click.echo("hugetlbfs mounts:" if data["mounts"] else "hugetlbfs mounts: none")
    for m in data["mounts"]:
        click.echo(f"  {m['path']}  pagesize={sysfs.format_size(m['pagesize_kb'])}")
    click.echo(f"files in use: {len(data['held'])}")
    click.echo("stale files:" if data["stale"] else "stale files: none")
    for f in data["stale"]:
        click.echo(f"  {f['path']}  {f['kind']}  {_mib(f['allocated_bytes'])}  "
                   f"{f['pages']} x {sysfs.format_size(f['page_size_kb'])}")
    for text in data["warnings"]:
        click.echo(f"warning: {text}", err=True)


@hugepages.command()
@click.argument("count", type=int)
@click.option("--node", type=int, default=0, show_default=True, help="NUMA node.")
@click.option("--size", "size", default="2M", show_default=True, help="Page size (2M, 1G).")
@click.option("--total", is_flag=True, help="COUNT is the total wanted on the node, not pages to add.")
@click.option("--strict", is_flag=True, help="If the kernel grants fewer pages, give back those it granted.")
@click.pass_context
def reserve(ctx: click.Context, count: int, node: int, size: str, total: bool, strict: bool) -> None:
    """Reserve COUNT more pages on a node (or, with --total, up to COUNT).

    \b
    Examples:
      logcaster hugepages reserve 256
      logcaster hugepages reserve 2 --size 1G --node 1 --strict
    """
    sysfs_root, _ = _roots(ctx)
    grow = hp.ensure_total if total else hp.reserve
    result = grow(count, node=node, size_kb=_size_kb(size), strict=strict, sysfs_root=sysfs_root)
    click.echo(result.describe())


@hugepages.command()
@click.argument("count", type=int, required=False)
@click.option("--all", "release_all", is_flag=True, help="Release every page of that size on the node.")
@click.option("--node", type=int, default=0, show_default=True, help="NUMA node.")
@click.option("--size", "size", default="2M", show_default=True, help="Page size (2M, 1G).")
@click.pass_context
def release(ctx: click.Context, count: int | None, release_all: bool, node: int, size: str) -> None:
    """Release COUNT pages (or --all) on a node back to the kernel.

    \b
    Examples:
      logcaster hugepages release 128
      logcaster hugepages release --all --size 1G
    """
    if (count is None) == (not release_all):
        raise click.UsageError("give either COUNT or --all")
    sysfs_root, _ = _roots(ctx)
    result = hp.release(None if release_all else count, node=node, size_kb=_size_kb(size), sysfs_root=sysfs_root)
    click.echo(result.describe())


@hugepages.command()
@click.argument("path", required=False)
@click.option("--size", "size", default="2M", show_default=True, help="Page size of the mount (2M, 1G).")
@click.pass_context
def mount(ctx: click.Context, path: str | None, size: str) -> None:
    """Mount hugetlbfs on PATH (default /run/logcaster/hugepages-<size>).

    \b
    Example:
      logcaster hugepages mount /mnt/huge-1G --size 1G
    """
    sysfs_root, proc_root = _roots(ctx)
    size_kb = _size_kb(size)
    target = path or str(hmount.default_mount_path(size_kb))
    already = hp.find_mount(target, proc_root)
    result = hp.mount_hugetlbfs(target, size_kb=size_kb, sysfs_root=sysfs_root, proc_root=proc_root)
    verb = "already mounted" if already is not None else "mounted"
    click.echo(f"{verb}: hugetlbfs ({sysfs.format_size(result.pagesize_kb)} pages) on {result.path}")


@hugepages.command()
@click.argument("path")
@click.pass_context
def unmount(ctx: click.Context, path: str) -> None:
    """Unmount the hugetlbfs on PATH (nothing to do if none is mounted).

    \b
    Example:
      logcaster hugepages unmount /mnt/huge-1G
    """
    _, proc_root = _roots(ctx)
    if hp.unmount_hugetlbfs(path, proc_root=proc_root):
        click.echo(f"unmounted {path}")
    else:
        click.echo(f"no hugetlbfs mounted on {path}: nothing to do")


@hugepages.command()
@click.option("--yes", is_flag=True, help="Remove the stale files (without it they are only listed).")
@click.option("--dir", "dirs", multiple=True, help="Scan this folder instead of every hugetlbfs mount (repeatable).")
@click.pass_context
def clean(ctx: click.Context, yes: bool, dirs: tuple[str, ...]) -> None:
    """List stale DPDK map files and LogCaster ring files; remove them with --yes.

    \b
    Examples:
      logcaster hugepages clean
      logcaster hugepages clean --yes
    """
    _, proc_root = _roots(ctx)
    report = hp.clean_stale(list(dirs) or None, dry_run=not yes, proc_root=proc_root)
    for text in report.warnings:
        click.echo(f"warning: {text}", err=True)
    for f in report.removed:
        click.echo(f"{'removed' if yes else 'stale'}  {f.path}  {f.kind}  {_mib(f.allocated_bytes)}")
    for path, why in report.skipped:
        click.echo(f"kept     {path}  ({why})")
    pages = ", ".join(f"{n} x {sysfs.format_size(kb)}" for kb, n in sorted(report.pages_freed().items()))
    summary = f"{len(report.removed)} file(s), {_mib(report.bytes_freed)}" + (f" ({pages} pages)" if pages else "")
    if yes:
        click.echo(f"freed: {summary}")
    elif report.removed:
        click.echo(f"stale: {summary}; run with --yes to remove them")
    else:
        click.echo("no stale files")
