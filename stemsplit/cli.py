"""The ``stemsplit`` command: parses arguments, calls the library, reports. No logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import ClippingWarning, DataError, OptionError, StemsplitError, StemsplitWarning

EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, Command] = {}


def _command(name: str) -> Callable[[Command], Command]:
    """Register a subcommand handler (explicit registry, no string-built lookups)."""

    def deco(fn: Command) -> Command:
        _COMMANDS[name] = fn
        return fn

    return deco


def _targets_arg(text: str) -> list[str]:
    from .targets import parse_target_list

    names = parse_target_list(text)
    if not names:
        raise argparse.ArgumentTypeError("give at least one target, e.g. vocals,drums")
    return names


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {v}")
    return v


def _probability(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {v}")
    return v


def _shares_arg(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _progress_bar(desc: str, quiet: bool, loading: bool = False):
    """A tqdm bar advanced by the library's ``progress(done, total)`` callbacks (sized by them: nothing is read
    twice); with ``loading`` its label says "loading models" until the first block is done (the models compile
    on the first block)."""
    from tqdm import tqdm

    bar = tqdm(total=1.0, desc=f"{desc} (loading models)" if loading else desc, disable=quiet, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
    state = {"loading": loading}

    def update(done: int, total: int) -> None:
        if state["loading"]:
            state["loading"] = False
            bar.set_description_str(desc, refresh=False)
        bar.n = done / total if total else 1.0
        bar.refresh()

    return bar, update


def _status(text: str, quiet: bool):
    """A one-line status shown on stderr until closed (tqdm clears it)."""
    from tqdm import tqdm

    return tqdm(total=0, desc=text, bar_format="{desc} ...", disable=quiet, leave=False)


def _mask_option(p: argparse.ArgumentParser) -> None:
    from .masks import MASK_MODES

    p.add_argument("--mask", default="binary", metavar="{" + ",".join(MASK_MODES) + "}",
                   help="binary masks under the dominance rule (default), soft ratio masks, or soft masks refined by "
                        "a multichannel Wiener filter (wiener: offline only, slower)")


def _add_stem_options(q: argparse.ArgumentParser) -> None:
    """The output and separation options that `separate` and `batch` share."""
    from .audio import FORMATS

    q.add_argument("-o", "--out", default="separated", metavar="OUTDIR", help="output folder (default: separated)")
    q.add_argument("-t", "--targets", type=_targets_arg, default=["vocals"],
                   help="comma-separated targets, e.g. vocals,drums,bass,other (default: vocals)")
    q.add_argument("-f", "--format", default="wav", metavar="{" + ",".join(sorted(FORMATS)) + "}",
                   help="output format (default: wav)")
    _mask_option(q)
    q.add_argument("--no-residual", action="store_true", help="do not write the residual/accompaniment stem")
    q.add_argument("--gate-vocals", action="store_true",
                   help="silence the vocals stem where the vocal activity detector hears no voice")


def _add_encoding_options(p: argparse.ArgumentParser) -> None:
    """--int24 / --float32 / --clip: how stems are stored (default 16-bit PCM, clamped at full scale)."""
    from .audio import CLIP_MODES

    g = p.add_mutually_exclusive_group()
    g.add_argument("--int24", dest="sample_format", action="store_const", const="int24",
                   help="24-bit PCM instead of 16-bit (wav, flac)")
    g.add_argument("--float32", dest="sample_format", action="store_const", const="float32",
                   help="32-bit float WAV: exact stems, 2x the size of 16-bit")
    p.add_argument("--clip", choices=CLIP_MODES, default="clamp",
                   help="samples beyond full scale: clamp them to it with a warning giving the peak (default), "
                        "or none: keep them (needs --float32)")


@_command("separate")
def _separate(args: argparse.Namespace) -> int:
    from . import audio as audio_io
    from .separate import Separator

    enc = audio_io.Encoding(args.format, args.sample_format, args.clip)  # bad combinations fail before any work
    audio_io.check_output_dir(args.out)
    with _status(f"loading models ({', '.join(args.targets)})", args.quiet):
        sep = Separator(args.targets, residual=not args.no_residual, mask=args.mask, targets_dir=args.targets_dir,
                        checkpoint_dirs=args.checkpoint_dir or (), gate_vocals=args.gate_vocals)
    failures, first = 0, True
    for path in args.inputs:
        bar, update = _progress_bar(os.path.basename(path), args.quiet, loading=first)
        try:
            written = sep.separate_file(path, args.out, fmt=enc, progress=update)
            first = False
        except StemsplitError as e:
            bar.close()
            print(f"stemsplit: error: {e}", file=sys.stderr)
            failures += 1
            continue
        bar.close()
        if not args.quiet:
            folder = next(iter(written.values())).parent
            shares = written.shares()
            print(f"{path} -> {folder}/: " + ", ".join(f"{p.name} {100 * shares[k]:.0f}%" for k, p in written.items())
                  + " of the energy")
    return EXIT_USAGE if failures else 0


@_command("batch")
def _batch(args: argparse.Namespace) -> int:
    from .batch import manifest_path, separate_many

    records = separate_many(args.inputs, args.out, targets=args.targets, mask=args.mask,
                            residual=not args.no_residual, gate_vocals=args.gate_vocals, fmt=args.format,
                            targets_dir=args.targets_dir, checkpoint_dirs=args.checkpoint_dir or (),
                            workers=args.workers, scheduler=args.scheduler, manifest=args.manifest,
                            force=args.force, progress=not args.quiet)
    count = {s: sum(r["status"] == s for r in records) for s in ("done", "skipped", "failed")}
    for r in records:
        if r["status"] == "failed":
            msg = r["error"] if r["input"] in r["error"] else f"{r['input']}: {r['error']}"
            print(f"stemsplit: failed: {msg}", file=sys.stderr)
    if not args.quiet:
        seconds = sum(r["audio_seconds"] or 0.0 for r in records if r["status"] == "done")
        print(f"{len(records)} files: {count['done']} separated ({seconds:.1f} s of audio), {count['skipped']} "
              f"skipped (already done), {count['failed']} failed -> {args.out}/ "
              f"(manifest: {manifest_path(args.out, args.manifest)})")
    return 1 if count["failed"] else 0  # 1: some files failed (2 stays for bad options and inputs)


@_command("targets")
def _targets(args: argparse.Namespace) -> int:
    from . import list_targets

    rows = list_targets(args.targets_dir)
    if not rows:
        print("no targets found")
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        state = f"checkpoint: {r['checkpoint']}" if r["checkpoint"] else "no checkpoint (train one: stemsplit train)"
        print(f"{r['name']:<{width}}  {r['task']:<8}  {r['description']}\n{'':<{width}}  {state}")
    return 0


@_command("synth")
def _synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data.synth import SynthConfig, render_dataset, require_tools

    config = SynthConfig(seconds=args.seconds, real_data_root=args.real_data) if args.real_data else \
        SynthConfig(seconds=args.seconds)
    require_tools(config)  # before the bar: missing packages are one line naming them
    with tqdm(total=args.tracks, desc="rendering", unit="song", disable=args.quiet) as bar:
        folders = render_dataset(args.out, tracks=args.tracks, seconds=args.seconds, seed=args.seed,
                                 config=config, workers=args.workers,
                                 progress=lambda done, total: bar.update(done - bar.n))
    if not args.quiet:
        print(f"wrote {len(folders)} tracks to {args.out}/(train|test)/")
    return 0


def _refuse_shipped(path: str, overwrite: bool) -> None:
    """Refuse to write over a checkpoint shipped with stemsplit unless --overwrite-shipped says so."""
    from .targets import is_shipped_checkpoint

    if is_shipped_checkpoint(path) and not overwrite:
        raise OptionError(f"{path} is inside the checkpoints shipped with stemsplit; writing it would replace a "
                          "shipped model. Choose another path, or pass --overwrite-shipped if that is the aim.")


def _track_names(text: str | None, flag: str = "--tracks") -> list[str] | None:
    """Track names from comma-separated ``text``, or from ``@FILE`` with one name per line (names may hold
    commas); None when none are given."""
    if not text:
        return None
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as e:
            raise OptionError(f"{flag} {text}: cannot read the list of track names ({e.__class__.__name__})") from None
        names = [n for n in names if n]
        if not names:
            raise OptionError(f"{flag} {text}: the file names no track")
        return names
    from .targets import parse_target_list

    return parse_target_list(text) or None


@_command("train")
def _train(args: argparse.Namespace) -> int:
    from .data.dataset import AugmentConfig
    from .targets import get_target
    from .train import TrainConfig, check_init, plot_metrics, train

    if args.plot:
        print(plot_metrics(args.plot))
        return 0
    if not args.target or not args.musdb_root:
        raise OptionError("stemsplit train needs --target NAME and --musdb-root ROOT (or --plot RUN).")
    if args.coordinator:
        import jax

        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    spec = get_target(args.target, args.targets_dir)
    if args.init:
        check_init(spec, args.init)  # a wrong or corrupt checkpoint fails here, before the data is read
    loss = args.loss or ("bce" if spec.task == "activity" else "wbce")
    cfg = TrainConfig(steps=args.steps, batch=args.batch, frames=args.frames, lr=args.lr, loss=loss,
                      weight_decay=args.weight_decay,
                      ema=args.ema, seed=args.seed, val_every=args.val_every, val_seconds=args.val_seconds,
                      patience=args.patience,
                      augment=AugmentConfig(remix=args.remix, remix_sources=args.remix_sources, eq=args.eq,
                                            reverb=args.reverb, speed=args.speed, drop_target=args.drop_target))
    run_dir = args.run_dir or os.path.join("runs", spec.name)
    _refuse_shipped(args.out or os.path.join(run_dir, f"{spec.name}.npz"), args.overwrite_shipped)
    valid = [v for v in (args.valid_tracks or "").split(",") if v] or None
    exclude = _track_names(args.exclude_tracks, "--exclude-tracks")
    dest = train(spec, args.musdb_root, is_wav=args.is_wav, config=cfg, run_dir=run_dir, resume=args.resume,
                 out=args.out, valid_tracks=valid, shares=args.shares, progress=not args.quiet, init=args.init,
                 exclude_tracks=exclude)
    if dest is not None and not args.quiet:
        print(f"checkpoint written to {dest}")
    return 0


@_command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_dataset, write_report
    from .targets import parse_target_list

    methods = parse_target_list(args.method)
    results = evaluate_dataset(
        args.musdb_root, is_wav=args.is_wav, subset=args.subset, targets=args.targets, methods=methods,
        quick=args.quick, windowed=args.windowed, joint=args.joint, max_seconds=args.max_seconds,
        tracks=_track_names(args.tracks),
        targets_dir=args.targets_dir, checkpoint_dirs=args.checkpoint_dir or (), out=args.out,
        progress=None if args.quiet else lambda track, method: print(f"{method:>5}: {track}", file=sys.stderr))
    files = write_report(results, args.out)
    print(files["md"].read_text())
    return 0


@_command("calibrate")
def _calibrate(args: argparse.Namespace) -> int:
    from .evaluate import calibrate_checkpoint, calibration_tracks

    if not args.list_tracks:
        if args.checkpoint and args.targets:
            raise OptionError("give a CHECKPOINT or --targets, not both")
        if not args.checkpoint and not args.targets:
            raise OptionError("calibrate needs a CHECKPOINT or --targets (or --list-tracks)")
        if args.checkpoint:
            _refuse_shipped(args.checkpoint, args.overwrite_shipped)
    tracks = calibration_tracks(args.musdb_root, is_wav=args.is_wav, subset=args.subset,
                                names=_track_names(args.tracks), max_tracks=args.max_tracks)
    if args.list_tracks:
        print("\n".join(t.name for t in tracks))
        return 0
    if args.targets:
        return _calibrate_set(args, tracks)
    res = calibrate_checkpoint(args.checkpoint, tracks, seconds=args.seconds, metric=args.metric,
                               data=_calibration_source(args))
    for t, v in res["sdr"].items():
        print(f"threshold {t:.2f}: mean {args.metric} SDR {v:6.2f} dB{'  <- best' if t == res['threshold'] else ''}")
    print(f"{args.checkpoint}: threshold {res['threshold']:.2f} from {len(res['tracks'])} tracks "
          f"(used when the target file sets no threshold)")
    return 0


def _calibration_source(args: argparse.Namespace) -> str:
    """What a calibration stored in a checkpoint was made on: the folders' names (no machine path) and subset."""
    return f"{', '.join(Path(r).name for r in args.musdb_root)} ({args.subset})"


def _calibrate_set(args: argparse.Namespace, tracks: list) -> int:
    """``stemsplit calibrate --targets``: the thresholds of targets that separate together."""
    from .evaluate import calibrate_set, held_by_default, store_set_calibration
    from .separate import find_targets, load_target

    specs = find_targets(args.targets, task="mask", targets_dir=args.targets_dir)
    held = held_by_default(specs)  # the lead target's stem does not depend on the others
    fixed = [s.name for s in specs if s.name not in held and s.threshold is not None]
    if fixed:
        raise OptionError(f"the target file of {', '.join(fixed)} sets a threshold, which a calibration stored in "
                          "the checkpoint would not change; remove it from the file first")
    loaded = [load_target(s, args.checkpoint_dir or ()) for s in specs]
    for t in loaded:
        if t.spec.name not in held:
            _refuse_shipped(str(t.checkpoint), args.overwrite_shipped)
    with _status(f"scoring {len(tracks)} tracks with {', '.join(args.targets)}", args.quiet):
        res = calibrate_set(loaded, tracks, seconds=args.seconds, metric=args.metric)
    for name in res["tuned"]:
        print(f"{name}: threshold {res['start'][name]:.2f} -> {res['thresholds'][name]:.2f}, mean {args.metric} SDR "
              f"{res['start_sdr'][name]:6.2f} -> {res['sdr'][name]:6.2f} dB")
    print(f"mean of the tuned targets {res['start_objective']:.2f} -> {res['objective']:.2f} dB on "
          f"{len(res['tracks'])} tracks ({res['evaluations']} threshold sets tried)")
    for path in store_set_calibration(loaded, res, seconds=args.seconds, data=_calibration_source(args)):
        print(f"{path}: threshold stored (used when the target file sets no threshold)")
    return 0


@_command("vad")
def _vad(args: argparse.Namespace) -> int:
    import json

    from .vad import ActivityDetector, activity_report

    det = ActivityDetector(args.target, targets_dir=args.targets_dir, checkpoint_dirs=args.checkpoint_dir or ())
    if args.musdb_root:
        from .evaluate import evaluate_activity

        res = evaluate_activity(args.musdb_root, is_wav=args.is_wav, subset=args.subset, detector=det,
                                tracks=_track_names(args.tracks))
        if not res["tracks"]:
            raise DataError(f"No tracks with {', '.join(det.target.spec.stems)} stems in {args.musdb_root}/"
                            f"{args.subset}" + (f" named {args.tracks}" if args.tracks else ""))
        print(json.dumps(res, indent=2, allow_nan=True))
        return 0
    if not args.inputs:
        raise OptionError("stemsplit vad needs INPUT files (or --musdb-root ROOT to score a dataset).")
    if args.plot and len(args.inputs) > 1:
        raise OptionError("--plot takes one INPUT.")
    report = {}
    for path in args.inputs:
        report[path] = r = activity_report(det, path, on=args.on, off=args.off, min_duration=args.min_duration,
                                           min_gap=args.min_gap, plot=args.plot)
        if not args.json:
            print(f"{path}: {len(r['segments'])} vocal segment(s), {r['voiced_seconds']:.1f} s voiced")
            for s, e in r["segments"]:
                print(f"  {s:8.2f} - {e:8.2f} s")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


@_command("stream")
def _stream(args: argparse.Namespace) -> int:
    from .stream import StreamOutput, StreamSeparator, file_chunks, pcm_chunks

    if args.live:
        from .live import run_live

        return run_live(args.targets, rate=args.rate, channels=args.channels, chunk=args.chunk, stem=args.stem,
                        mask=args.mask, residual=not args.no_residual, targets_dir=args.targets_dir,
                        checkpoint_dirs=args.checkpoint_dir or ())
    if args.input == "-":
        if not args.rate or not args.channels:
            raise OptionError("Reading raw PCM from stdin needs --rate and --channels.")
        source, sr, channels = pcm_chunks(sys.stdin.buffer, args.chunk, args.channels), args.rate, args.channels
    else:
        source, sr, channels = file_chunks(args.input, args.chunk)
    out = StreamOutput(args.output, fmt=args.format, sample_format=args.sample_format, clip=args.clip, sr=sr,
                       channels=channels)
    stream = StreamSeparator(args.targets, sr=sr, channels=channels, targets_dir=args.targets_dir,
                             checkpoint_dirs=args.checkpoint_dir or (), mask=args.mask,
                             residual=not args.no_residual)
    stem = stream.check_stem(args.stem or args.targets[0])
    if not args.quiet:
        print(f"stemsplit stream: {stem} at {sr} Hz, {channels} ch, latency {stream.latency} samples "
              f"({1000 * stream.latency_seconds:.0f} ms)", file=sys.stderr)
    out.run(source, stream, stem)
    if out.clipped:
        warnings.warn(f"{out.clipped:,} samples of {args.output} went beyond full scale and were clamped (peak "
                      f"{out.peak:.2f} = {20 * np.log10(out.peak):+.1f} dBFS); --float32 --clip none keeps them.",
                      ClippingWarning, stacklevel=1)
    return 0


@_command("align")
def _align(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .align import build_many, build_track

    if args.batch:
        with tqdm(desc="aligning", unit="pair", disable=args.quiet) as bar:
            def step(done: int, total: int, name: str) -> None:
                bar.total = total
                bar.set_postfix_str(name[:30])
                bar.update(done - bar.n)

            res = build_many(args.batch, args.out, split=args.split, force=args.force, min_psr=args.min_psr,
                             progress=step)
        for name, al in res["accepted"]:
            print(f"accepted  {name}: offset {al.offset_seconds:+.4f} s, gain {al.gain_db:+.2f} dB"
                  f"{' (inverted)' if al.gain < 0 else ''}, speed {al.speed:.6f}, PSR {al.psr:.0f}")
        for name, why in res["refused"]:
            print(f"refused   {name}: {why}")
        print(f"{len(res['accepted'])} accepted, {len(res['refused'])} refused -> {args.out}/{args.split}/")
        return 0 if res["accepted"] else EXIT_USAGE
    if not args.mix or not args.stem:
        raise OptionError("stemsplit align needs MIX and STEM (or --batch DIR|CSV).")
    out = Path(args.out)
    al, folder = build_track(args.mix, args.stem, out.parent, out.name, kind=args.kind, split=args.split,
                             force=args.force, min_psr=args.min_psr, max_offset=args.max_offset)
    print(f"{folder}: offset {al.offset_seconds:+.4f} s ({al.offset:+.2f} samples), gain {al.gain_db:+.2f} dB"
          f"{' (polarity inverted)' if al.gain < 0 else ''}, speed {al.speed:.6f}, confidence PSR {al.psr:.0f}")
    return 0


@_command("serve")
def _serve(args: argparse.Namespace) -> int:
    from .web import ServerConfig, serve

    serve(ServerConfig.from_options(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
                                    keep_minutes=args.keep_minutes, queue=args.queue, workers=args.workers,
                                    targets_dir=args.targets_dir, checkpoint_dirs=args.checkpoint_dir))
    return 0


def _parent(*flags: str, **kw) -> argparse.ArgumentParser:
    """A parent parser holding one shared option."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(*flags, **kw)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from . import __version__

    p = argparse.ArgumentParser(prog="stemsplit", description="Split music into stems with small mask CNNs.")
    p.add_argument("--version", action="version", version=f"stemsplit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # options several commands share, written once
    quiet = _parent("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    tdir = _parent("--targets-dir", action="append", metavar="DIR",
                   help="extra folder of target .toml files (repeatable)")
    cdir = _parent("--checkpoint-dir", action="append", metavar="DIR",
                   help="extra folder to look for checkpoints in (repeatable)")
    wav = _parent("--is-wav", action="store_true", help="decoded wav layout instead of .stem.mp4")

    s = sub.add_parser("separate", parents=[quiet, tdir, cdir], help="separate audio files into stems",
                       description="Separate audio files into OUTDIR/<file name>/<stem>.<format>.")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files (wav, flac, ogg, mp3, ...)")
    _add_stem_options(s)
    _add_encoding_options(s)

    sub.add_parser("targets", parents=[tdir], help="list known targets and their checkpoints")

    b = sub.add_parser("batch", parents=[quiet, tdir, cdir], help="separate many files on a Dask cluster (local processes or many machines)",
                       description="Separate audio files, folders (searched recursively) and lists of paths into "
                                   "OUTDIR/<name>/<stem>.<format> on Dask: a local cluster of single-threaded "
                                   "worker processes, or a running cluster given by --scheduler (docs/batch.md). "
                                   "A rerun skips finished files. Exit code 1 when some files failed.")
    b.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio files, folders (searched recursively) or .txt/.m3u lists with one path per line")
    _add_stem_options(b)
    b.add_argument("--workers", type=_positive_int, metavar="N",
                   help="worker processes of the local cluster, one core each (default: one per core)")
    b.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://host:8786, instead of a local one")
    b.add_argument("--manifest", metavar="PATH",
                   help="JSON-lines record of every input (default: OUTDIR/manifest.jsonl)")
    b.add_argument("--force", action="store_true", help="separate every input again, even finished ones")

    y = sub.add_parser("synth", parents=[quiet], help="render a MUSDB-layout training corpus from sampled instruments",
                       description="Render songs from sampled instruments into OUT/train and OUT/test "
                                   "(mixture, vocals, drums, bass, other wavs at 44.1 kHz stereo).")
    y.add_argument("out", metavar="OUT", help="dataset folder to create")
    y.add_argument("--tracks", type=_positive_int, default=10, help="number of songs (default 10)")
    y.add_argument("--seconds", type=float, default=30.0, help="length of each song (default 30)")
    y.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same files")
    y.add_argument("--workers", type=_positive_int, default=max(1, os.cpu_count() or 1),
                   help="parallel render processes (default: all cores)")
    y.add_argument("--real-data", metavar="DIR", default=None,
                   help="folder of real recordings to mix in (layout of shared/data; read, never copied)")

    r = sub.add_parser("train", parents=[quiet, tdir, wav], help="train a target on MUSDB18 or any folder in its layout",
                       description="Train a target's mask CNN (or activity detector) on MUSDB-layout data. "
                                   "Rerun the same command with --resume to continue a stopped run.")
    r.add_argument("--target", metavar="NAME", help="target to train (a targets/NAME.toml)")
    r.add_argument("--musdb-root", action="append", metavar="ROOT",
                   help="dataset root with train/ (and test/); repeat to pool several")
    r.add_argument("--shares", type=_shares_arg, metavar="W,W,...",
                   help="how often examples come from each --musdb-root, e.g. 0.5,0.2,0.3 (default: per track)")
    r.add_argument("--steps", type=_positive_int, default=20_000, help="optimizer steps (default 20000)")
    r.add_argument("--batch", type=_positive_int, default=16, help="examples per step (default 16)")
    r.add_argument("--frames", type=_positive_int, default=64,
                   help="frames predicted per example; 1 = the article's single centre frame (default 64)")
    r.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (default 1e-3)")
    r.add_argument("--weight-decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW) on the kernels, e.g. 0.01 (default 0: plain Adam)")
    r.add_argument("--loss", choices=["mse", "bce", "wbce", "ebce", "tbce"],
                   help="wbce: cross-entropy against magnitude-ratio labels weighted by the mix magnitude "
                        "(default for masks); ebce: the same weighted by the mix energy; tbce: as wbce, each "
                        "excerpt normalised by its target's level (quiet or absent targets weigh more, as in "
                        "BSSEval's per-window SDR); mse as in the article; "
                        "bce (default for activity targets)")
    r.add_argument("--ema", type=float, default=0.999,
                   help="decay of the weights' moving average used for validation and the checkpoint "
                        "(default 0.999; 0 = raw weights)")
    r.add_argument("--remix", type=_probability, default=0.5,
                   help="probability of drawing the target and the rest from different tracks (default 0.5)")
    r.add_argument("--remix-sources", type=_probability, default=0.0,
                   help="with remix, probability that each stem of the rest (drums, bass, other) comes from its "
                        "own track, as open-unmix's random track mix (default 0)")
    r.add_argument("--eq", type=_probability, default=0.3, help="probability of a random EQ per source (default 0.3)")
    r.add_argument("--reverb", type=_probability, default=0.2,
                   help="probability of a random synthetic room per source (default 0.2)")
    r.add_argument("--speed", type=_probability, default=0.0,
                   help="probability of a random speed change (pitch and tempo together, up to 2 semitones) "
                        "per source, or per example without remix (default 0)")
    r.add_argument("--drop-target", type=_probability, default=0.0,
                   help="probability of leaving the target out of an example's mix, so real accompaniments "
                        "teach 'no target here' (default 0; the shipped vocal-activity model uses 0.25)")
    r.add_argument("--val-seconds", type=float, default=30.0,
                   help="seconds of each validation track separated for the validation SDR (default 30)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--val-every", type=_positive_int, default=500, help="steps between validations")
    r.add_argument("--valid-tracks", metavar="NAMES", help="comma-separated track names to validate on")
    r.add_argument("--exclude-tracks", metavar="NAMES|@FILE",
                   help="tracks never trained or validated on (songs kept for your own tests): comma-separated "
                        "names, or @FILE with one name per line")
    r.add_argument("--patience", type=int, default=0, help="early stop after N validations without gain")
    r.add_argument("--run-dir", metavar="DIR", help="run folder (default runs/NAME)")
    r.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    r.add_argument("--init", metavar="CKPT",
                   help="fine-tune: start from this checkpoint of the target's model (e.g. a shipped one) "
                        "instead of random weights; the schedule starts afresh. A checkpoint of another model "
                        "with the same convolutions lends its convolutions and dense layer (transfer)")
    r.add_argument("--out", metavar="PATH", help="checkpoint destination (default: RUN/NAME.npz in the run folder)")
    r.add_argument("--overwrite-shipped", action="store_true",
                   help="allow --out to replace a checkpoint shipped with stemsplit")
    r.add_argument("--plot", metavar="RUN", help="draw RUN/metrics.jsonl to RUN/curves.png and exit")
    r.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: jax.distributed coordinator")
    r.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    r.add_argument("--process-id", type=int, help="multi-host: this process's index")

    e = sub.add_parser("evaluate", parents=[quiet, tdir, cdir, wav], help="score separations with BSSEval v4 (museval), oracles and baselines",
                       description="Separate every track of a MUSDB-layout subset and score it (BSSEval v4, "
                                   "SiSEC18 protocol: 1 s windows, median over windows, then over tracks).")
    e.add_argument("--musdb-root", required=True, metavar="ROOT", help="MUSDB18 or a folder in its layout")
    e.add_argument("--subset", default="test", choices=["train", "test"])
    e.add_argument("--targets", type=_targets_arg, default=["vocals", "drums", "bass", "other"],
                   help="comma-separated targets (default: vocals,drums,bass,other)")
    e.add_argument("--method", default="model",
                   help="comma-separated: model, model-soft (the models with ratio masks), model-gated (vocals "
                        "silenced where the activity detector hears no voice), ibm (ideal binary mask), irm "
                        "(ideal ratio mask), "
                        "pyin (the article's f0 comb baseline, vocals only), mix (mixture as estimate)")
    score_kind = e.add_mutually_exclusive_group()
    score_kind.add_argument("--quick", action="store_true", help="plain whole-signal SDR instead of BSSEval (fast)")
    score_kind.add_argument("--windowed", action="store_true",
                            help="BSSEval's SDR without its distortion filter: the same 1 s windows and medians, "
                                 "SDR only, many times faster and lighter (equal to BSSEval for mask estimates "
                                 "to within 0.01 dB where measured)")
    e.add_argument("--joint", action="store_true",
                   help="score all stems in one BSSEval call as SiSEC18 does (default: each stem against the rest, "
                        "so a resting stem does not hide the other stems' windows)")
    e.add_argument("--max-seconds", type=float, help="score only the first seconds of each track")
    e.add_argument("--tracks", metavar="NAMES|@FILE",
                   help="comma-separated track names to evaluate, or @FILE with one name per line")
    e.add_argument("-o", "--out", default="results", metavar="RESULTS",
                   help="folder for per-track JSON, summary.md/.csv and summary.png (default results)")

    c = sub.add_parser("calibrate", parents=[quiet, tdir, cdir, wav],
                       help="set a checkpoint's mask threshold to the one that separates best",
                       description="Try binary-mask thresholds 0.10-0.70 on tracks of a MUSDB-layout folder "
                                   "(SDR of the target, first --seconds; --metric) and store the best in the "
                                   "checkpoint. Training does this at its end on training tracks. With --targets, "
                                   "the thresholds of targets that separate together are chosen in their joint "
                                   "separation instead (each target's SDR in it, the mean over the targets).")
    c.add_argument("checkpoint", nargs="?", help="a mask target's .npz (rewritten in place, atomically)")
    c.add_argument("--targets", type=_targets_arg, metavar="T1,T2,...",
                   help="instead of one CHECKPOINT: the targets of a separation (e.g. vocals,drums,bass,other), "
                        "calibrated together under the dominance rule; each checkpoint but the lead target's "
                        "(vocals: its stem does not depend on the others) gets the threshold chosen")
    c.add_argument("--musdb-root", action="append", required=True, metavar="ROOT", help="repeatable")
    c.add_argument("--subset", default="train", choices=["train", "test"])
    c.add_argument("--tracks", metavar="NAMES|@FILE",
                   help="comma-separated track names, or @FILE with one per line (default: --max-tracks spread)")
    c.add_argument("--max-tracks", type=_positive_int, default=12)
    c.add_argument("--seconds", type=float, default=30.0)
    c.add_argument("--metric", choices=["quick", "windowed"], default="quick",
                   help="quick: the SDR of the whole excerpt (default); windowed: the median of 1 s windows, as "
                        "BSSEval reports it, so quiet passages count as much as loud ones")
    c.add_argument("--list-tracks", action="store_true",
                   help="print the names of the tracks the options select, one per line, and stop (a file for "
                        "--tracks @FILE, or for train --exclude-tracks @FILE to keep them out of training)")
    c.add_argument("--overwrite-shipped", action="store_true",
                   help="allow rewriting a checkpoint shipped with stemsplit")

    v = sub.add_parser("vad", parents=[tdir, cdir, wav], help="find where someone sings (vocal activity detection)",
                       description="Vocal activity: probability per ~11.6 ms frame, segments with hysteresis.")
    v.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files")
    v.add_argument("--json", action="store_true", help="print segments as JSON")
    v.add_argument("--plot", metavar="PNG", help="write spectrogram + activity curve to this PNG")
    v.add_argument("--on", type=float, default=0.6, help="probability that starts a segment (default 0.6)")
    v.add_argument("--off", type=float, default=0.4, help="probability under which it ends (default 0.4)")
    v.add_argument("--min-duration", type=float, default=0.25, help="shortest segment kept, s (default 0.25)")
    v.add_argument("--min-gap", type=float, default=0.2, help="shorter gaps are bridged, s (default 0.2)")
    v.add_argument("--target", default="vocal-activity", help="activity target (default vocal-activity)")
    v.add_argument("--musdb-root", metavar="ROOT", help="score the detector on a MUSDB-layout subset instead")
    v.add_argument("--subset", default="test", choices=["train", "test"])
    v.add_argument("--tracks", metavar="NAMES|@FILE",
                   help="with --musdb-root: comma-separated track names to score, or @FILE with one per line")

    m = sub.add_parser("stream", parents=[quiet, tdir, cdir], help="separate progressively: a file or raw PCM in, one stem out as it goes",
                       description="Streaming separation with a fixed latency (~186 ms). The output lines up "
                                   "with the input sample for sample. Raw PCM is float32 little-endian, "
                                   "interleaved.")
    m.add_argument("input", nargs="?", default="-", metavar="INPUT|-", help="audio file, or - for raw PCM on stdin")
    m.add_argument("-o", "--output", default="-", metavar="OUTPUT|-", help="file, or - for raw PCM on stdout")
    m.add_argument("-t", "--targets", "--target", type=_targets_arg, default=["vocals"], dest="targets",
                   help="targets to separate (default vocals)")
    m.add_argument("--stem", help="stem to output (default: the first target; e.g. accompaniment for karaoke)")
    m.add_argument("--format", metavar="{f32le,wav,flac}", help="output format (default: f32le for -, "
                                                                       "else wav)")
    m.add_argument("--rate", type=_positive_int, help="sample rate of raw PCM input")
    m.add_argument("--channels", type=_positive_int, help="channels of raw PCM input")
    m.add_argument("--chunk", type=_positive_int, default=1024, help="samples read per chunk (default 1024)")
    _mask_option(m)
    m.add_argument("--no-residual", action="store_true",
                   help="no residual/accompaniment stem: several targets share every bin among themselves")
    _add_encoding_options(m)
    m.add_argument("--live", action="store_true",
                   help="microphone in, speakers out (needs the optional sounddevice package)")

    a = sub.add_parser("align", parents=[quiet], help="align a mix with its a cappella or instrumental into a training track",
                       description="Estimate offset (sub-sample), gain/polarity and a small speed difference "
                                   "between a mix and its a cappella or instrumental, and write a MUSDB-layout "
                                   "track DATASET/<split>/TRACK/{mixture,vocals,accompaniment}.wav.")
    a.add_argument("mix", nargs="?", metavar="MIX", help="the released mix")
    a.add_argument("stem", nargs="?", metavar="STEM", help="its a cappella or instrumental")
    a.add_argument("--kind", choices=["acapella", "instrumental"], default="acapella", help="what STEM is")
    a.add_argument("-o", "--out", required=True, metavar="DATASET/TRACK",
                   help="dataset root and track name (with --batch: the dataset root)")
    a.add_argument("--split", choices=["train", "test"], default="train", help="subset to write into")
    a.add_argument("--batch", metavar="DIR|CSV",
                   help="align every pair: NAME.mix.* with NAME.acapella.*/NAME.instrumental.* in DIR, or CSV "
                        "rows mix,stem,kind[,name]")
    a.add_argument("--force", action="store_true", help="write even when the alignment confidence is low")
    a.add_argument("--min-psr", type=float, default=12.0, help="confidence threshold (default 12)")
    a.add_argument("--max-offset", type=float, help="largest offset searched, seconds (default any)")

    w = sub.add_parser("serve", parents=[tdir, cdir], help="a local web page to drop a song, hear and see its stems",
                       description="Serve the stemsplit page and its HTTP API (docs/web.md). Listens on "
                                   "127.0.0.1 only unless --host says otherwise.")
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer)")
    w.add_argument("--port", default="8000", help="TCP port (default 8000)")
    w.add_argument("--max-upload-mb", default="200", metavar="MB", help="largest upload accepted (default 200)")
    w.add_argument("--keep-minutes", default="60", metavar="MIN",
                   help="finished jobs and their files are removed after this long (default 60)")
    w.add_argument("--queue", default="8", metavar="N", help="songs that may wait for separation (default 8)")
    w.add_argument("--workers", default="1", metavar="N", help="separations at the same time (default 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stemsplit`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import _compile_cache

    _compile_cache.enable()  # before anything compiles: a second run reuses the compiled models
    with warnings.catch_warnings():
        warnings.simplefilter("always", StemsplitWarning)
        warnings.showwarning = _warning_line(warnings.showwarning)
        try:
            return _COMMANDS[args.command](args)
        except StemsplitError as e:
            print(f"stemsplit: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("stemsplit: interrupted", file=sys.stderr)
            return 130


def _warning_line(fallback):
    """A ``warnings.showwarning`` that prints stemsplit's warnings as one ``stemsplit: warning:`` line."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, StemsplitWarning):
            print(f"stemsplit: warning: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def _entry() -> None:
    sys.exit(main())


__all__ = ["main", "build_parser"]
