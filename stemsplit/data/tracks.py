"""Dataset tracks: MUSDB18 (or any folder in its layout) found, split and read.

Tracks are found with ``musdb.DB`` for ``.stem.mp4`` files (its train/validation split included), and by a plain
folder scan for the decoded wav layout, where every ``<stem>.wav`` in a track folder is readable, so a new target
can use stems MUSDB does not have (``piano.wav``). Audio is read with random access (soundfile for wav;
musdb/stempeg chunks for ``.stem.mp4``). :meth:`Track.mix` is the one definition of a track's mix.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf

from ..errors import DataError, DependencyError

__all__ = ["Track", "require_ffmpeg", "find_tracks", "split_tracks", "MUSDB_STEMS"]

#: the four stems of MUSDB18's ``.stem.mp4`` files
MUSDB_STEMS = ("vocals", "drums", "bass", "other")


def require_ffmpeg() -> None:
    """musdb and museval call ffmpeg/ffprobe at import, even for wav folders."""
    missing = [t for t in ("ffmpeg", "ffprobe") if shutil.which(t) is None]
    if missing:
        raise DependencyError(f"{' and '.join(missing)} not found: musdb needs it. Install it with "
                              "`bash scripts/install-system-deps.sh` (Debian package ffmpeg).")


@dataclass
class Track:
    """One multitrack song.

    Attributes
    ----------
    name : str
    sr : int
    length : int
        Samples.
    stems : dict of str to Path
        Stem name -> wav file (wav layout).
    mixture : Path or None
    musdb_track : object or None
        The ``musdb`` track, for ``.stem.mp4`` reading.
    weight : float
        Relative chance of drawing this track for an example.
    """

    name: str
    sr: int
    length: int
    stems: dict[str, Path] = field(default_factory=dict)
    mixture: Path | None = None
    musdb_track: object | None = None
    weight: float = 1.0

    def read(self, stem: str, start: int, count: int) -> np.ndarray:
        """``count`` samples of a stem from ``start`` as (2, count) float32 (mono doubled)."""
        if self.musdb_track is not None and stem not in self.stems:
            t = self.musdb_track
            t.chunk_start = start / self.sr
            t.chunk_duration = count / self.sr
            src = t.audio if stem == "mixture" else t.sources[stem].audio
            a = np.asarray(src, dtype=np.float32).T[:, :count]
            if a.shape[1] < count:
                a = np.pad(a, ((0, 0), (0, count - a.shape[1])))
        else:
            path = self.mixture if stem == "mixture" else self.stems[stem]
            a = sf.read(str(path), start=start, frames=count, dtype="float32", always_2d=True, fill_value=0.0)[0].T
        if a.shape[0] == 1:
            a = np.repeat(a, 2, axis=0)
        return a[:2]

    @property
    def parts(self) -> list[str]:
        """The stems that add up to the mix: every stem but ``accompaniment`` when other stems stand for it
        (``vocals, drums, bass, other``), else all of them (``vocals, accompaniment``)."""
        if self.musdb_track is not None:
            return list(MUSDB_STEMS)
        others = [s for s in self.stems if s != "accompaniment"]
        return others if len(others) > 1 or "accompaniment" not in self.stems else list(self.stems)

    def mix(self, start: int = 0, count: int | None = None) -> np.ndarray:
        """The track's mix, ``count`` samples from ``start`` (to the end by default) as (2, count) float32: its
        mixture file, else the sum of its :attr:`parts`."""
        count = self.length - start if count is None else count
        if self.mixture is not None or self.musdb_track is not None:
            return self.read("mixture", start, count)
        return sum(self.read(s, start, count) for s in self.parts)

    @property
    def channels(self) -> int:
        """Channels of the track's files (:meth:`read` gives two either way: mono is doubled)."""
        if self.musdb_track is not None:
            return 2
        return sf.info(str(self.mixture or next(iter(self.stems.values())))).channels


def _musdb_tracks(root: Path, is_wav: bool, subsets: str, split: str | None) -> list:
    """``musdb.DB(...).tracks``, with the ffmpeg check and clear errors."""
    require_ffmpeg()
    import musdb

    try:
        return list(musdb.DB(root=str(root), is_wav=is_wav, subsets=subsets, split=split).tracks)
    except (OSError, RuntimeError, ValueError) as e:
        raise DataError(f"Cannot read a MUSDB dataset at {root}: {e}") from None


def _to_track(mt, is_wav: bool) -> Track:
    """A ``musdb`` track as a :class:`Track`."""
    if is_wav:
        folder = Path(mt.path).parent
        stems = {p.stem: p for p in sorted(folder.glob("*.wav")) if p.stem != "mixture"}
        mixture = folder / "mixture.wav"
        ref = mixture if mixture.exists() else next(iter(stems.values()), None)
        if ref is None:
            raise DataError(f"Track folder {folder} holds no wav files.")
        info = sf.info(str(ref))
        return Track(name=mt.name, sr=info.samplerate, length=info.frames, stems=stems,
                     mixture=mixture if mixture.exists() else None, musdb_track=None)
    return Track(name=mt.name, sr=int(mt.rate), length=int(mt.duration * mt.rate), stems={},
                 mixture=None, musdb_track=mt)


def find_tracks(root: str | os.PathLike, *, is_wav: bool, subset: str = "train",
                split: str | None = None) -> list[Track]:
    """Tracks of a MUSDB-layout dataset.

    Parameters
    ----------
    root : path-like
        Folder holding ``train/`` and/or ``test/``.
    is_wav : bool
        Decoded wav layout (``True``) or ``.stem.mp4`` files (``False``).
    subset : {"train", "test"}
    split : {"train", "valid"} or None
        musdb's split of the train subset (MUSDB18's official validation tracks).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Dataset folder not found: {root}")
    if not (root / subset).is_dir():
        return []
    if is_wav:
        return _wav_tracks(root / subset, split)
    return [_to_track(mt, is_wav) for mt in _musdb_tracks(root, is_wav, subset, split)]


def _musdb_validation_names() -> set[str]:
    """MUSDB18's official validation tracks, from musdb's own setup file (read without importing musdb, whose
    import needs ffmpeg)."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("musdb")
    if spec is None or spec.origin is None:
        return set()
    setup = Path(spec.origin).parent / "configs" / "mus.yaml"
    return set(yaml.safe_load(setup.read_text()).get("validation_tracks", [])) if setup.exists() else set()


def _wav_tracks(folder: Path, split: str | None) -> list[Track]:
    """Track folders of the decoded wav layout, as ``musdb.DB(is_wav=True)`` finds them (sorted by name, the
    official split applied), read with soundfile: musdb probes every file with ffprobe, minutes for a
    thousand tracks."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if split is not None:
        official = _musdb_validation_names()
        names = [n for n in names if (n in official) == (split == "valid")]
    return [_to_track(SimpleNamespace(name=n, path=str(folder / n / "mixture.wav")), True) for n in names]


def split_tracks(roots: Sequence[str | os.PathLike], *, is_wav: bool, valid_names: Sequence[str] | None = None,
                 shares: Sequence[float] | None = None,
                 exclude_names: Sequence[str] | None = None,
                 excluded: list[str] | None = None) -> tuple[list[Track], list[Track]]:
    """Training and validation tracks from one or more dataset roots.

    Validation tracks are, in order of preference: the names given; MUSDB18's official validation split when
    the root is MUSDB18; the root's ``test`` subset; else the last tenth of the training tracks by name.
    Tracks named in ``exclude_names`` are neither trained nor validated on (songs kept for one's own tests); the
    names of those found are appended to ``excluded`` when it is given.

    ``shares`` (one per root) sets how often examples come from each root, whatever its number of tracks
    (default: every track equally likely).
    """
    if shares is not None and (len(shares) != len(roots) or any(w < 0 for w in shares) or sum(shares) <= 0):
        raise DataError(f"give one non-negative share per dataset root ({len(roots)}), got {list(shares)}")
    train: list[Track] = []
    valid: list[Track] = []
    exclude = set(exclude_names or ())
    for i, root in enumerate(roots):
        before, vbefore = len(train), len(valid)
        _split_root(root, is_wav, valid_names, train, valid)
        if exclude:
            for tracks, start in ((train, before), (valid, vbefore)):
                if excluded is not None:
                    excluded += [t.name for t in tracks[start:] if t.name in exclude]
                tracks[start:] = [t for t in tracks[start:] if t.name not in exclude]
        if shares is not None and len(train) > before:
            for t in train[before:]:
                t.weight = shares[i] / (len(train) - before)
    if not train:
        raise DataError(f"No training tracks found under {', '.join(map(str, roots))} "
                        "(expected ROOT/train/<track>/<stem>.wav or .stem.mp4 files).")
    test = musdb18_test_songs()
    banned = sorted({t.name for t in train if t.name in test})
    if banned:
        raise DataError(f"{len(banned)} training track(s) are MUSDB18/DSD100 test songs (e.g. {banned[0]!r}): "
                        "the field's test set is never trained on; move them out of the training folders.")
    return train, valid


@functools.cache
def musdb18_test_songs() -> frozenset[str]:
    """Names of the 50 MUSDB18 test songs (DSD100's test songs), which training refuses wherever they turn up."""
    text = (Path(__file__).with_name("musdb18_test_songs.txt")).read_text()
    return frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _split_root(root, is_wav: bool, valid_names, train: list[Track], valid: list[Track]) -> None:
    """Add one root's training and validation tracks (see :func:`split_tracks`)."""
    every = find_tracks(root, is_wav=is_wav, subset="train")
    if valid_names:
        train += [t for t in every if t.name not in valid_names]
        valid += [t for t in every if t.name in valid_names]
        valid += [t for t in find_tracks(root, is_wav=is_wav, subset="test") if t.name in valid_names]
        return
    official = {t.name for t in find_tracks(root, is_wav=is_wav, subset="train", split="valid")}
    if official and len(official) < len(every):
        train += [t for t in every if t.name not in official]
        valid += [t for t in every if t.name in official]
        return
    test = find_tracks(root, is_wav=is_wav, subset="test")
    if test:
        train += every
        valid += test
    elif len(every) >= 2:
        k = max(1, len(every) // 10)
        train += every[:-k]
        valid += every[-k:]
    else:
        train += every
