"""Sound sources for the synthetic corpus: fluidsynth, Hydrogen drum kits, festival singing, real recordings."""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ._synth_compose import DRUM_GM_KEYS, Hit, Note

__all__ = [
    "FluidRenderer", "HydrogenKit", "hydrogen_kits", "sing_festival", "pitch_warp", "load_audio", "resample",
]

_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling along the last axis."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    g = np.gcd(int(sr_in), int(sr_out))
    return resample_poly(x, sr_out // g, sr_in // g, axis=-1).astype(np.float32)


@functools.lru_cache(maxsize=256)
def _load_cached(path: str, sr: int) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    x = resample(np.ascontiguousarray(data.T), rate, sr)
    x.setflags(write=False)
    return x


def load_audio(path: str | os.PathLike, sr: int) -> np.ndarray:
    """Read a file as float32 (channels, samples) at `sr` (cached per process, read-only)."""
    return _load_cached(str(path), int(sr))


# ---------------------------------------------------------------- fluidsynth
class FluidRenderer:
    """Deterministic offline renderer over libfluidsynth: note lists in, float32 stereo out.

    Make a fresh one per track: a synth that has rendered before differs in the last bits of later renders
    (measured), so a track's samples would depend on which tracks a worker rendered earlier. With dynamic sample
    loading a fresh synth costs ~20 ms. Its own reverb/chorus are off (the mixer adds effects).
    """

    def __init__(self, soundfont: str, sample_rate: int) -> None:
        import fluidsynth  # pyfluidsynth: binds the system libfluidsynth

        self._fs = fluidsynth.Synth(gain=0.5, samplerate=float(sample_rate), channels=16,
                                    **{"synth.reverb.active": 0, "synth.chorus.active": 0,
                                       "synth.polyphony": 512, "synth.cpu-cores": 1,
                                       "synth.dynamic-sample-loading": 1, "synth.lock-memory": 0})
        self._sfid = self._fs.sfload(soundfont)
        if self._sfid < 0:
            raise RuntimeError(f"fluidsynth could not load the soundfont {soundfont}")
        self.sample_rate = int(sample_rate)
        self._write = fluidsynth._fl.fluid_synth_write_float
        self._write.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self._write.restype = ctypes.c_int
        self._synth_ptr = ctypes.cast(self._fs.synth, ctypes.c_void_p)
        self._written = 0  # samples pulled since creation: fluidsynth renders in 64-sample blocks

    def _pull(self, left: np.ndarray, right: np.ndarray, n: int) -> None:
        self._write(self._synth_ptr, n, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
        self._written += n

    def close(self) -> None:
        """Free the synth (and its soundfont)."""
        self._fs.delete()

    def __enter__(self) -> FluidRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _render_events(self, events: list[tuple[int, int, tuple]], total: int) -> np.ndarray:
        out = np.zeros((2, total), dtype=np.float32)
        pos = 0
        events.sort(key=lambda e: (e[0], e[1]))
        fs = self._fs

        def run(upto: int) -> None:
            nonlocal pos
            while pos < upto:
                n = min(upto - pos, 65536)
                left = out[0, pos:pos + n]
                right = out[1, pos:pos + n]
                self._pull(left, right, n)
                pos += n

        for t, _order, ev in events:
            if t >= total:
                break  # later events would pile up unrendered in fluidsynth's event queue
            run(max(t, 0))
            kind = ev[0]
            if kind == "on":
                fs.noteon(ev[1], ev[2], ev[3])
            elif kind == "off":
                fs.noteoff(ev[1], ev[2])
            elif kind == "cc":
                fs.cc(ev[1], ev[2], ev[3])
            elif kind == "bend":
                fs.pitch_bend(ev[1], ev[2])
        run(total)
        for ch in range(16):
            fs.all_sounds_off(ch)
        fs.system_reset()
        # Drain fluidsynth's internal 64-sample block and every voice so that the next part starts block-aligned
        # from silence: without this, output depends on what was rendered before.
        scratch = np.zeros(4096, dtype=np.float32)
        pad = (-self._written) % 64 + 1024
        self._pull(scratch, scratch, pad)
        for _ in range(200):
            if fs.get_active_voice_count() == 0:
                break
            self._pull(scratch, scratch, 1024)
        return out

    def render_notes(self, notes: list[Note], program: int, total: int, *, bank: int = 0,
                     expression: int = 110, modwheel: int = 0) -> np.ndarray:
        """Render a melodic part on channel 0 with GM `program`; returns (2, total)."""
        sr = self.sample_rate
        self._fs.program_select(0, self._sfid, bank, program)
        events: list[tuple[int, int, tuple]] = [(0, 0, ("cc", 0, 11, expression)), (0, 0, ("cc", 0, 1, modwheel))]
        for n in notes:
            on = int(round(n.start * sr))
            off = int(round((n.start + n.dur) * sr))
            events.append((on, 2, ("on", 0, int(n.pitch), int(n.vel))))
            events.append((max(off, on + 1), 1, ("off", 0, int(n.pitch))))
        return self._render_events(events, total)

    def render_drums(self, hits: list[Hit], kit_program: int, total: int) -> np.ndarray:
        """Render drum hits on the GM percussion channel (10) with the soundfont kit `kit_program`."""
        sr = self.sample_rate
        self._fs.program_select(9, self._sfid, 128, kit_program)
        events: list[tuple[int, int, tuple]] = []
        for h in hits:
            key = DRUM_GM_KEYS[h.role]
            on = int(round(h.start * sr))
            events.append((on, 2, ("on", 9, key, int(h.vel))))
            events.append((on + int(0.2 * sr), 1, ("off", 9, key)))
        return self._render_events(events, total)


# ---------------------------------------------------------------- Hydrogen kits
_ROLE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hat_open", ("open hh", "hat open", "hh open", "hi hat opened", "hat 1 op", "hihat open", "open hat", "hat semi-open", "hi-hat open", "ohh")),
    ("hat_pedal", ("pedal", "hat 1 pd", "hat pd")),
    ("hat", ("closed hh", "hat closed", "hh closed", "hi hat closed", "hat 1 cl", "hihat closed", "closed hat", "hi-hat closed", "hh", "hat")),
    ("kick", ("kick", "bassdrum", "bass drum", "bd")),
    ("rim", ("stick", "rim")),
    ("clap", ("clap",)),
    ("snare", ("snare", "sd")),
    ("tom_low", ("tom low", "floor tom", "tom floor", "low tom", "tom lo")),
    ("tom_mid", ("tom mid", "middle tom", "mid tom", "tom 2")),
    ("tom_high", ("tom hi", "tom high", "high tom", "tom 1", "tom")),
    ("crash", ("crash",)),
    ("ride", ("ride",)),
    ("cowbell", ("cowbell",)),
    ("tambourine", ("tambourine",)),
    ("shaker", ("shaker", "maraca", "shake")),
)


class HydrogenKit:
    """A Hydrogen drum kit folder mapped onto drum roles; velocity layers choose the sample."""

    def __init__(self, folder: Path, roles: dict[str, list[tuple[float, float, Path, float]]]) -> None:
        self.folder = folder
        self.roles = roles

    @property
    def name(self) -> str:
        return self.folder.name

    def render(self, hits: list[Hit], total: int, sr: int, rng: np.random.Generator) -> np.ndarray:
        """Place velocity-layered samples at the hit times; roles the kit lacks fall back to similar ones."""
        out = np.zeros((2, total), dtype=np.float32)
        fallback = {"hat_pedal": "hat", "hat_open": "hat", "ride": "hat_open", "ride_bell": "ride", "rim": "snare",
                    "clap": "snare", "tom_mid": "tom_high", "tom_low": "tom_mid", "tom_high": "tom_mid",
                    "tambourine": "hat", "shaker": "hat", "cowbell": "rim", "crash": "ride", "conga": "tom_high",
                    "bongo": "tom_high", "clave": "rim"}
        for h in hits:
            role = h.role
            for _ in range(4):
                if role in self.roles:
                    break
                role = fallback.get(role, "snare")
            layers = self.roles.get(role)
            if not layers:
                continue
            v = h.vel / 127.0
            cands = [lay for lay in layers if lay[0] <= v <= lay[1]] or layers
            _, _, path, gain = cands[int(rng.integers(len(cands)))]
            x = load_audio(path, sr)
            if x.shape[0] == 1:
                x = np.repeat(x, 2, axis=0)
            on = int(round(h.start * sr))
            if on >= total:
                continue
            n = min(x.shape[1], total - on)
            out[:, on:on + n] += x[:2, :n] * (gain * (0.35 + 0.65 * v))
        return out


def _parse_kit(folder: Path) -> HydrogenKit | None:
    try:
        root = ET.parse(folder / "drumkit.xml").getroot()
    except (OSError, ET.ParseError):
        return None
    strip = lambda tag: tag.rsplit("}", 1)[-1]  # noqa: E731
    roles: dict[str, list] = {}
    for inst in root.iter():
        if strip(inst.tag) != "instrument":
            continue
        name = ""
        layers = []
        for el in inst.iter():
            t = strip(el.tag)
            if t == "name" and not name:
                name = (el.text or "").strip().lower()
            if t == "layer":
                vals = {strip(c.tag): (c.text or "").strip() for c in el}
                fn = vals.get("filename")
                if fn and (folder / fn).is_file():
                    try:
                        layers.append((float(vals.get("min", 0)), float(vals.get("max", 1)), folder / fn,
                                       float(vals.get("gain", 1))))
                    except ValueError:
                        continue
        if not layers or not name:
            continue
        for role, words in _ROLE_WORDS:
            if any(w in name for w in words):
                roles.setdefault(role, []).extend(layers)
                break
    if not all(r in roles for r in ("kick", "snare", "hat")):
        return None
    return HydrogenKit(folder, roles)


@functools.lru_cache(maxsize=4)
def hydrogen_kits(root: str) -> tuple[HydrogenKit, ...]:
    """Usable kits (having kick, snare and hi-hat) under a Hydrogen drumkits folder, sorted by name."""
    base = Path(root)
    if not base.is_dir():
        return ()
    kits = [_parse_kit(d) for d in sorted(base.iterdir()) if (d / "drumkit.xml").is_file()]
    return tuple(k for k in kits if k is not None)


# ---------------------------------------------------------------- festival singing
def _festival_note(midi: int) -> str:
    # festival's singing mode names notes one octave above MIDI convention ("C5" is MIDI 60)
    return f"{_NAMES[midi % 12]}{midi // 12}"


def _clean_word(text: str) -> str:
    w = "".join(ch for ch in text.lower() if ch.isalpha() or ch == "'")
    return w or "la"


def festival_xml(notes: list[Note], *, max_midi: int = 70) -> tuple[str, float]:
    """Singing-mode XML for a monophonic line; returns (xml, seconds of leading rest)."""
    lines = ['<?xml version="1.0"?>',
             '<!DOCTYPE SINGING PUBLIC "-//SINGING//DTD SINGING mark up//EN" "Singing.v0_1.dtd" []>',
             '<SINGING BPM="60">']
    t = 0.0
    lead = notes[0].start if notes else 0.0
    t = lead
    for n in notes:
        gap = n.start - t
        if gap > 0.02:
            lines.append(f'<REST SECONDS="{gap:.3f}"></REST>')
        p = int(n.pitch)
        while p > max_midi:
            p -= 12
        lines.append(f'<DURATION SECONDS="{n.dur:.3f}"><PITCH NOTE="{_festival_note(p)}">{_clean_word(n.text)}'
                     f"</PITCH></DURATION>")
        t = n.start + n.dur
    lines.append("</SINGING>")
    return "\n".join(lines) + "\n", lead


def sing_festival(notes: list[Note], voice: str, total: int, sr: int) -> np.ndarray:
    """Sing a line with festival's singing mode; returns mono float32 (total,) at `sr`, aligned to note times.

    festival renders the line from its first note; timing drift against the score is small and the stems are
    built from what was rendered, so alignment only matters musically.
    """
    out = np.zeros(total, dtype=np.float32)
    if not notes:
        return out
    exe = shutil.which("text2wave")
    if exe is None:
        raise RuntimeError("text2wave (Debian package festival) is not installed")
    xml, lead = festival_xml(notes)
    with tempfile.TemporaryDirectory(prefix="stemsplit-sing-") as tmp:
        src = Path(tmp) / "song.xml"
        dst = Path(tmp) / "song.wav"
        src.write_text(xml)
        cmd = [exe, "-mode", "singing", "-eval", f"(voice_{voice})", str(src), "-o", str(dst)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 or not dst.is_file():
            raise RuntimeError(f"festival failed to sing ({voice}): {proc.stderr.strip()[-300:]}")
        data, rate = sf.read(dst, dtype="float32", always_2d=True)
    y = resample(data[:, 0], rate, sr)
    on = int(round(lead * sr))
    n = max(0, min(len(y), total - on))
    out[on:on + n] = y[:n]
    return out


# ---------------------------------------------------------------- expressive pitch
def pitch_warp(x: np.ndarray, sr: int, rng: np.random.Generator, *, vibrato_cents: float, vibrato_hz: float,
               drift_cents: float, shift_semitones: float = 0.0) -> np.ndarray:
    """Time-varying resampling: vibrato + slow pitch drift (+ a constant shift) on a mono or (C, N) signal.

    The read position is the running sum of the instantaneous pitch ratio, so pitch bends without clicks;
    with a constant shift the signal gets shorter/longer and is zero-padded/cut to the input length.
    """
    n = x.shape[-1]
    t = np.arange(n) / sr
    cents = np.zeros(n)
    if vibrato_cents > 0:
        # vibrato fades in over the first ~0.4 s of each voiced stretch, approximated by a slow global LFO
        depth = vibrato_cents * (0.6 + 0.4 * np.sin(2 * np.pi * 0.17 * t + rng.uniform(0, 6.28)))
        rate = vibrato_hz * (1 + 0.05 * np.sin(2 * np.pi * 0.23 * t + rng.uniform(0, 6.28)))
        phase = 2 * np.pi * np.cumsum(rate) / sr
        cents += depth * np.sin(phase + rng.uniform(0, 6.28))
    for _ in range(3):
        f = rng.uniform(0.05, 0.6)
        cents += drift_cents / 3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28))
    ratio = 2.0 ** ((cents + 100.0 * shift_semitones) / 1200.0)
    pos = np.concatenate([[0.0], np.cumsum(ratio[:-1])])
    pos = pos[pos < n - 1]
    xp = np.arange(n)
    if x.ndim == 1:
        y = np.interp(pos, xp, x)
    else:
        y = np.stack([np.interp(pos, xp, c) for c in x])
    out = np.zeros_like(x, dtype=np.float32)
    out[..., :y.shape[-1]] = y
    return out
