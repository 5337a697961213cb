"""The ``stemsplit`` command: parses arguments, calls the library, reports. No logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import DataError, OptionError, StemsplitError

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


def _shares_arg(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _progress_bar(total: int, desc: str, unit_scale: float, quiet: bool):
    """A tqdm bar advanced by (done, total) sample callbacks, shown in seconds of audio."""
    from tqdm import tqdm

    bar = tqdm(total=round(total / unit_scale, 1), desc=desc, unit="s", disable=quiet, leave=False,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]")

    def update(done: int, _total: int) -> None:
        bar.n = round(done / unit_scale, 1)
        bar.refresh()

    return bar, update


@_command("separate")
def _separate(args: argparse.Namespace) -> int:
    from . import audio as audio_io
    from .separate import Separator

    audio_io.check_format(args.format)
    sep = Separator(args.targets, residual=not args.no_residual, mask=args.mask, targets_dir=args.targets_dir,
                    checkpoint_dirs=args.checkpoint_dir or (), gate_vocals=args.gate_vocals)
    failures = 0
    for path in args.inputs:
        try:
            reader = audio_io.open_reader(path)
            total, sr = reader.frames, reader.sr
            reader.close()
            bar, update = _progress_bar(total, os.path.basename(path), sr, args.quiet)
            try:
                written = sep.separate_file(path, args.out, fmt=args.format, progress=update)
            finally:
                bar.close()
        except StemsplitError as e:
            print(f"stemsplit: error: {e}", file=sys.stderr)
            failures += 1
            continue
        if not args.quiet:
            folder = next(iter(written.values())).parent
            print(f"{path} -> {folder}/ ({', '.join(p.name for p in written.values())})")
    return EXIT_USAGE if failures else 0


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

    from .data.synth import SynthConfig, render_dataset

    config = SynthConfig(seconds=args.seconds, real_data_root=args.real_data) if args.real_data else \
        SynthConfig(seconds=args.seconds)
    with tqdm(total=args.tracks, desc="rendering", unit="song", disable=args.quiet) as bar:
        folders = render_dataset(args.out, tracks=args.tracks, seconds=args.seconds, seed=args.seed,
                                 config=config, workers=args.workers,
                                 progress=lambda done, total: bar.update(done - bar.n))
    if not args.quiet:
        print(f"wrote {len(folders)} tracks to {args.out}/(train|test)/")
    return 0


@_command("train")
def _train(args: argparse.Namespace) -> int:
    from .data.dataset import AugmentConfig
    from .targets import get_target
    from .train import TrainConfig, plot_metrics, train

    if args.plot:
        print(plot_metrics(args.plot))
        return 0
    if not args.target or not args.musdb_root:
        raise OptionError("stemsplit train needs --target NAME and --musdb-root ROOT (or --plot RUN).")
    if args.coordinator:
        import jax

        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    spec = get_target(args.target, args.targets_dir)
    loss = args.loss or ("bce" if spec.task == "activity" else "wbce")
    cfg = TrainConfig(steps=args.steps, batch=args.batch, frames=args.frames, lr=args.lr, loss=loss,
                      ema=args.ema, seed=args.seed, val_every=args.val_every, val_seconds=args.val_seconds,
                      patience=args.patience,
                      augment=AugmentConfig(remix=args.remix, eq=args.eq, reverb=args.reverb))
    run_dir = args.run_dir or os.path.join("runs", spec.name)
    valid = [v for v in (args.valid_tracks or "").split(",") if v] or None
    dest = train(spec, args.musdb_root, is_wav=args.is_wav, config=cfg, run_dir=run_dir, resume=args.resume,
                 out=args.out, valid_tracks=valid, shares=args.shares, progress=not args.quiet)
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
        quick=args.quick, max_seconds=args.max_seconds, tracks=parse_target_list(args.tracks or "") or None,
        targets_dir=args.targets_dir, out=args.out,
        progress=None if args.quiet else lambda track, method: print(f"{method:>5}: {track}", file=sys.stderr))
    files = write_report(results, args.out)
    print(files["md"].read_text())
    return 0


@_command("calibrate")
def _calibrate(args: argparse.Namespace) -> int:
    from .data.dataset import find_tracks
    from .evaluate import calibrate_checkpoint
    from .targets import parse_target_list

    names = parse_target_list(args.tracks or "")
    tracks = [t for root in args.musdb_root for t in find_tracks(root, is_wav=args.is_wav, subset=args.subset)
              if not names or t.name in names]
    if not names and len(tracks) > args.max_tracks:  # an even spread over the roots' tracks, fixed
        tracks = [tracks[i] for i in np.linspace(0, len(tracks) - 1, args.max_tracks).round().astype(int)]
    if not tracks:
        raise DataError("No tracks to calibrate on" + (f" named {args.tracks}" if args.tracks else "") + ".")
    res = calibrate_checkpoint(args.checkpoint, tracks, seconds=args.seconds,
                               data=f"{', '.join(map(str, args.musdb_root))} ({args.subset})")
    for t, v in res["sdr"].items():
        print(f"threshold {t:.2f}: mean quick SDR {v:6.2f} dB{'  <- best' if t == res['threshold'] else ''}")
    print(f"{args.checkpoint}: threshold {res['threshold']:.2f} from {len(res['tracks'])} tracks "
          f"(used when the target file sets no threshold)")
    return 0


@_command("vad")
def _vad(args: argparse.Namespace) -> int:
    import json

    from . import audio as audio_io
    from .targets import parse_target_list
    from .vad import ActivityDetector, evaluate_activity, plot_activity, vocal_segments

    det = ActivityDetector(args.target, targets_dir=args.targets_dir)
    if args.musdb_root:
        res = evaluate_activity(args.musdb_root, is_wav=args.is_wav, subset=args.subset, detector=det,
                                tracks=parse_target_list(args.tracks or "") or None)
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
        times, probs, sr = det.file(path)
        segs = vocal_segments(times, probs, on=args.on, off=args.off, min_duration=args.min_duration,
                              min_gap=args.min_gap)
        report[path] = {"segments": segs, "voiced_seconds": round(sum(e - s for s, e in segs), 3),
                        "duration": round(float(times[-1]) if times.size else 0.0, 3)}
        if args.plot:
            audio, sr = audio_io.load(path)
            plot_activity(audio, sr, times, probs, segs, args.plot, threshold=det.threshold)
        if not args.json:
            print(f"{path}: {len(segs)} vocal segment(s), {report[path]['voiced_seconds']:.1f} s voiced")
            for s, e in segs:
                print(f"  {s:8.2f} - {e:8.2f} s")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


@_command("stream")
def _stream(args: argparse.Namespace) -> int:
    from . import audio as audio_io
    from .stream import AlignedWriter, StreamSeparator, file_chunks, pcm_chunks, run_pipeline

    if args.live:
        from .live import run_live

        return run_live(args)
    if args.input == "-":
        if not args.rate or not args.channels:
            raise OptionError("Reading raw PCM from stdin needs --rate and --channels.")
        source, sr, channels = pcm_chunks(sys.stdin.buffer, args.chunk, args.channels), args.rate, args.channels
    else:
        source, sr, channels = file_chunks(args.input, args.chunk)
    stream = StreamSeparator(args.targets, sr=sr, channels=channels, targets_dir=args.targets_dir,
                             checkpoint_dirs=args.checkpoint_dir or ())
    stem = args.stem or args.targets[0]
    if stem not in stream.stem_names:
        raise OptionError(f"--stem {stem!r} is not produced; choose one of {', '.join(stream.stem_names)}.")
    fmt = args.format or ("f32le" if args.output == "-" else "wav")
    if not args.quiet:
        print(f"stemsplit stream: {stem} at {sr} Hz, {channels} ch, latency {stream.latency} samples "
              f"({1000 * stream.latency_seconds:.0f} ms)", file=sys.stderr)
    if args.output == "-":
        if fmt != "f32le":
            raise OptionError("Standard output takes raw PCM only: use --format f32le.")
        out = sys.stdout.buffer

        def write(block):
            out.write(np.ascontiguousarray(block.T, dtype="<f4").tobytes())
            out.flush()

        run_pipeline(source, stream, AlignedWriter(write, stem, stream.latency))
        return 0
    if fmt == "f32le":
        from .checkpoint import atomic_path

        with atomic_path(args.output, ".raw") as tmp, open(tmp, "wb") as fh:
            run_pipeline(source, stream, AlignedWriter(
                lambda b: fh.write(np.ascontiguousarray(b.T, dtype="<f4").tobytes()), stem, stream.latency))
        return 0
    writer = audio_io.StemWriter(Path(args.output), sr, channels, fmt)
    try:
        run_pipeline(source, stream, AlignedWriter(writer.write, stem, stream.latency))
    except BaseException:
        writer.abort()
        raise
    writer.commit()
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from . import __version__
    from .audio import FORMATS

    p = argparse.ArgumentParser(prog="stemsplit", description="Split music into stems with small mask CNNs.")
    p.add_argument("--version", action="version", version=f"stemsplit {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("separate", help="separate audio files into stems",
                       description="Separate audio files into OUTDIR/<file name>/<stem>.<format>.")
    s.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files (wav, flac, ogg, mp3, ...)")
    s.add_argument("-o", "--out", default="separated", metavar="OUTDIR", help="output folder (default: separated)")
    s.add_argument("-t", "--targets", type=_targets_arg, default=["vocals"],
                   help="comma-separated targets, e.g. vocals,drums,bass,other (default: vocals)")
    s.add_argument("-f", "--format", default="wav", choices=sorted(FORMATS), help="output format (default: wav)")
    s.add_argument("--mask", default="binary", choices=["binary", "soft"],
                   help="binary masks under the dominance rule (default) or soft ratio masks")
    s.add_argument("--no-residual", action="store_true",
                   help="do not write the residual/accompaniment stem")
    s.add_argument("--gate-vocals", action="store_true",
                   help="silence the vocals stem where the vocal activity detector hears no voice")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")

    t = sub.add_parser("targets", help="list known targets and their checkpoints")
    for q in (s, t):
        q.add_argument("--targets-dir", action="append", metavar="DIR",
                       help="extra folder of target .toml files (repeatable)")
    s.add_argument("--checkpoint-dir", action="append", metavar="DIR",
                   help="extra folder to look for checkpoints in (repeatable)")

    y = sub.add_parser("synth", help="render a MUSDB-layout training corpus from sampled instruments",
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
    y.add_argument("-q", "--quiet", action="store_true")

    r = sub.add_parser("train", help="train a target on MUSDB18 or any folder in its layout",
                       description="Train a target's mask CNN (or activity detector) on MUSDB-layout data. "
                                   "Rerun the same command with --resume to continue a stopped run.")
    r.add_argument("--target", metavar="NAME", help="target to train (a targets/NAME.toml)")
    r.add_argument("--musdb-root", action="append", metavar="ROOT",
                   help="dataset root with train/ (and test/); repeat to pool several")
    r.add_argument("--is-wav", action="store_true", help="decoded wav layout instead of .stem.mp4")
    r.add_argument("--shares", type=_shares_arg, metavar="W,W,...",
                   help="how often examples come from each --musdb-root, e.g. 0.5,0.2,0.3 (default: per track)")
    r.add_argument("--steps", type=_positive_int, default=20_000, help="optimizer steps (default 20000)")
    r.add_argument("--batch", type=_positive_int, default=16, help="examples per step (default 16)")
    r.add_argument("--frames", type=_positive_int, default=64,
                   help="frames predicted per example; 1 = the article's single centre frame (default 64)")
    r.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (default 1e-3)")
    r.add_argument("--loss", choices=["mse", "bce", "wbce"],
                   help="wbce: cross-entropy against magnitude-ratio labels weighted by the mix magnitude "
                        "(default for masks); mse as in the article; bce (default for activity targets)")
    r.add_argument("--ema", type=float, default=0.999,
                   help="decay of the weights' moving average used for validation and the checkpoint "
                        "(default 0.999; 0 = raw weights)")
    r.add_argument("--remix", type=float, default=0.5,
                   help="probability of drawing the target and the rest from different tracks (default 0.5)")
    r.add_argument("--eq", type=float, default=0.3, help="probability of a random EQ per source (default 0.3)")
    r.add_argument("--reverb", type=float, default=0.2,
                   help="probability of a random synthetic room per source (default 0.2)")
    r.add_argument("--val-seconds", type=float, default=30.0,
                   help="seconds of each validation track separated for the validation SDR (default 30)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--val-every", type=_positive_int, default=500, help="steps between validations")
    r.add_argument("--valid-tracks", metavar="NAMES", help="comma-separated track names to validate on")
    r.add_argument("--patience", type=int, default=0, help="early stop after N validations without gain")
    r.add_argument("--run-dir", metavar="DIR", help="run folder (default runs/NAME)")
    r.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    r.add_argument("--out", metavar="PATH", help="checkpoint destination (default: where separate looks)")
    r.add_argument("--targets-dir", action="append", metavar="DIR", help="extra folder of target files")
    r.add_argument("--plot", metavar="RUN", help="draw RUN/metrics.jsonl to RUN/curves.png and exit")
    r.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: jax.distributed coordinator")
    r.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    r.add_argument("--process-id", type=int, help="multi-host: this process's index")
    r.add_argument("-q", "--quiet", action="store_true")

    e = sub.add_parser("evaluate", help="score separations with BSSEval v4 (museval), oracles and baselines",
                       description="Separate every track of a MUSDB-layout subset and score it (BSSEval v4, "
                                   "SiSEC18 protocol: 1 s windows, median over windows, then over tracks).")
    e.add_argument("--musdb-root", required=True, metavar="ROOT", help="MUSDB18 or a folder in its layout")
    e.add_argument("--is-wav", action="store_true", help="decoded wav layout instead of .stem.mp4")
    e.add_argument("--subset", default="test", choices=["train", "test"])
    e.add_argument("--targets", type=_targets_arg, default=["vocals", "drums", "bass", "other"],
                   help="comma-separated targets (default: vocals,drums,bass,other)")
    e.add_argument("--method", default="model",
                   help="comma-separated: model, model-soft (the models with ratio masks), model-gated (vocals "
                        "silenced where the activity detector hears no voice), ibm (ideal binary mask), irm "
                        "(ideal ratio mask), "
                        "pyin (the article's f0 comb baseline, vocals only), mix (mixture as estimate)")
    e.add_argument("--quick", action="store_true", help="plain whole-signal SDR instead of BSSEval (fast)")
    e.add_argument("--max-seconds", type=float, help="score only the first seconds of each track")
    e.add_argument("--tracks", metavar="NAMES", help="comma-separated track names to evaluate")
    e.add_argument("-o", "--out", default="results", metavar="RESULTS",
                   help="folder for per-track JSON, summary.md/.csv and summary.png (default results)")
    e.add_argument("--targets-dir", action="append", metavar="DIR", help="extra folder of target files")
    e.add_argument("-q", "--quiet", action="store_true")

    c = sub.add_parser("calibrate", help="set a checkpoint's mask threshold to the one that separates best",
                       description="Try binary-mask thresholds 0.10-0.70 on tracks of a MUSDB-layout folder "
                                   "(quick SDR of the target, first --seconds) and store the best in the "
                                   "checkpoint. Training does this at its end on training tracks.")
    c.add_argument("checkpoint", help="a mask target's .npz (rewritten in place, atomically)")
    c.add_argument("--musdb-root", action="append", required=True, metavar="ROOT", help="repeatable")
    c.add_argument("--is-wav", action="store_true")
    c.add_argument("--subset", default="train", choices=["train", "test"])
    c.add_argument("--tracks", metavar="NAMES", help="comma-separated track names (default: --max-tracks spread)")
    c.add_argument("--max-tracks", type=_positive_int, default=12)
    c.add_argument("--seconds", type=float, default=30.0)

    v = sub.add_parser("vad", help="find where someone sings (vocal activity detection)",
                       description="Vocal activity: probability per ~11.6 ms frame, segments with hysteresis.")
    v.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files")
    v.add_argument("--json", action="store_true", help="print segments as JSON")
    v.add_argument("--plot", metavar="PNG", help="write spectrogram + activity curve to this PNG")
    v.add_argument("--on", type=float, default=0.6, help="probability that starts a segment (default 0.6)")
    v.add_argument("--off", type=float, default=0.4, help="probability under which it ends (default 0.4)")
    v.add_argument("--min-duration", type=float, default=0.25, help="shortest segment kept, s (default 0.25)")
    v.add_argument("--min-gap", type=float, default=0.2, help="shorter gaps are bridged, s (default 0.2)")
    v.add_argument("--target", default="vocal-activity", help="activity target (default vocal-activity)")
    v.add_argument("--targets-dir", action="append", metavar="DIR", help="extra folder of target files")
    v.add_argument("--musdb-root", metavar="ROOT", help="score the detector on a MUSDB-layout subset instead")
    v.add_argument("--is-wav", action="store_true")
    v.add_argument("--subset", default="test", choices=["train", "test"])
    v.add_argument("--tracks", metavar="NAMES", help="with --musdb-root: comma-separated track names to score")

    m = sub.add_parser("stream", help="separate progressively: a file or raw PCM in, one stem out as it goes",
                       description="Streaming separation with a fixed latency (~186 ms). The output lines up "
                                   "with the input sample for sample. Raw PCM is float32 little-endian, "
                                   "interleaved.")
    m.add_argument("input", nargs="?", default="-", metavar="INPUT|-", help="audio file, or - for raw PCM on stdin")
    m.add_argument("-o", "--output", default="-", metavar="OUTPUT|-", help="file, or - for raw PCM on stdout")
    m.add_argument("-t", "--targets", "--target", type=_targets_arg, default=["vocals"], dest="targets",
                   help="targets to separate (default vocals)")
    m.add_argument("--stem", help="stem to output (default: the first target; e.g. accompaniment for karaoke)")
    m.add_argument("--format", choices=["f32le", "wav", "flac"], help="output format (default: f32le for -, "
                                                                       "else wav)")
    m.add_argument("--rate", type=_positive_int, help="sample rate of raw PCM input")
    m.add_argument("--channels", type=_positive_int, help="channels of raw PCM input")
    m.add_argument("--chunk", type=_positive_int, default=1024, help="samples read per chunk (default 1024)")
    m.add_argument("--live", action="store_true",
                   help="microphone in, speakers out (needs the optional sounddevice package)")
    m.add_argument("--targets-dir", action="append", metavar="DIR", help="extra folder of target files")
    m.add_argument("--checkpoint-dir", action="append", metavar="DIR", help="extra folder of checkpoints")
    m.add_argument("-q", "--quiet", action="store_true")

    a = sub.add_parser("align", help="align a mix with its a cappella or instrumental into a training track",
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
    a.add_argument("-q", "--quiet", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stemsplit`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except StemsplitError as e:
        print(f"stemsplit: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stemsplit: interrupted", file=sys.stderr)
        return 130


def _entry() -> None:
    sys.exit(main())


__all__ = ["main", "build_parser"]
