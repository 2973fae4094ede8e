"""``fairvlm data``: import public formats, export, inspect and synthesise datasets."""

from __future__ import annotations

import argparse
import inspect
import json

#: Formats of ``fairvlm data import`` (the keys of fairvlm.data.readers.READERS; a test
#: keeps them equal, this copy keeps ``fairvlm --help`` free of heavy imports).
FORMATS = (
    "jsonl",
    "llava",
    "ham10000",
    "fitzpatrick17k",
    "mimic_cxr",
    "social_counterfactuals",
    "fairface",
)
EXPORT_FORMATS = ("jsonl", "llava")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands import / export / inspect / synth."""
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    imp = sub.add_parser("import", help="read a public dataset format into a dataset folder")
    imp.add_argument("format", choices=FORMATS, help="the source format")
    imp.add_argument("src", help="the dataset's files as distributed (folder or file)")
    imp.add_argument("out", help="the dataset folder to write (replaced atomically)")
    imp.add_argument(
        "--skip-bad", action="store_true", help="skip and count malformed rows instead of failing"
    )
    imp.add_argument(
        "--allow-outside-paths",
        action="store_true",
        help="accept image paths in the source files that leave the source folder",
    )
    imp.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a reader option, e.g. split=test, group_skin_types=true (repeatable)",
    )
    exp = sub.add_parser("export", help="write a dataset folder as JSONL or LLaVA JSON + images")
    exp.add_argument("format", choices=EXPORT_FORMATS)
    exp.add_argument("data", help="the dataset folder")
    exp.add_argument("out", help="the output folder (data.jsonl / llava.json + images)")
    exp.add_argument("--split", action="append", help="only these splits (repeatable)")
    ins = sub.add_parser("inspect", help="sizes, attribute distributions, counterfactual sets")
    ins.add_argument("data", help="the dataset folder")
    ins.add_argument("--json", action="store_true", help="print the summary as JSON")
    syn = sub.add_parser("synth", help="generate an embedded benchmark (clinical | social)")
    syn.add_argument("bench", help="clinical or social")
    syn.add_argument("out", help="the dataset folder to write")
    syn.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a generator config field (repeatable)",
    )


def reader_options(reader, pairs: list[str]) -> dict:
    """``key=value`` strings -> keyword arguments typed like the reader's defaults."""
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.errors import ConfigError, bad_value

    params = {
        name: p
        for name, p in inspect.signature(reader).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name != "skip_bad"
    }
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in params:
            raise bad_value("--option", pair, f"use KEY=VALUE with KEY in {sorted(params)}")
        default = params[key].default
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"--option {key}={value!r} is not valid: use true or false")
            options[key] = value.lower() in ("true", "1", "yes")
        elif isinstance(default, int):
            try:
                options[key] = int(value)
            except ValueError:
                raise ConfigError(
                    f"--option {key}={value!r} is not valid: use an integer"
                ) from None
        else:
            options[key] = value
    return options


def _import(args: argparse.Namespace) -> int:
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.data.readers import get_reader, import_dataset
    from fairvlm.data.storage import dataset_metadata
    from fairvlm.errors import bad_value

    reader = get_reader(args.format)
    options = reader_options(reader, args.option)
    if args.allow_outside_paths:
        if "allow_outside_paths" not in inspect.signature(reader).parameters:
            raise bad_value(
                "--allow-outside-paths", True, f"{args.format} finds its images itself: drop it"
            )
        options["allow_outside_paths"] = True
    result = import_dataset(args.format, args.src, args.out, skip_bad=args.skip_bad, **options)
    sizes = dataset_metadata(args.out)["splits"]
    skipped = result.metadata.get("skipped", {})
    print(f"imported {sum(sizes.values())} samples {sizes} from {args.src} to {args.out}")
    if skipped.get("count"):
        print(f"skipped {skipped['count']} bad rows: {skipped.get('by_reason')}")
    return 0


def _export(args: argparse.Namespace) -> int:
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.data.jsonl import write_jsonl
    from fairvlm.data.llava_json import write_llava_json
    from fairvlm.data.storage import load_dataset, samples_from_dataset
    from fairvlm.errors import bad_value

    ds = load_dataset(args.data)
    splits = args.split or list(ds)
    for split in splits:
        if split not in ds:
            raise bad_value("--split", split, f"choose from {sorted(ds)}")
    samples = {split: samples_from_dataset(ds[split]) for split in splits}
    writer = write_jsonl if args.format == "jsonl" else write_llava_json
    writer(samples, args.out)
    print(f"exported {sum(len(s) for s in samples.values())} samples to {args.out}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.data.summary import format_summary, summarize_dataset

    summary = summarize_dataset(args.data)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _synth(args: argparse.Namespace) -> int:
    # start-up: command modules import only the standard library (fast `fairvlm --help`)
    from fairvlm.synth import synthesize

    out = synthesize(args.bench, args.out, list(args.overrides))
    print(f"wrote the {args.bench} benchmark to {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the sub-command."""
    handlers = {"import": _import, "export": _export, "inspect": _inspect, "synth": _synth}
    return handlers[args.data_command](args)
