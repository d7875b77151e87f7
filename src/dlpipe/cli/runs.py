"""The `dlpipe runs`, `compare` and `ui` commands: the trainings' record, read back.

They find the store as a training does (tracking.uri, else MLFLOW_TRACKING_URI, else
mlflow.db at the project root) and read it without importing MLflow or torch, so that
they start in a fraction of a second; only `runs --stale` (which writes) loads MLflow,
`compare --plot` matplotlib, and `ui` starts MLflow's server in a process of its own.
"""

import argparse
from pathlib import Path

from dlpipe.cli.args import add_command, whole_number
from dlpipe.cli.project import conf_dir, tracking_settings

_OVERRIDES_HELP = "tracking overrides: tracking.uri=<uri>, tracking.experiment=<name>"
# More runs than any store holds; sqlite takes no LIMIT beyond 2^63 - 1.
_MOST_RUNS = 10**9


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add runs, compare and ui to the `dlpipe` command's subcommands."""
    listed = add_command(commands, "runs", runs, "list the experiment's runs: filter, sort, JSON")
    listed.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    listed.add_argument(
        "--filter",
        metavar="EXPR",
        help="e.g. \"metrics.test/acc > 0.98 and params.model.name = 'cnn'\"",
    )
    listed.add_argument("--parent", metavar="RUN", help="only the runs of this sweep")
    listed.add_argument(
        "--sort", metavar="KEY", help="e.g. 'metrics.test/acc DESC' (default: latest first)"
    )
    listed.add_argument(
        "--columns", metavar="KEYS", help="instead of the key columns, e.g. params.model.hidden"
    )
    listed.add_argument(
        "--limit", type=whole_number(1, _MOST_RUNS), default=20, help="runs to list (default 20)"
    )
    listed.add_argument("--json", action="store_true", help="every field of each run, as JSON")
    listed.add_argument(
        "--stale", action="store_true", help="first mark FAILED the RUNNING runs whose process died"
    )
    compared = add_command(commands, "compare", compare, "show runs side by side")
    compared.add_argument("runs", nargs="+", metavar="RUN", help="run ids (and tracking overrides)")
    compared.add_argument("--plot", metavar="FILE.png", help="write their learning curves here")
    shown = add_command(commands, "ui", ui, "start the MLflow UI on the project's store")
    shown.add_argument("overrides", nargs="*", help=_OVERRIDES_HELP)
    shown.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    shown.add_argument(
        "--port", type=whole_number(1, 65535), help="port to listen on (default: a free one)"
    )


def runs(args: argparse.Namespace) -> int:
    """List the experiment's latest runs: id, status, name, start, duration, key params and
    metrics. --filter and --parent pick runs, --sort orders them, --json gives every field.
    With --stale, first mark FAILED the runs left RUNNING by a process that died."""
    from dlpipe.tracking import listing
    from dlpipe.tracking.store import PARENT_TAG, open_store
    from dlpipe.tracking.store.location import masked
    from dlpipe.tracking.store.query import Clause, Key, parse_filter, parse_order

    uri, experiment = tracking_settings(conf_dir(), args.overrides)
    clauses = parse_filter(args.filter or "")
    order = parse_order(args.sort) if args.sort else None
    columns = listing.parse_columns(args.columns) if args.columns else None
    if args.stale:
        failed = listing.fail_stale(uri, experiment)
        print(f"{len(failed)} stale run(s) marked FAILED{': ' if failed else ''}{' '.join(failed)}")
    store = open_store(uri)
    if args.parent:
        store.get(args.parent)  # an unknown id is an error, not an empty list
        clauses.append(Clause(Key("tags", PARENT_TAG), "=", args.parent))
    found = store.search(experiment, clauses, order, args.limit)
    if order:
        listing.check_shown(found, order.key, "sort by")
    for key in columns or []:
        listing.check_shown(found, key, "show")
    if args.json:
        print(listing.as_json(found))
    elif found:
        print(listing.table(found, columns or listing.key_columns(found)))
    else:
        where = f"experiment {experiment!r} of {masked(uri)}"
        print(f"no runs{' match' if clauses else ''} in {where}")
    return 0


def compare(args: argparse.Namespace) -> int:
    """Show runs side by side: the params that differ and every metric. With --plot, also
    write their learning curves (each metric logged per epoch) in one PNG."""
    from dlpipe.tracking import compare as comparison
    from dlpipe.tracking.store import open_store
    from dlpipe.tracking.store.query import QueryError

    run_ids = [arg for arg in args.runs if "=" not in arg]
    if len(run_ids) < 2:
        raise QueryError("compare takes two runs or more: dlpipe compare RUN_A RUN_B [...]")
    uri, _ = tracking_settings(conf_dir(), [arg for arg in args.runs if "=" in arg])
    store = open_store(uri)
    found = [store.get(run_id) for run_id in run_ids]
    print(comparison.table(found))
    if args.plot:
        drawn = comparison.plot(store, found, Path(args.plot))
        print(f"learning curves ({', '.join(drawn)}) written to {args.plot}")
    return 0


def ui(args: argparse.Namespace) -> int:
    """Start the MLflow UI on the project's store and print the address of the experiment's
    runs, with their key params and metrics, and of their charts; Ctrl-C stops it."""
    from dlpipe.tracking.ui import serve

    uri, experiment = tracking_settings(conf_dir(), args.overrides)
    return serve(uri, args.host, args.port, experiment)
