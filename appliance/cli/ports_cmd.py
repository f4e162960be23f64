"""`logcaster ports`: list network PCI devices and bind/unbind them to DPDK
drivers, like dpdk-devbind.py, refusing interfaces in use.

Errors are raised as appliance.errors exceptions; the top-level entry turns
them into one line and an exit code.
"""

from __future__ import annotations

import json

import click

from appliance import ports as pt

_ROOTS = "ports.roots"


def _roots(ctx: click.Context) -> dict:
    return ctx.meta[_ROOTS]


@click.group("ports")
@click.option("--sysfs-root", default=pt.SYSFS_ROOT, hidden=True, help="sysfs root (tests)")
@click.option("--proc-root", default=pt.PROC_ROOT, hidden=True, help="procfs root (tests)")
@click.pass_context
def ports(ctx: click.Context, sysfs_root: str, proc_root: str) -> None:
    """Network PCI devices: list, bind to a DPDK driver, give back, unbind.

    \b
    Examples:
      logcaster ports list
      logcaster ports bind 0000:03:00.0 --driver vfio-pci
    """
    ctx.meta[_ROOTS] = {"sysfs_root": sysfs_root, "proc_root": proc_root}


@ports.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Network devices, their driver, interfaces, NUMA node and state.

    \b
    Example:
      logcaster ports list --json
    """
    roots = _roots(ctx)
    found = pt.list_ports(**roots)
    loaded = pt.loaded_dpdk_drivers(roots["sysfs_root"])
    if as_json:
        click.echo(json.dumps({"ports": [p.as_dict() for p in found], "dpdk_drivers_loaded": list(loaded)}, indent=2))
        return
    rows = [("PCI", "ID", "DRIVER", "INTERFACE", "NODE", "STATE")]
    for p in found:
        state = ("default route, " if p.default_route else "") + ("up" if p.up else "down")
        rows.append((p.pci, f"{p.vendor or '?'}:{p.device or '?'}", p.driver or "-",
                     ",".join(p.interfaces) or "-", "-" if p.numa_node is None else str(p.numa_node),
                     "dpdk" if p.dpdk else state if p.interfaces else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if not found:
        click.echo("no network PCI devices")
    missing = [d for d in pt.DPDK_DRIVERS if d not in loaded]
    click.echo(f"DPDK drivers loaded: {', '.join(loaded) or 'none'}"
               + (f" (not loaded: {', '.join(missing)}; e.g. `modprobe vfio-pci`)" if not loaded else ""))


@ports.command()
@click.argument("pci")
@click.option("--driver", required=True, help="vfio-pci, uio_pci_generic, igb_uio, or a kernel driver to give it back.")
@click.option("--force", is_flag=True, help="Also take a device whose interface is up or has routes (never the "
                                            "default route).")
@click.option("--group", help="Let this group (the service's: logcaster) use the device once bound to a DPDK driver: "
                              "/dev/uioN and its sysfs config/resources, or /dev/vfio/N.")
@click.pass_context
def bind(ctx: click.Context, pci: str, driver: str, force: bool, group: str | None) -> None:
    """Bind the device at PCI to DRIVER.

    \b
    Examples:
      logcaster ports bind 0000:03:00.0 --driver uio_pci_generic --group logcaster
      logcaster ports bind 0000:03:00.0 --driver virtio-pci     # give it back to the kernel
    """
    click.echo(pt.bind(pci, driver, force=force, group=group, **_roots(ctx)))


@ports.command()
@click.argument("pci")
@click.option("--force", is_flag=True, help="Also unbind a device whose interface is up (never the default route).")
@click.pass_context
def unbind(ctx: click.Context, pci: str, force: bool) -> None:
    """Detach the device at PCI from its driver.

    \b
    Example:
      logcaster ports unbind 0000:03:00.0
    """
    click.echo(pt.unbind(pci, force=force, **_roots(ctx)))
