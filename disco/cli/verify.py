"""`disco verify DATA`: audio and VGGish files against md5 lists."""

from __future__ import annotations

import argparse
import json

# `disco verify --help` ends with these.
EXAMPLES = (
    "disco verify data/demo/openmic-2018",
    "disco verify openmic-2018-v1.0.0.tgz --json",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check a dataset's audio/VGGish files against md5 lists",
        description="Hash every listed file and report missing and corrupt ones. Lists default to "
        "checksums-audio.csv / checksums-vggish.csv in the dataset root. Exit 0 all good, 1 missing "
        "or corrupt files, 2 unusable input.",
    )
    p.add_argument("data", help="openmic-2018/ directory, release .tgz, or gs://bucket/prefix")
    p.add_argument(
        "--audio-md5",
        help="CSV of sample_key,md5 for audio/*.ogg (default: checksums-audio.csv in the dataset root)",
    )
    p.add_argument(
        "--vggish-md5",
        help="CSV of sample_key,md5 for vggish/*.json (default: checksums-vggish.csv in the dataset root)",
    )
    p.add_argument(
        "--present-only",
        action="store_true",
        help="check only the files present (verifying an excerpt); absent files are not 'missing'",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from disco.data.openmic import open_dataset
    from disco.data.verify import verify_dataset

    ds = open_dataset(args.data)
    reports = verify_dataset(
        ds, audio_md5=args.audio_md5, vggish_md5=args.vggish_md5, present_only=args.present_only
    )
    passed = all(r.passed for r in reports.values())
    if args.json:
        print(
            json.dumps(
                {"dataset": ds.uri, "passed": passed, **{k: r.as_dict() for k, r in reports.items()}},
                indent=2,
            )
        )
        return 0 if passed else 1
    print(f"{'kind':<8} {'listed':>7} {'checked':>7} {'ok':>7} {'missing':>7} {'corrupt':>7} {'unlisted':>8}")
    for kind, r in reports.items():
        print(
            f"{kind:<8} {r.listed:>7} {r.checked:>7} {r.ok:>7} {len(r.missing):>7} {len(r.corrupt):>7} {len(r.unlisted):>8}"
        )
    for kind, r in reports.items():
        for c in r.corrupt[:20]:
            print(
                f"corrupt {kind}: {c['path']} ({c.get('reason') or 'md5 ' + c['actual'] + ' != ' + c['expected']})"
            )
        for key in r.missing[:20]:
            print(f"missing {kind}: {key}")
        if len(r.missing) > 20:
            print(f"... and {len(r.missing) - 20} more missing {kind} files")
    print("OK" if passed else "FAILED")
    return 0 if passed else 1
