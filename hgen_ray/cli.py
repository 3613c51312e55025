"""The ``hgen-ray`` command.

    hgen-ray evaluate --config configs/quickstart.yaml [--candidate cand.yaml] [--out DIR] [--split test]
    hgen-ray evaluate --config configs/h_yolo.yaml      (or configs/h_faster_rcnn.yaml)
    hgen-ray search --config configs/quickstart.yaml --out runs/q1 [--address ADDR]
    hgen-ray search --resume runs/q1
    hgen-ray bench --config configs/bench-small.yaml --out runs/bench-small [--seeds 5]
    hgen-ray export runs/q1/best --format onnx
    hgen-ray show-data --config configs/quickstart.yaml --out grid.png
    hgen-ray serve runs/q1/best [--port 8000] [--host 127.0.0.1] [--out runs/q1/serve]
    hgen-ray calibrate-people runs/q1/serve/answers.csv --out people.yaml

Bad input (config, candidate, dataset) prints one line naming the problem and
exits with code 2; nothing is written before the input has been validated.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from hgen_ray.atomic_write import UNWRITABLE_ERRNOS, write_text_atomic
from hgen_ray.config import MAX_BENCH_SEEDS, ConfigError, as_dict, json_text, load_candidate, load_config

__all__ = ["main", "run"]

EXIT_BAD_INPUT = 2
EXIT_CANNOT_WRITE = 1  # the machine's fault, not the input's
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
log = logging.getLogger("hgen_ray")


def _evaluate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    candidate = load_candidate(args.candidate) if args.candidate else config.candidate
    from hgen_ray.architectures import architecture_for
    from hgen_ray.compress import validate_candidate
    from hgen_ray.report import format_measures_table
    from hgen_ray.trial import evaluate_candidate

    layers = architecture_for(config).declared_layers(config)  # the model settings are checked before any work
    if layers is not None:  # else the candidate is checked against the layers found on the network
        validate_candidate(candidate, layers)
    from hgen_ray.search.cluster import init_ray

    init_ray(None)  # the people are Ray actors
    evaluation = evaluate_candidate(config, candidate, split=args.split)
    out = Path(args.out)
    write_text_atomic(out / "metrics.json", json_text(evaluation.metrics, indent=2, sort_keys=True))
    write_text_atomic(out / "candidate.yaml", yaml.safe_dump(as_dict(evaluation.candidate), sort_keys=False))
    print(format_measures_table(evaluation.metrics))
    print(f"\nwrote {out / 'metrics.json'}")
    return 0


def _search(args: argparse.Namespace) -> int:
    if not args.resume and not (args.config and args.out):
        raise ConfigError("search: give --config and --out for a new search, or --resume DIR")
    from hgen_ray.bench.system import git_commit
    from hgen_ray.report import summary_table, write_search_report
    from hgen_ray.architectures import architecture_for
    from hgen_ray.search import run_search
    from hgen_ray.search.output_dir import SEARCH_CONFIG_FILE
    from hgen_ray.search.setup import gate_summary

    config = None if args.resume else load_config(args.config)
    if args.storage_path is not None:
        if config is None:
            raise ConfigError("--storage-path: a resume keeps the storage its search began with (in DIR/search.yaml); "
                              "allowed: only with --config for a new search")
        config = dataclasses.replace(config, search=dataclasses.replace(config.search, storage_path=args.storage_path))
    if config is not None:
        architecture_for(config)  # the model settings are checked before any work
    commit = git_commit()
    run = run_search(config, Path(args.resume or args.out), resume=bool(args.resume), address=args.address,
                     trust=args.trust)
    config = load_config(run.out / SEARCH_CONFIG_FILE)  # on resume, the search's own config
    header = {"algorithm": config.search.algorithm, "command": " ".join(["hgen-ray", *sys.argv[1:]]),
              "elapsed_s": run.elapsed_s, "constraints": as_dict(config.constraints), "commit": commit,
              "gate": gate_summary(config)}
    best = write_search_report(run.out, run.rows, run.references, header, run.gate_curves)
    print("test split: the validation-best H-DNN and the references")
    print(summary_table(run.rows, run.references.get("test", {})))
    print(f"\nbest H-DNN: {best}\nreport: {run.out / 'report.md'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from hgen_ray.bench import load_bench, run_bench

    bench, experiments = load_bench(args.config)
    if args.seeds is not None:
        if not 1 <= args.seeds <= MAX_BENCH_SEEDS:
            raise ConfigError(f"--seeds: {args.seeds} is out of range; allowed: an integer from 1 to {MAX_BENCH_SEEDS}")
        bench = dataclasses.replace(bench, seeds=args.seeds)
    report = run_bench(bench, experiments, Path(args.out).resolve())
    print(report.read_text())
    print(f"report: {report}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from hgen_ray.hdnn import export_onnx

    written = export_onnx(args.path, args.out)
    print(f"wrote {written} and {written.parent / 'gate.json'}")
    return 0


def _show_data(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from hgen_ray.architectures import architecture_for

    architecture = architecture_for(config)
    print(f"wrote {architecture.draw_preview(config, architecture.load_data(config, 'validation'), Path(args.out))}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from hgen_ray.serve.launch import serve_hdnn

    overrides = {"host": args.host, "port": args.port, "people": args.people,
                 "people_timeout_s": args.people_timeout_s, "calibration_rate": args.calibration_rate,
                 "max_batch_size": args.max_batch_size}
    return serve_hdnn(Path(args.path), Path(args.out) if args.out else None, overrides, args.address)


def _calibrate_people(args: argparse.Namespace) -> int:
    from hgen_ray.serve.calibrate_people import calibrate_people

    print(calibrate_people(Path(args.answers), Path(args.out)))
    print(f"\nwrote {args.out}: include its human_pool block in a search config")
    return 0


def _add_serve(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="serve a saved H-DNN on Ray Serve, with a web page for real people")
    serve.add_argument("path", help="a saved H-DNN folder, e.g. runs/q1/best")
    serve.add_argument("--out", help="serve folder for tokens, the queue and answers.csv (default: PATH/../serve)")
    serve.add_argument("--host", help="address to bind (default serve.host: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, help="port (default serve.port: 8000)")
    serve.add_argument("--people", type=int, help="person tokens to create (default serve.people: 3)")
    serve.add_argument("--people-timeout-s", type=float,
                       help="seconds a deferred sample waits for people before the network answers (default 60)")
    serve.add_argument("--calibration-rate", type=float,
                       help="share of looks that are known test images, to measure people (default 0.1)")
    serve.add_argument("--max-batch-size", type=int, help="serve.batch's largest batch; 1 = no batching (default 32)")
    serve.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local node)")
    serve.set_defaults(run=_serve)
    calibrate = commands.add_parser("calibrate-people", help="fit people's accuracy and answer times from answers.csv")
    calibrate.add_argument("answers", help="answers.csv of hgen-ray serve")
    calibrate.add_argument("--out", default="people.yaml", help="YAML to write (default: people.yaml)")
    calibrate.set_defaults(run=_calibrate_people)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hgen-ray", description="Generate human-in-the-loop DNNs on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="compress, fine-tune and measure one H-DNN candidate")
    evaluate.add_argument("--config", required=True, help="experiment YAML, e.g. configs/quickstart.yaml")
    evaluate.add_argument("--candidate", help="candidate YAML (layers, human); default: the config's candidate")
    evaluate.add_argument("--out", default="runs/evaluate", help="output directory (default: runs/evaluate)")
    evaluate.add_argument("--split", choices=["validation", "test"], default="validation",
                          help="challenge images measured on (default: validation; test is for a final figure)")
    evaluate.set_defaults(run=_evaluate)
    search = commands.add_parser("search", help="search compression x human participation with Ray Tune")
    search.add_argument("--config", help="experiment YAML, e.g. configs/quickstart.yaml")
    search.add_argument("--out", help="output directory for trials.csv, pareto.json, best/, report.md")
    search.add_argument("--resume", metavar="DIR", help="continue the interrupted search in DIR")
    search.add_argument("--trust", action="store_true",
                        help="with --resume: resume even if DIR or its Tune state belongs to another user or is group- "
                             "or world-writable. Risky: a resume unpickles that state, and a pickle can run any code")
    search.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local node)")
    search.add_argument("--storage-path", help="where Tune keeps its state, overriding search.storage_path: on a "
                        "multi-node cluster an absolute folder every node mounts, or s3://bucket/prefix")
    search.set_defaults(run=_search)
    bench = commands.add_parser("bench", help="every strategy with the same budget, on each architecture, plus "
                                "system figures")
    bench.add_argument("--config", required=True, help="bench YAML, e.g. configs/bench-small.yaml")
    bench.add_argument("--out", required=True, help="output directory for bench.md, plots and every search")
    bench.add_argument("--seeds", type=int, help="seeds per experiment, overriding the bench file's `seeds`")
    bench.set_defaults(run=_bench)
    export = commands.add_parser("export", help="export a saved H-DNN (e.g. DIR/best) to ONNX plus gate.json")
    export.add_argument("path", help="a saved H-DNN folder")
    export.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    export.add_argument("--out", help="output folder (default: the H-DNN folder)")
    export.set_defaults(run=_export)
    show = commands.add_parser("show-data", help="draw the challenge categories (with boxes, for the detectors)")
    show.add_argument("--config", default="configs/quickstart.yaml", help="experiment YAML (data section)")
    show.add_argument("--out", default="runs/challenges.png", help="PNG to write")
    show.set_defaults(run=_show_data)
    _add_serve(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[hgen-ray %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    from hgen_ray.data.fashion_mnist import DatasetError
    from hgen_ray.hdnn import HDNNError

    try:
        return int(args.run(args))
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM; a search says how to resume
        print(f"hgen-ray: {interrupt or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, DatasetError, HDNNError) as error:
        print(f"hgen-ray: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        if error.errno not in UNWRITABLE_ERRNOS:
            raise
        # Every result file is replaced atomically, so what was written before stays whole.
        where = error.filename or getattr(args, "out", None) or getattr(args, "resume", None) or "the output"
        print(f"hgen-ray: error: cannot write {where}: {error.strerror}; files written "
              "before are intact (a search continues with --resume once there is room)", file=sys.stderr)
        return EXIT_CANNOT_WRITE


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
