r"""``chase data list`` and ``chase data path NAME``: the GPU profiles and carbon traces that come with the package.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="chase")
    >>> _ = add_parser(parser.add_subparsers(dest="command"))
    >>> run(parser.parse_args(["data", "path", "a40"]))  # doctest: +ELLIPSIS
    /.../chase_integrations/data/gpu/summary_power_a40.csv
    0
"""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``data`` on an argparse ``subparsers`` object and return its parser."""
    parser = subparsers.add_parser(
        "data",
        help="embedded GPU profiles and carbon traces, with source and licence",
        description="The real data that comes with the package. Each short name works wherever a file does "
        "(--trace, --gpu-profile; trace=, gpu_profile= in Python). Licences and citations: the package's "
        "data/NOTICE.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list the embedded datasets")
    listing.add_argument("--kind", choices=["gpu_profile", "trace"], default=None, help="only this kind")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    where = actions.add_parser("path", help="print the file behind a short name")
    where.add_argument("name", help="a short name from `chase data list`")
    parser.set_defaults(func=run, run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """List the datasets or print one's path; return the exit code."""
    from chase_integrations.datasets import DATA_DIR, get_dataset, list_datasets

    if args.action == "path":
        print(get_dataset(args.name).path)
        return 0
    datasets = list_datasets(args.kind)
    if args.json:
        rows = [{"name": d.name, "kind": d.kind, "path": str(d.path), "description": d.description,
                 "source": d.source, "licence": d.licence, "citation": d.citation} for d in datasets]
        print(json.dumps({"datasets": rows}))
        return 0
    for kind, title in (("gpu_profile", "GPU profiles (--gpu-profile NAME; Zeus trace format)"),
                        ("trace", "Carbon-intensity traces (--trace NAME; hourly, gCO2/kWh, UTC)")):
        part = [d for d in datasets if d.kind == kind]
        if not part:
            continue
        print(title)
        width = max(len(d.name) for d in part)
        for d in part:
            print(f"  {d.name:<{width}}  {d.description}")
            print(f"  {'':<{width}}  source: {d.source}; licence: {d.licence}")
        print()
    if args.kind != "gpu_profile":
        print("Your own trace: --trace PATH reads Electricity Maps exports, EIA-930 (SustainDC), NESO and WattTime "
              "MOER CSVs (chase_integrations.carbon.formats), or any CSV with a time and a gCO2eq/kWh column.")
    print(f"Files in {DATA_DIR}; licences and citations in {DATA_DIR / 'NOTICE'}.")
    return 0
