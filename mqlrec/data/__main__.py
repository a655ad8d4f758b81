"""`python -m mqlrec.data`: dataset statistics, raw Amazon preprocessing, synthetic data, downloads."""

from __future__ import annotations

import argparse
import json
import os
import sys

from mqlrec.data.dataset import DataError


def _stats(args) -> None:
    from mqlrec.data.mqlrec_format import load_dataset

    stats = load_dataset(args.dir).stats()
    if args.json:
        print(json.dumps(stats))
        return
    print(f"dataset       {stats['name']}")
    print(f"users         {stats['users']}")
    print(f"items         {stats['items']}")
    print(f"interactions  {stats['interactions']}")
    print(f"sparsity      {stats['sparsity']:.6f}")
    print(f"avg_length    {stats['avg_length']:.2f}")


def _prepare_amazon(args) -> None:
    from mqlrec.data.amazon import prepare_amazon
    from mqlrec.data.mqlrec_format import write_mqlrec

    name = os.path.basename(os.path.normpath(args.out))
    dataset = prepare_amazon(args.reviews, args.meta, k=args.k, name=name)
    write_mqlrec(dataset, args.out)
    s = dataset.stats()
    print(f"wrote {args.out}: {s['users']} users, {s['items']} items, {s['interactions']} interactions")


def _synthetic(args) -> None:
    from mqlrec.data.mqlrec_format import write_mqlrec
    from mqlrec.data.synthetic import make_synthetic

    dataset = make_synthetic(seed=args.seed, n_items=args.n_items, n_users=args.n_users)
    write_mqlrec(dataset, args.out)
    s = dataset.stats()
    print(f"wrote {args.out}: {s['users']} users, {s['items']} items, {s['interactions']} interactions, "
          f"embeddings {', '.join(f'{m} {t.shape[1]}d' for m, t in dataset.embeddings.items())}")


def _download(args) -> None:
    from mqlrec.data.download import amazon_2018_urls, download

    if (args.dataset is None) == (args.url is None):
        raise DataError("give exactly one of --dataset NAME or --url URL")
    if args.url is not None:
        targets = {"file": (args.url, os.path.join(args.out, os.path.basename(args.url)) if os.path.isdir(args.out)
                            else args.out)}
    else:
        if args.sha256:
            raise DataError("--sha256 applies to a single --url download")
        urls = amazon_2018_urls(args.dataset)
        targets = {kind: (url, os.path.join(args.out, os.path.basename(url))) for kind, url in urls.items()}
    for url, dest in targets.values():
        digest = download(url, dest, sha256=args.sha256, timeout=args.timeout)
        print(f"{dest}  sha256 {digest}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mqlrec.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stats", help="users / items / interactions / sparsity / average length of a dataset folder")
    p.add_argument("dir", help="dataset folder (MQL4GRec or LC-Rec format; X = folder name)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(run=_stats)

    p = sub.add_parser("prepare-amazon", help="raw Amazon 2018 reviews + metadata -> MQL4GRec folder")
    p.add_argument("--reviews", required=True, help="5-core reviews, JSON lines (e.g. Musical_Instruments_5.json.gz)")
    p.add_argument("--meta", required=True, help="item metadata, JSON lines (e.g. meta_Musical_Instruments.json.gz)")
    p.add_argument("--out", required=True, help="output folder; its name X names the files X.inter.json, ...")
    p.add_argument("--k", type=int, default=5, help="iterative k-core threshold for users and items (default 5)")
    p.set_defaults(run=_prepare_amazon)

    p = sub.add_parser("synthetic", help="write the synthetic multimodal dataset (with X.emb-text/image.npy)")
    p.add_argument("--out", required=True, help="output folder; its name X names the files")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same files")
    p.add_argument("--n-items", type=int, default=500, help="number of items (default 500)")
    p.add_argument("--n-users", type=int, default=1500, help="number of users (default 1500)")
    p.set_defaults(run=_synthetic)

    p = sub.add_parser("download", help="download public files with sha256 check (resumable)")
    p.add_argument("--dataset", help="Amazon 2018 dataset whose reviews + metadata to fetch: Instruments, Arts, Games")
    p.add_argument("--url", help="any single file URL instead of --dataset")
    p.add_argument("--out", required=True, help="target folder (or target file for --url)")
    p.add_argument("--sha256", help="expected sha256 of the --url file; a mismatch is an error")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    p.set_defaults(run=_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:  # bad option values (e.g. synthetic sizes), unwritable --out
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
