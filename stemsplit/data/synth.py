"""Procedural training corpus: songs rendered from real sampled instruments, written in MUSDB18 layout.

Each track is composed (tempo, key, chord progression, sections, groove, bassline, accompaniment, vocal melody
with syllables) by :mod:`stemsplit.data._synth_compose`, rendered with General MIDI soundfonts through
fluidsynth, Hydrogen drum kits, festival's singing mode and, when present, real recordings read by path, then
mixed per stem (EQ, compression, reverb, pan, level) with pedalboard. ``mixture.wav`` is the exact sum of the
four stems. Everything is drawn from a numpy Generator seeded per track, so the same seed writes the same bytes.

Examples
--------
>>> from stemsplit.data.synth import render_dataset
>>> folders = render_dataset("corpus", tracks=8, seconds=10, seed=0, workers=2)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import DependencyError, OptionError
from ._synth_compose import VOICE_PROGRAMS, Note, Song, compose
from ._synth_sources import FluidRenderer, hydrogen_kits, load_audio, pitch_warp, sing_festival

__all__ = ["SynthConfig", "SynthError", "STEMS", "render_track", "render_dataset", "available", "require_tools"]

STEMS = ("vocals", "drums", "bass", "other")

_GM_DRUM_KITS = (0, 0, 8, 16, 24, 25, 32, 40)  # Standard, Room, Power, Electronic, TR-808, Jazz, Brush
_FESTIVAL_VOICES = ("kal_diphone", "ked_diphone")
_FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices/english")

# Real recordings (relative to real_data_root) and the stem they may stand in for. Accompaniments that hold
# drums or bass (mir1k *_music, the drum-bass excerpt, Vibe Ace) are deliberately absent: their stem is unknown.
_REAL_VOCALS = ("real-material/vocals-isolated/singing-female.wav", "real-material/vocals-isolated/soprano-E4.wav",
                "real-material/vocals-isolated/carnatic.wav", "real-material/vocals-isolated/vignesh.wav",
                "real-material/mir1k-pairs/*_vocal.wav")
_REAL_SPEECH = ("real-material/speech/*.ogg", "real-material/vocals-isolated/speech-female.wav",
                "real-material/vocals-isolated/speech-male.wav")
_REAL_OTHER_BEDS = ("real-material/instrumental/147793__setuniman__sweet-waltz-0i-22mi.ogg",
                    "real-material/instrumental/442789__lena-orsa__happy-music-pistachio-ice-cream-ragtime.ogg",
                    "real-material/instrumental/Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
                    "real-material/instrumental/Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg",
                    "real-material/instrumental/sorohanro_-_solo-trumpet-06.ogg")
_REAL_OTHER_SOLO = tuple(f"real-material/vocals-isolated/{n}.wav" for n in (
    "cello-double", "cello-double-2", "cello-phrase", "flute-A4", "oboe-A4", "orchestra", "organ-C3", "piano",
    "sax-phrase", "sax-phrase-short", "trumpet-A4", "vibraphone-C6", "violin-B3"))
_REAL_DRUMS = ("real-material/vocals-isolated/bendir.wav", "real-material/vocals-isolated/mridangam.wav")


class SynthError(DependencyError, RuntimeError):
    """A program, soundfont or package the corpus renderer needs is missing or failed."""


def _default_real_root() -> str | None:
    return os.environ.get("STEMSPLIT_REAL_DATA") or None


@dataclass(frozen=True)
class SynthConfig:
    """Every tuning option of the corpus renderer.

    Parameters
    ----------
    sample_rate, seconds : output rate (Hz) and length of each track (s).
    test_fraction : share of tracks written to ``test/`` (at least one when there are two tracks or more).
    soundfonts : GM soundfonts; each track picks one among those present (at least one must exist).
    drumkits_dir : Hydrogen drum kits folder (Debian ``hydrogen-drumkits``); optional.
    hydrogen_kit_probability : chance a song's drums come from a Hydrogen kit instead of a soundfont kit.
    vocal_free_probability : chance a whole song is instrumental (its vocal stem is silent).
    festival_probability, gm_voice_probability : lead vocal engine odds; the rest goes to real vocals when
        ``real_data_root`` exists (else to festival).
    real_data_root : folder laid out as ``/work/shared/data`` (read by path, never copied); None disables.
    real_vocal_probability, real_other_probability : chances of mixing real recordings into a song.
    accompaniment_bandlimit_probability : chance each accompaniment stem is low-passed to 6-12 kHz, so a
        missing top octave never marks "not vocals".
    subtype : soundfile subtype of the written wavs ("FLOAT" keeps mixture == sum exact; "PCM_16" is smaller).
    """

    sample_rate: int = 44100
    seconds: float = 30.0
    test_fraction: float = 0.15
    soundfonts: tuple[str, ...] = ("/usr/share/sounds/sf2/FluidR3_GM.sf2",
                                   "/usr/share/sounds/sf2/MuseScore_General.sf2",
                                   "/usr/share/sounds/sf2/MuseScore_General.sf3")
    drumkits_dir: str = "/usr/share/hydrogen/data/drumkits"
    hydrogen_kit_probability: float = 0.35
    vocal_free_probability: float = 0.1
    no_drums_probability: float = 0.06
    festival_probability: float = 0.55
    gm_voice_probability: float = 0.2
    backing_gm_probability: float = 0.4
    real_data_root: str | None = field(default_factory=_default_real_root)
    real_vocal_probability: float = 0.25
    real_speech_probability: float = 0.1
    real_other_probability: float = 0.25
    real_drums_probability: float = 0.05
    accompaniment_bandlimit_probability: float = 0.25
    master_gain_db: tuple[float, float] = (-10.0, -0.5)
    subtype: str = "FLOAT"

    def __post_init__(self) -> None:
        if self.sample_rate < 8000:
            raise OptionError(f"sample_rate must be at least 8000 Hz, got {self.sample_rate}")
        if not self.seconds > 0:
            raise OptionError(f"seconds must be positive, got {self.seconds}")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise OptionError(f"test_fraction must be within [0, 1], got {self.test_fraction}")


# ---------------------------------------------------------------- availability
def _soundfonts(config: SynthConfig) -> list[str]:
    return [p for p in config.soundfonts if Path(p).is_file()]


def available(config: SynthConfig | None = None) -> list[str]:
    """Name what is missing to render the corpus, as Debian/PyPI packages to install; empty when ready.

    Returns
    -------
    list of str
        One entry per missing piece, e.g. ``"fluid-soundfont-gm (no soundfont at /usr/share/sounds/sf2)"``.
    """
    config = config or SynthConfig()
    missing: list[str] = []
    if importlib.util.find_spec("fluidsynth") is None:
        missing.append("pyfluidsynth (pip install pyfluidsynth)")
    else:
        try:
            import fluidsynth  # noqa: F401
        except (ImportError, OSError):
            missing.append("libfluidsynth3 (the fluidsynth library)")
    if importlib.util.find_spec("pedalboard") is None:
        missing.append("pedalboard (pip install pedalboard)")
    if not _soundfonts(config):
        missing.append(f"fluid-soundfont-gm (no soundfont among {', '.join(config.soundfonts)})")
    if shutil.which("text2wave") is None:
        missing.append("festival (text2wave)")
    if not (_FESTIVAL_VOICE_DIR / "kal_diphone").is_dir():
        missing.append("festvox-kallpc16k (festival voice kal_diphone)")
    if not (_FESTIVAL_VOICE_DIR / "ked_diphone").is_dir():
        missing.append("festvox-kdlpc16k (festival voice ked_diphone)")
    return missing


def require_tools(config: SynthConfig) -> None:
    """Raise :class:`SynthError` naming every missing package (and how to install them) unless all are here."""
    missing = available(config)
    if missing:
        raise SynthError("cannot render the synthetic corpus; missing: " + "; ".join(missing)
                         + ". In a stemsplit checkout, bash scripts/install-system-deps.sh --synth installs the "
                         "Debian packages (libfluidsynth3 fluid-soundfont-gm festival festvox-kallpc16k "
                         "festvox-kdlpc16k hydrogen-drumkits) and pip install 'stemsplit[synth]' the Python ones")


# ---------------------------------------------------------------- helpers
def _db(x: float) -> float:
    return float(10.0 ** (x / 20.0))


def _rms(x: np.ndarray) -> float:
    active = np.abs(x) > 1e-4
    if not active.any():
        return 0.0
    return float(np.sqrt(np.mean(np.square(x[active], dtype=np.float64))))


def _normalize(x: np.ndarray, target: float = 0.1) -> np.ndarray:
    r = _rms(x)
    return x if r == 0.0 else (x * (target / r)).astype(np.float32)


def _pan(mono: np.ndarray, pan: float) -> np.ndarray:
    """Equal-power pan of a mono signal, pan in [-1, 1]."""
    a = (pan + 1.0) * np.pi / 4.0
    return np.stack([mono * np.cos(a), mono * np.sin(a)]).astype(np.float32)


def _stereo_width(x: np.ndarray, width: float) -> np.ndarray:
    mid = 0.5 * (x[0] + x[1])
    side = 0.5 * (x[0] - x[1]) * width
    return np.stack([mid + side, mid - side]).astype(np.float32)


def _fit(x: np.ndarray, total: int) -> np.ndarray:
    if x.shape[-1] >= total:
        return x[..., :total]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, total - x.shape[-1])]
    return np.pad(x, pad)


def _fade(x: np.ndarray, sr: int, seconds: float = 0.03) -> np.ndarray:
    n = min(int(seconds * sr), x.shape[-1] // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x = x.copy()
        x[..., :n] *= ramp
        x[..., -n:] *= ramp[::-1]
    return x


def _glob(root: Path, patterns: tuple[str, ...]) -> list[Path]:
    found: list[Path] = []
    for pat in patterns:
        found += sorted(root.glob(pat))
    return [p for p in found if p.is_file()]


def _excerpt(rng: np.random.Generator, path: Path, sr: int, length: int) -> np.ndarray:
    """A random `length`-sample stretch (looped if short) of a real recording, as (2, length)."""
    x = load_audio(path, sr)
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    x = x[:2]
    if x.shape[1] < length:
        reps = int(np.ceil(length / x.shape[1]))
        x = np.concatenate([_fade(x, sr, 0.01)] * reps, axis=1)
    start = int(rng.integers(0, x.shape[1] - length + 1))
    return _fade(np.array(x[:, start:start + length], dtype=np.float32), sr)


def _noise_burst(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """Band-limited white noise shaped by a smooth envelope (breath, sibilance)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(f < lo) | (f > hi)] = 0.0
    y = np.fft.irfft(spec, n)
    env = np.sin(np.linspace(0.0, np.pi, n)) ** 1.5
    y = y * env
    peak = np.abs(y).max()
    return (y / peak if peak > 0 else y).astype(np.float32)


# ---------------------------------------------------------------- vocals
_SIBILANT_START = ("s", "sh", "ch", "f", "th", "z", "t", "k", "j")
_SIBILANT_END = ("s", "t", "ch", "sh", "ss", "ts", "ks")


def _articulate(rng: np.random.Generator, voice: np.ndarray, notes: list[Note], sr: int) -> np.ndarray:
    """Add full-band breaths before phrases and sibilant/plosive noise on consonants (mono in, mono out)."""
    out = voice.copy()
    level = _rms(voice) or 0.05
    breath_db = float(rng.uniform(-30, -18))
    sib_db = float(rng.uniform(-22, -10))
    prev_end = -1.0
    total = len(out)
    for n in notes:
        gap = n.start - prev_end
        if gap > 0.35 and rng.random() < 0.8:
            d = float(rng.uniform(0.15, min(0.45, gap - 0.05)))
            a = int((n.start - d - 0.02) * sr)
            m = int(d * sr)
            if a >= 0 and a + m <= total:
                out[a:a + m] += _noise_burst(rng, m, sr, 300.0, float(rng.uniform(9000, 18000))) * level * _db(breath_db) * 3
        w = n.text.lower()
        on = int(n.start * sr)
        if w.startswith(_SIBILANT_START) and rng.random() < 0.9:
            m = int(rng.uniform(0.04, 0.11) * sr)
            if on + m <= total:
                out[on:on + m] += _noise_burst(rng, m, sr, float(rng.uniform(3500, 6000)), 19000.0) * level * _db(sib_db) * 3
        if w.endswith(_SIBILANT_END) and rng.random() < 0.8:
            m = int(rng.uniform(0.05, 0.12) * sr)
            off = int((n.start + n.dur) * sr) - m // 2
            if 0 <= off and off + m <= total:
                out[off:off + m] += _noise_burst(rng, m, sr, float(rng.uniform(4000, 7000)), 19000.0) * level * _db(sib_db) * 3
        prev_end = n.start + n.dur
    return out


def _air(rng: np.random.Generator, x: np.ndarray, sr: int) -> np.ndarray:
    """Exciter: saturation harmonics high-passed above ~7 kHz, so band-limited voices gain a real top octave."""
    from pedalboard import HighpassFilter, Pedalboard

    peak = np.abs(x).max()
    if peak == 0:
        return x
    drive = float(rng.uniform(2.0, 6.0))
    harm = np.tanh(drive * x / peak).astype(np.float32)
    hp = Pedalboard([HighpassFilter(cutoff_frequency_hz=float(rng.uniform(6500, 8500))),
                     HighpassFilter(cutoff_frequency_hz=7000.0)])
    hf = hp(harm[None, :], sr)[0]
    hr = _rms(hf)
    if hr == 0:
        return x
    return (x + hf * (_rms(x) / hr) * _db(float(rng.uniform(-30, -18)))).astype(np.float32)


def _expressive(rng: np.random.Generator, x: np.ndarray, sr: int, shift: float = 0.0) -> np.ndarray:
    return pitch_warp(x, sr, rng, vibrato_cents=float(rng.uniform(15, 70)), vibrato_hz=float(rng.uniform(4.5, 6.8)),
                      drift_cents=float(rng.uniform(5, 30)), shift_semitones=shift)


def _sing(rng: np.random.Generator, notes: list[Note], engine: str, voice_or_prog, fr: FluidRenderer,
          total: int, sr: int) -> np.ndarray:
    """One vocal line as mono: festival diphone singing or a GM voice patch, with vibrato and drift."""
    if engine == "festival":
        # festival tops out near 500 Hz and sounds like a low male voice: sing the line lower and slower, then
        # resample it up, which restores the timing and raises pitch and formants together (a smaller singer).
        top = max(n.pitch for n in notes)
        shift = max(0, top - 67) + int(rng.choice([0, 0, 0, 2, 3, 4, 5]))
        ratio = 2.0 ** (shift / 12.0)
        slow = [Note(n.start * ratio, n.dur * ratio, n.pitch - shift, n.vel, n.text) for n in notes]
        long_total = int(total * ratio) + 1
        try:
            x = sing_festival(slow, str(voice_or_prog), long_total, sr)
        except RuntimeError:
            # festival refuses some inputs; a GM voice keeps the song rather than dropping it
            x = fr.render_notes(slow, int(VOICE_PROGRAMS[0]), long_total).mean(axis=0)
        if shift:
            x = pitch_warp(x, sr, rng, vibrato_cents=0.0, vibrato_hz=5.0, drift_cents=0.0, shift_semitones=shift)
        return _expressive(rng, _fit(x, total), sr)
    x = fr.render_notes(notes, int(voice_or_prog), total, modwheel=int(rng.integers(0, 50))).mean(axis=0)
    return _expressive(rng, x, sr)


def _vocals(rng: np.random.Generator, song: Song, config: SynthConfig, fr: FluidRenderer, total: int,
            real: Path | None) -> list[tuple[np.ndarray, float]]:
    """Render the vocal sources as (mono signal, pan) pairs."""
    sr = config.sample_rate
    sources: list[tuple[np.ndarray, float]] = []
    if not song.lead:
        return sources
    lead_notes = [n for n in song.lead if n.start * sr < total]
    real_vocals = _glob(real, _REAL_VOCALS) if real else []
    u = rng.random()
    if real_vocals and u < config.real_vocal_probability:
        engine = "real"
    elif u < config.real_vocal_probability + config.festival_probability or not real_vocals:
        engine = "festival" if rng.random() < config.festival_probability / (
            config.festival_probability + config.gm_voice_probability) else "gm"
    else:
        engine = "gm"
    voice = str(rng.choice(_FESTIVAL_VOICES))
    if engine == "real":
        lead = np.zeros(total, dtype=np.float32)
        for sec in song.sections:
            if not sec.vocals:
                continue
            a = int(sec.start * sr)
            b = min(total, int(sec.end * sr))
            if b - a < sr // 4:
                continue
            clip = _excerpt(rng, real_vocals[int(rng.integers(len(real_vocals)))], sr, b - a).mean(axis=0)
            lead[a:b] += _normalize(clip)
    else:
        lead = _sing(rng, lead_notes, engine, voice if engine == "festival" else int(rng.choice(VOICE_PROGRAMS)),
                     fr, total, sr)
        lead = _articulate(rng, _normalize(lead), lead_notes, sr)
    if real and rng.random() < config.real_speech_probability:
        speech = _glob(real, _REAL_SPEECH)
        free = [s for s in song.sections if not s.vocals and s.end - s.start > 1.5 and s.start * sr < total]
        if speech and free:
            sec = free[int(rng.integers(len(free)))]
            a = int(sec.start * sr)
            b = min(total, int(sec.end * sr))
            lead[a:b] += _normalize(_excerpt(rng, speech[int(rng.integers(len(speech)))], sr, b - a).mean(axis=0), 0.08)
    sources.append((_air(rng, _normalize(lead), sr), float(rng.uniform(-0.1, 0.1))))
    if song.harmony:
        harm_notes = [n for n in song.harmony if n.start * sr < total]
        if harm_notes:
            if rng.random() < config.backing_gm_probability:
                h = _sing(rng, harm_notes, "gm", int(rng.choice(VOICE_PROGRAMS)), fr, total, sr)
            else:
                other_voice = _FESTIVAL_VOICES[1 - _FESTIVAL_VOICES.index(voice)]
                h = _sing(rng, harm_notes, "festival", other_voice, fr, total, sr)
                h = _articulate(rng, _normalize(h), harm_notes, sr)
            h = _air(rng, _normalize(h, float(rng.uniform(0.03, 0.07))), sr)
            side = float(rng.uniform(0.3, 0.8))
            # backing doubled left and right with slightly different delays, as a stacked harmony
            d = int(rng.uniform(0.008, 0.025) * sr)
            sources.append((h, -side))
            sources.append((np.concatenate([np.zeros(d, np.float32), h[:-d]]) * 0.9, side))
    return sources


# ---------------------------------------------------------------- effects
def _chain(rng: np.random.Generator, stem: str, sr: int, bandlimit: bool):
    """A random pedalboard channel strip for one stem."""
    from pedalboard import (
        Chorus,
        Compressor,
        Distortion,
        HighpassFilter,
        HighShelfFilter,
        LowpassFilter,
        LowShelfFilter,
        PeakFilter,
        Pedalboard,
        Reverb,
    )

    fx = [HighpassFilter(cutoff_frequency_hz=float(rng.uniform(20, 40) if stem in ("bass", "drums")
                                                   else rng.uniform(40, 140)))]
    fx.append(LowShelfFilter(cutoff_frequency_hz=float(rng.uniform(80, 250)), gain_db=float(rng.uniform(-4, 4))))
    fx.append(PeakFilter(cutoff_frequency_hz=float(np.exp(rng.uniform(np.log(200), np.log(5000)))),
                         gain_db=float(rng.uniform(-6, 6)), q=float(rng.uniform(0.5, 2.0))))
    fx.append(HighShelfFilter(cutoff_frequency_hz=float(rng.uniform(4000, 10000)), gain_db=float(rng.uniform(-4, 5))))
    if stem == "other" and rng.random() < 0.15:
        fx.append(Distortion(drive_db=float(rng.uniform(5, 20))))
    if stem == "other" and rng.random() < 0.2:
        fx.append(Chorus(rate_hz=float(rng.uniform(0.3, 2.0)), depth=float(rng.uniform(0.1, 0.4)), mix=0.4))
    if rng.random() < 0.8:
        fx.append(Compressor(threshold_db=float(rng.uniform(-30, -10)), ratio=float(rng.uniform(1.5, 6)),
                             attack_ms=float(rng.uniform(1, 30)), release_ms=float(rng.uniform(40, 300))))
    if bandlimit:
        fx.append(LowpassFilter(cutoff_frequency_hz=float(rng.uniform(6000, 12000))))
        fx.append(LowpassFilter(cutoff_frequency_hz=float(rng.uniform(6000, 12000))))
    wet = {"vocals": (0.08, 0.35), "drums": (0.0, 0.15), "bass": (0.0, 0.06), "other": (0.05, 0.35)}[stem]
    if rng.random() < 0.85:
        w = float(rng.uniform(*wet))
        fx.append(Reverb(room_size=float(rng.uniform(0.2, 0.9)), damping=float(rng.uniform(0.2, 0.8)),
                         wet_level=w, dry_level=1.0 - 0.5 * w, width=float(rng.uniform(0.6, 1.0))))
    return Pedalboard(fx)


def _master_eq(rng: np.random.Generator):
    """A linear master EQ applied identically to every stem, so the mixture stays their exact sum."""
    from pedalboard import HighShelfFilter, LowShelfFilter, Pedalboard

    return Pedalboard([LowShelfFilter(cutoff_frequency_hz=float(rng.uniform(60, 200)), gain_db=float(rng.uniform(-2, 2))),
                       HighShelfFilter(cutoff_frequency_hz=float(rng.uniform(5000, 12000)),
                                       gain_db=float(rng.uniform(-3, 3)))])


# ---------------------------------------------------------------- one track
def render_track(seed: int, config: SynthConfig) -> dict[str, np.ndarray]:
    """Compose, render and mix one song.

    Parameters
    ----------
    seed : int
        Seeds the track's numpy Generator; the same seed and config give identical arrays.
    config : SynthConfig
        Length, rate and every tuning option.

    Returns
    -------
    dict of str to np.ndarray
        ``{'vocals', 'drums', 'bass', 'other'}``, each float32 shaped ``(2, samples)`` with
        ``samples == round(config.seconds * config.sample_rate)``; their sum peaks below 0.99.

    Raises
    ------
    SynthError
        When fluidsynth, a soundfont, festival or pedalboard is missing.
    """
    require_tools(config)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x53594E54]))
    sr = config.sample_rate
    total = int(round(config.seconds * sr))
    song = compose(rng, config.seconds, vocal_free_probability=config.vocal_free_probability,
                   no_drums_probability=config.no_drums_probability)
    fonts = _soundfonts(config)
    font = fonts[int(rng.integers(len(fonts)))]
    real = Path(config.real_data_root) if config.real_data_root and Path(config.real_data_root).is_dir() else None
    layers: dict[str, list[np.ndarray]] = {s: [] for s in STEMS}
    with FluidRenderer(font, sr) as fr:
        # drums
        kits = hydrogen_kits(config.drumkits_dir) if config.hydrogen_kit_probability > 0 else ()
        if song.drums:
            if kits and rng.random() < config.hydrogen_kit_probability:
                kit = kits[int(rng.integers(len(kits)))]
                drums = kit.render(song.drums, total, sr, rng)
            else:
                drums = fr.render_drums(song.drums, int(rng.choice(_GM_DRUM_KITS)), total)
            layers["drums"].append(_stereo_width(_normalize(drums, 0.12), float(rng.uniform(0.5, 1.3))))
        if real and rng.random() < config.real_drums_probability:
            perc = _glob(real, _REAL_DRUMS)
            if perc:
                x = _excerpt(rng, perc[int(rng.integers(len(perc)))], sr, total).mean(axis=0)
                layers["drums"].append(_pan(_normalize(x, 0.05), float(rng.uniform(-0.7, 0.7))))
        # bass
        if song.bass.notes:
            b = fr.render_notes(song.bass.notes, song.bass.program, total).mean(axis=0)
            layers["bass"].append(_pan(_normalize(b, 0.12), float(rng.uniform(-0.1, 0.1))))
        # other: every accompaniment part panned on its own
        for part in song.others:
            if not part.notes:
                continue
            x = fr.render_notes(part.notes, part.program, total, expression=int(rng.integers(90, 127)))
            x = _stereo_width(x, float(rng.uniform(0.3, 1.2)))
            level = 0.08 if part.name.startswith("comp") else float(rng.uniform(0.05, 0.09))
            a = (float(rng.uniform(-0.8, 0.8)) + 1.0) * np.pi / 4.0
            x = _normalize(x, level) * np.array([[np.cos(a)], [np.sin(a)]], dtype=np.float32) * np.float32(np.sqrt(2))
            layers["other"].append(x.astype(np.float32))
        if real:
            instrumental = not song.lead
            if rng.random() < (0.6 if instrumental else config.real_other_probability):
                beds = _glob(real, _REAL_OTHER_BEDS if instrumental or rng.random() < 0.4 else _REAL_OTHER_SOLO)
                if beds:
                    x = _excerpt(rng, beds[int(rng.integers(len(beds)))], sr, total)
                    layers["other"].append(_normalize(x, float(rng.uniform(0.04, 0.1))))
        # vocals
        for mono, pan in _vocals(rng, song, config, fr, total, real):
            layers["vocals"].append(_pan(mono, pan))
    stems: dict[str, np.ndarray] = {}
    master = _master_eq(rng)
    levels_db = {"vocals": rng.uniform(0, 5), "drums": rng.uniform(-3, 3), "bass": rng.uniform(-4, 2),
                 "other": rng.uniform(-4, 2)}
    for name in STEMS:
        if not layers[name]:
            stems[name] = np.zeros((2, total), dtype=np.float32)
            continue
        x = np.sum(layers[name], axis=0).astype(np.float32)
        bandlimit = name != "vocals" and rng.random() < config.accompaniment_bandlimit_probability
        x = _chain(rng, name, sr, bandlimit)(x, sr)
        x = master(x, sr)
        stems[name] = np.ascontiguousarray(_fit(x, total) * np.float32(_db(float(levels_db[name]))), dtype=np.float32)
    mix = _mixture(stems)
    peak = float(np.abs(mix).max())
    gain = _db(float(rng.uniform(*config.master_gain_db))) / max(peak, 1e-9) * 0.98
    gain = min(gain, 0.98 / max(peak, 1e-9))
    return {k: (v * np.float32(gain)).astype(np.float32) for k, v in stems.items()}


def _mixture(stems: dict[str, np.ndarray]) -> np.ndarray:
    """The mixture as the float32 sum of the stems, in STEMS order (so readers can reproduce it bit for bit)."""
    mix = np.zeros_like(stems[STEMS[0]])
    for name in STEMS:
        mix = mix + stems[name]
    return mix


# ---------------------------------------------------------------- dataset
def _track_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


def _split(tracks: int, seed: int, fraction: float) -> set[int]:
    n_test = int(round(tracks * fraction))
    if tracks >= 2 and fraction > 0:
        n_test = max(1, n_test)
    n_test = min(n_test, tracks - 1) if tracks >= 2 else 0
    perm = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5E57])).permutation(tracks)
    return {int(i) for i in perm[:n_test]}


_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # from sndfile.h


def _write_wav(path: Path, x: np.ndarray, sr: int, subtype: str) -> None:
    """Write (channels, samples) float32; float wavs without libsndfile's PEAK chunk, which holds a timestamp."""
    with sf.SoundFile(path, "w", samplerate=sr, channels=x.shape[0], subtype=subtype, format="WAV") as f:
        try:
            sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
        except AttributeError:  # a future soundfile without these internals: files still valid, just stamped
            pass
        f.write(x.T)


def _write_track(job: tuple[int, int, str, SynthConfig]) -> tuple[int, str]:
    index, seed, folder, config = job
    stems = render_track(seed, config)
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for name in STEMS:
        _write_wav(path / f"{name}.wav", stems[name], config.sample_rate, config.subtype)
    _write_wav(path / "mixture.wav", _mixture(stems), config.sample_rate, config.subtype)
    return index, folder


def render_dataset(out: str | os.PathLike, *, tracks: int, seconds: float, seed: int,
                   config: SynthConfig | None = None, progress: Callable[[int, int], None] | None = None,
                   workers: int = 1) -> list[Path]:
    """Write a MUSDB18-layout corpus: ``out/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav``.

    Parameters
    ----------
    out : path
        Dataset root (created if needed; existing tracks of the same name are overwritten).
    tracks, seconds, seed : int, float, int
        Number of songs, length of each (overrides ``config.seconds``) and the dataset seed. Track ``i`` is
        rendered from a seed derived from ``(seed, i)``, so the same arguments write byte-identical files
        whatever ``workers`` is.
    config : SynthConfig, optional
        Tuning options; defaults to ``SynthConfig()``.
    progress : callable, optional
        Called as ``progress(done, tracks)`` after each written track.
    workers : int
        Processes rendering tracks in parallel.

    Returns
    -------
    list of Path
        The track folders, in track order. Names are ``synth-<seed>-<index>``.
    """
    if tracks < 1:
        raise OptionError(f"tracks must be at least 1, got {tracks}")
    if workers < 1:
        raise OptionError(f"workers must be at least 1, got {workers}")
    config = replace(config or SynthConfig(), seconds=float(seconds))
    require_tools(config)
    root = Path(out)
    test = _split(tracks, seed, config.test_fraction)
    jobs = []
    for i in range(tracks):
        subset = "test" if i in test else "train"
        jobs.append((i, _track_seed(seed, i), str(root / subset / f"synth-{seed}-{i:05d}"), config))
    folders: dict[int, Path] = {}
    if workers == 1 or tracks == 1:
        for job in jobs:
            i, folder = _write_track(job)
            folders[i] = Path(folder)
            if progress:
                progress(len(folders), tracks)
    else:
        # spawn: the parent may hold JAX/threads that do not survive fork
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, tracks)) as pool:
            for i, folder in pool.imap_unordered(_write_track, jobs):
                folders[i] = Path(folder)
                if progress:
                    progress(len(folders), tracks)
    return [folders[i] for i in range(tracks)]
