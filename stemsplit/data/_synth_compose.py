"""Arrangement generator for the synthetic corpus: tempo, key, chords, sections and note events per part."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Note", "Hit", "Part", "Section", "Song", "compose", "DRUM_GM_KEYS"]

# Scale degrees (semitones above the tonic) of the modes the songs use.
_MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}

# Progressions as scale degrees (0-based), one chord per entry.
_PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (1, 4, 0, 5), (0, 3, 0, 4), (0, 2, 3, 4),
              (3, 0, 4, 5), (0, 0, 3, 3, 0, 0, 4, 3)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (5, 6, 0, 0), (0, 5, 3, 4)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 1, 0, 6)),
    "mixolydian": ((0, 6, 3, 0), (0, 3, 6, 3), (0, 6, 0, 3)),
}

# GM percussion keys per drum role (channel 10); also the roles a Hydrogen kit is mapped onto.
DRUM_GM_KEYS: dict[str, int] = {
    "kick": 36, "snare": 38, "rim": 37, "clap": 39, "hat": 42, "hat_pedal": 44, "hat_open": 46,
    "tom_low": 45, "tom_mid": 47, "tom_high": 50, "crash": 49, "ride": 51, "ride_bell": 53,
    "tambourine": 54, "cowbell": 56, "shaker": 70, "conga": 63, "bongo": 60, "clave": 75,
}


@dataclass(frozen=True)
class Note:
    """A pitched note: onset and duration in seconds, MIDI pitch, velocity 1-127, optional syllable."""

    start: float
    dur: float
    pitch: int
    vel: int
    text: str = ""


@dataclass(frozen=True)
class Hit:
    """A drum hit: onset in seconds, role name (a key of DRUM_GM_KEYS) and velocity 1-127."""

    start: float
    role: str
    vel: int


@dataclass
class Part:
    """One instrument line: a GM program (bank 0) and its notes; `stem` names the stem it belongs to."""

    name: str
    stem: str
    program: int
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    """A song section: kind, start/end in seconds, and which layers play in it."""

    kind: str
    start: float
    end: float
    vocals: bool
    backing: bool
    drums: bool
    bass: bool


@dataclass
class Song:
    """A composed song: global musical facts plus the parts to render."""

    tempo: float
    beats_per_bar: int
    key: int
    mode: str
    seconds: float
    sections: list[Section]
    chords: list[tuple[float, float, tuple[int, ...]]]  # (start, end, MIDI pitch classes+octave of chord tones)
    drums: list[Hit]
    groove: str
    bass: Part
    others: list[Part]
    lead: list[Note]  # vocal melody, with syllables
    harmony: list[Note]  # backing vocal line (may be empty)


# ---------------------------------------------------------------- instruments
BASS_PROGRAMS = (32, 33, 33, 34, 34, 35, 36, 37, 38, 39, 43)
COMP_PROGRAMS = (0, 0, 1, 2, 4, 5, 6, 7, 11, 12, 16, 17, 18, 19, 21, 24, 25, 25, 26, 27, 27, 28, 29, 30, 46, 48,
                 49, 50, 51, 61, 62, 88, 89, 90, 91, 92, 94, 95)
LEAD_PROGRAMS = (11, 13, 22, 26, 29, 30, 40, 56, 57, 60, 64, 65, 66, 68, 71, 73, 74, 79, 80, 81, 82, 84, 87, 105)
PAD_PROGRAMS = (48, 49, 50, 51, 52, 88, 89, 91, 94, 95, 19, 61)
VOICE_PROGRAMS = (52, 53, 54)

_SYLLABLES = (
    "la", "na", "oh", "ah", "yeah", "love", "night", "baby", "heart", "go", "see", "shine", "away", "time", "sky",
    "fire", "stay", "home", "dream", "feel", "so", "high", "low", "down", "light", "day", "say", "my", "you", "me",
    "we", "run", "free", "true", "blue", "stars", "rain", "sun", "soul", "hold", "tonight", "forever", "alone",
    "again", "never", "ever", "moon", "road", "sweet", "kiss", "touch", "cry", "fly", "sing", "dance", "slow",
    "fast", "wild", "star", "ooh", "hey", "yes", "no", "still", "sister", "silence", "spirit", "steady", "shadow",
    "chase", "this", "just", "cross", "things", "cheap", "stitch", "fists", "suits", "sixty", "kiss", "tears",
)


def _choice(rng: np.random.Generator, seq):  # noqa: ANN001, ANN202
    return seq[int(rng.integers(len(seq)))]


def _chord_tones(key: int, mode: str, degree: int, seventh: bool) -> tuple[int, ...]:
    """Pitch classes (relative to C) of the diatonic triad or seventh on `degree`."""
    scale = _MODES[mode]
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    return tuple((key + scale[(degree + s) % 7] + 12 * ((degree + s) // 7)) % 12 for s in steps)


def _sections(rng: np.random.Generator, seconds: float, bar: float, instrumental: bool) -> list[Section]:
    """Lay out intro/verse/chorus/break/bridge/outro sections covering `seconds`."""
    plan: list[str] = []
    if rng.random() < 0.7:
        plan.append("intro")
    body = ["verse", "chorus", "verse", "chorus", "break", "bridge", "chorus", "chorus", "outro"]
    if rng.random() < 0.3:
        body.insert(2, "prechorus")
    plan += body
    lengths = {"intro": (2, 4), "verse": (4, 8), "prechorus": (2, 4), "chorus": (4, 8), "break": (2, 4, 8),
               "bridge": (4,), "outro": (2, 4)}
    sections: list[Section] = []
    # Start mid-song sometimes, as MUSDB excerpts do.
    if rng.random() < 0.35:
        plan = plan[int(rng.integers(1, 4)):]
    t = 0.0
    i = 0
    while t < seconds:
        kind = plan[i % len(plan)]
        i += 1
        bars = int(_choice(rng, lengths[kind]))
        end = t + bars * bar
        vocal_kind = kind in ("verse", "chorus", "prechorus", "bridge")
        vocals = (not instrumental) and vocal_kind and rng.random() < (0.8 if kind == "verse" else 0.92)
        backing = vocals and kind in ("chorus", "bridge") and rng.random() < 0.6
        drums = not (kind in ("intro", "bridge", "outro", "break") and rng.random() < 0.3)
        bass = not (kind in ("intro", "break") and rng.random() < 0.3)
        sections.append(Section(kind, t, end, vocals, backing, drums, bass))
        t = end
    return sections


# ---------------------------------------------------------------- drums
# Grooves on a 16-step (or 12-step for shuffle/waltz) grid per bar: role -> step indices.
_GROOVES: dict[str, dict[str, tuple[int, ...]]] = {
    "rock": {"kick": (0, 8), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14)},
    "rock2": {"kick": (0, 6, 8, 10), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14)},
    "pop16": {"kick": (0, 7, 8), "snare": (4, 12), "hat": tuple(range(16))},
    "disco": {"kick": (0, 4, 8, 12), "snare": (4, 12), "hat": (0, 4, 8, 12), "hat_open": (2, 6, 10, 14)},
    "halftime": {"kick": (0, 3, 10), "snare": (8,), "hat": (0, 2, 4, 6, 8, 10, 12, 14)},
    "funk": {"kick": (0, 3, 10, 13), "snare": (4, 12), "rim": (7, 15), "hat": tuple(range(16))},
    "hiphop": {"kick": (0, 3, 8, 11), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14)},
    "ride": {"kick": (0, 10), "snare": (4, 12), "ride": (0, 4, 6, 8, 12, 14), "hat_pedal": (4, 12)},
    "bossa": {"kick": (0, 6, 8, 14), "rim": (0, 6, 12, 20 % 16, 10), "shaker": tuple(range(16))},
    "punk": {"kick": (0, 4, 8, 12), "snare": (2, 6, 10, 14), "crash": (0, 4, 8, 12)},
    "reggae": {"kick": (8,), "rim": (8,), "hat": (2, 6, 10, 14)},
    "shuffle": {"kick": (0, 6), "snare": (3, 9), "hat": (0, 2, 3, 5, 6, 8, 9, 11)},  # 12 steps
    "waltz": {"kick": (0,), "snare": (4, 8), "hat": (0, 2, 4, 6, 8, 10)},  # 12 steps = 3 beats of 4
}
_TWELVE = {"shuffle", "waltz"}


def _drum_hits(rng: np.random.Generator, song_sections: list[Section], bar: float, groove: str,
               swing: float) -> list[Hit]:
    """Render the groove bar by bar with fills, crashes, velocity accents and timing jitter."""
    pattern = _GROOVES[groove]
    steps = 12 if groove in _TWELVE else 16
    step = bar / steps
    hits: list[Hit] = []
    jitter = float(rng.uniform(0.0, 0.012))
    extra = dict(pattern)
    if rng.random() < 0.3 and "tambourine" not in extra:
        extra["tambourine"] = (4, 12) if steps == 16 else (3, 9)
    ghost = rng.random() < 0.4
    for sec in song_sections:
        if not sec.drums:
            continue
        nbars = int(round((sec.end - sec.start) / bar))
        busier = sec.kind == "chorus" and rng.random() < 0.5
        for b in range(nbars):
            t0 = sec.start + b * bar
            fill = b == nbars - 1 and rng.random() < 0.55
            for role, idxs in extra.items():
                if busier and role == "hat" and rng.random() < 0.5:
                    role = "ride" if rng.random() < 0.5 else "hat_open"
                for s in idxs:
                    if fill and s >= steps // 2 and role not in ("kick",):
                        continue
                    off = s * step
                    if swing and steps == 16 and s % 2 == 1:
                        off += swing * step
                    accent = 1.0 if s % (steps // 4) == 0 else 0.8
                    vel = int(np.clip(rng.normal(100 * accent, 10), 30, 127))
                    hits.append(Hit(t0 + off + float(rng.normal(0, jitter)), role, vel))
            if ghost and steps == 16:
                for s in (6, 14):
                    if rng.random() < 0.5:
                        hits.append(Hit(t0 + s * step + float(rng.normal(0, jitter)), "snare", int(rng.integers(25, 50))))
            if b == 0 and (sec.kind in ("chorus", "verse", "bridge") or rng.random() < 0.3):
                hits.append(Hit(t0, "crash", int(rng.integers(90, 127))))
            if fill:
                toms = ("snare", "tom_high", "tom_mid", "tom_low")
                for j, s in enumerate(range(steps // 2, steps)):
                    if rng.random() < 0.8:
                        role = toms[min(3, (j * 4) // (steps // 2))] if rng.random() < 0.7 else "snare"
                        hits.append(Hit(t0 + s * step, role, int(rng.integers(70, 127))))
    return [h for h in hits if h.start >= 0.0]


# ---------------------------------------------------------------- pitched parts
def _bass_line(rng: np.random.Generator, sections: list[Section], chords, bar: float, bpb: int,
               key_low: int) -> list[Note]:
    """Follow chord roots with one of several rhythmic patterns (roots, 8ths, root-fifth, walking, funk)."""
    style = _choice(rng, ("whole", "eighths", "root5", "walk", "funk", "kick", "quarters"))
    beat = bar / bpb
    notes: list[Note] = []
    for start, end, tones in chords:
        if not any(s.bass and s.start <= start < s.end for s in sections):
            continue
        root = key_low + (tones[0] - key_low) % 12
        fifth = root + 7
        dur = end - start
        if style == "whole":
            pattern = [(0.0, dur * 0.95, root)]
        elif style == "quarters":
            pattern = [(i * beat, beat * 0.9, root) for i in range(int(round(dur / beat)))]
        elif style == "eighths":
            pattern = [(i * beat / 2, beat / 2 * 0.85, root) for i in range(int(round(2 * dur / beat)))]
        elif style == "root5":
            pattern = [(i * beat, beat * 0.9, root if i % 2 == 0 else fifth) for i in range(int(round(dur / beat)))]
        elif style == "walk":
            tones_up = [root, root + (tones[1] - tones[0]) % 12, fifth, root + 12 - 1 - int(rng.integers(0, 2))]
            pattern = [(i * beat, beat * 0.92, tones_up[i % 4]) for i in range(int(round(dur / beat)))]
        elif style == "funk":
            pattern = []
            for i in range(int(round(4 * dur / beat))):
                if i == 0 or rng.random() < 0.35:
                    p = root + (12 if rng.random() < 0.3 else 0)
                    pattern.append((i * beat / 4, beat / 4 * 0.8, p))
        else:  # kick-like syncopation
            pattern = [(0.0, beat * 1.4, root), (1.5 * beat, beat * 0.5, root), (2.5 * beat, beat * 0.9, root)]
            pattern = [p for p in pattern if p[0] < dur]
        for off, d, p in pattern:
            if start + off >= end:
                break
            while p > 55:
                p -= 12
            notes.append(Note(start + off, min(d, end - start - off), int(p), int(np.clip(rng.normal(95, 12), 40, 127))))
    return notes


def _comp(rng: np.random.Generator, chords, bar: float, bpb: int, low: int, style: str,
          skip=lambda t: False) -> list[Note]:
    """Chord accompaniment: sustained, stabs, arpeggio, strum or off-beat skank."""
    beat = bar / bpb
    notes: list[Note] = []
    for start, end, tones in chords:
        if skip(start):
            continue
        voicing = sorted(low + (pc - low) % 12 for pc in tones)
        if rng.random() < 0.4:
            voicing.append(voicing[0] + 12)
        dur = end - start
        if style == "pad":
            hits = [(0.0, dur * 0.98)]
        elif style == "stabs":
            hits = [(i * beat, beat * 0.45) for i in range(int(round(dur / beat)))]
        elif style == "skank":
            hits = [(i * beat + beat / 2, beat * 0.3) for i in range(int(round(dur / beat)))]
        elif style == "eighths":
            hits = [(i * beat / 2, beat * 0.4) for i in range(int(round(2 * dur / beat)))]
        elif style == "arp":
            k = 0
            for i in range(int(round(2 * dur / beat))):
                p = voicing[k % len(voicing)]
                k += 1
                notes.append(Note(start + i * beat / 2, beat * 0.5, p, int(np.clip(rng.normal(80, 10), 30, 127))))
            continue
        else:  # strum
            hits = [(0.0, beat * 1.9), (1.5 * beat, beat), (2.5 * beat, beat * 1.4)]
            hits = [h for h in hits if h[0] < dur]
            for off, d in hits:
                down = rng.random() < 0.6
                order = voicing if down else voicing[::-1]
                for j, p in enumerate(order):
                    notes.append(Note(start + off + j * 0.012, d, p, int(np.clip(rng.normal(85, 12), 30, 127))))
            continue
        for off, d in hits:
            vel = int(np.clip(rng.normal(80, 12), 30, 127))
            for p in voicing:
                notes.append(Note(start + off, d, p, vel))
    return notes


def _melody(rng: np.random.Generator, key: int, mode: str, chords, spans: list[tuple[float, float]], bar: float,
            bpb: int, low: int, high: int, with_text: bool, density: float = 0.75) -> list[Note]:
    """Phrase-based melody on the scale with chord tones on strong beats, stepwise motion and rests."""
    beat = bar / bpb
    scale_pcs = {(key + s) % 12 for s in _MODES[mode]}
    pitches = [p for p in range(low, high + 1) if p % 12 in scale_pcs]
    notes: list[Note] = []
    durs = (0.5, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0, 0.25) if density > 0.6 else (1.0, 1.0, 2.0, 1.5, 3.0, 0.5)
    idx = len(pitches) // 2
    for a, b in spans:
        t = a
        phrase_len = 2 * bar if rng.random() < 0.6 else bar
        while t < b - beat * 0.5:
            phrase_end = min(b, t + phrase_len - beat * float(_choice(rng, (0.5, 1.0, 1.0, 1.5))))
            # breathe before a phrase sometimes by starting late
            if rng.random() < 0.4:
                t += beat * 0.5
            while t < phrase_end:
                d = float(_choice(rng, durs)) * beat
                d = min(d, phrase_end - t)
                if d < beat * 0.2:
                    break
                chord = next((c for c in chords if c[0] <= t < c[1]), chords[-1])
                strong = abs(((t - a) / beat) % 1.0) < 0.05
                if strong and rng.random() < 0.7:
                    cands = [i for i, p in enumerate(pitches) if p % 12 in chord[2]]
                    idx = min(cands, key=lambda i: abs(i - idx) + rng.random()) if cands else idx
                else:
                    idx = int(np.clip(idx + int(_choice(rng, (-2, -1, -1, 0, 1, 1, 2, 3, -3))), 0, len(pitches) - 1))
                text = str(_choice(rng, _SYLLABLES)) if with_text else ""
                notes.append(Note(t, d * float(rng.uniform(0.85, 0.98)), pitches[idx],
                                  int(np.clip(rng.normal(90, 10), 40, 127)), text))
                t += d
            t = phrase_end + beat * float(_choice(rng, (0.5, 1.0, 0.0)))
    return notes


def harmonize(notes: list[Note], key: int, mode: str, steps: int) -> list[Note]:
    """Diatonic parallel harmony `steps` scale steps above (a third is 2)."""
    scale = _MODES[mode]
    out = []
    for n in notes:
        rel = (n.pitch - key) % 12
        deg = min(range(7), key=lambda d: abs(scale[d] - rel))
        octave_base = n.pitch - rel
        tgt = deg + steps
        p = octave_base + scale[tgt % 7] + 12 * (tgt // 7)
        out.append(Note(n.start, n.dur, p, max(1, n.vel - 10), n.text))
    return out


def compose(rng: np.random.Generator, seconds: float, *, vocal_free_probability: float = 0.1,
            no_drums_probability: float = 0.06) -> Song:
    """Compose one song of at least `seconds` seconds."""
    groove = str(_choice(rng, tuple(_GROOVES)))
    bpb = 3 if groove == "waltz" else 4
    tempo = float(rng.uniform(68, 165)) if groove not in ("hiphop", "halftime") else float(rng.uniform(70, 100))
    if groove == "punk":
        tempo = float(rng.uniform(150, 190))
    bar = 60.0 / tempo * bpb
    key = int(rng.integers(12))
    mode = str(_choice(rng, ("major", "major", "minor", "minor", "dorian", "mixolydian")))
    instrumental = rng.random() < vocal_free_probability
    sections = _sections(rng, seconds, bar, instrumental)
    total = sections[-1].end
    seventh = rng.random() < (0.7 if groove in ("ride", "bossa", "funk") else 0.2)
    # Different progressions for verse and chorus.
    progs = {k: _choice(rng, _PROGRESSIONS[mode]) for k in ("verse", "chorus", "other")}
    chords_per_bar = 2 if rng.random() < 0.2 else 1
    chords: list[tuple[float, float, tuple[int, ...]]] = []
    for sec in sections:
        prog = progs.get(sec.kind, progs["other"])
        n = int(round((sec.end - sec.start) / bar)) * chords_per_bar
        span = bar / chords_per_bar
        for i in range(n):
            deg = prog[i % len(prog)]
            chords.append((sec.start + i * span, sec.start + (i + 1) * span, _chord_tones(key, mode, deg, seventh)))
    swing = float(rng.uniform(0.2, 0.5)) if rng.random() < 0.2 else 0.0
    drums = [] if rng.random() < no_drums_probability else _drum_hits(rng, sections, bar, groove, swing)
    bass = Part("bass", "bass", int(_choice(rng, BASS_PROGRAMS)),
                _bass_line(rng, sections, chords, bar, bpb, key_low=28 + int(rng.integers(0, 8))))
    others: list[Part] = []
    n_comp = int(rng.integers(1, 4))
    styles = ("pad", "stabs", "arp", "strum", "eighths", "skank")
    for j in range(n_comp):
        prog = int(_choice(rng, PAD_PROGRAMS if j == 1 else COMP_PROGRAMS))
        style = "pad" if prog in PAD_PROGRAMS and rng.random() < 0.7 else str(_choice(rng, styles))
        low = int(rng.integers(48, 62)) if style != "pad" else int(rng.integers(50, 66))
        drop = {s.start for s in sections if rng.random() < 0.25}
        notes = _comp(rng, chords, bar, bpb, low, style,
                      skip=lambda t, drop=drop: any(s.start <= t < s.end and s.start in drop for s in sections))
        others.append(Part(f"comp{j}", "other", prog, notes))
    # Lead instrument: melodies where there are no vocals, sometimes counter-lines under vocals.
    # Vocal spans: whole vocal sections, or call-and-response (sung bars alternating with instrumental ones).
    vocal_spans: list[tuple[float, float]] = []
    for s in sections:
        if not s.vocals:
            continue
        nbars = int(round((s.end - s.start) / bar))
        if nbars >= 4 and rng.random() < 0.35:
            block = 2 if nbars >= 4 else 1
            for k in range(0, nbars, 2 * block):
                vocal_spans.append((s.start + k * bar, min(s.end, s.start + (k + block) * bar)))
        else:
            vocal_spans.append((s.start, s.end))
    free = []
    t = 0.0
    for a, b in vocal_spans + [(total, total)]:
        if a - t > 1e-6:
            free.append((t, a))
        t = b
    if rng.random() < 0.3:
        free = [(s.start, s.end) for s in sections]
    if free and rng.random() < 0.85:
        lo = int(rng.integers(55, 70))
        others.append(Part("lead", "other", int(_choice(rng, LEAD_PROGRAMS)),
                           _melody(rng, key, mode, chords, free, bar, bpb, lo, lo + 14, False, density=0.7)))
    low = int(rng.integers(45, 63))
    lead = _melody(rng, key, mode, chords, vocal_spans, bar, bpb, low, low + 13, True) if vocal_spans else []
    harmony: list[Note] = []
    backing_spans = [(s.start, s.end) for s in sections if s.backing]
    if backing_spans:
        steps = int(_choice(rng, (2, 2, 4, -3)))
        harmony = [n for n in harmonize(lead, key, mode, steps) if any(a <= n.start < b for a, b in backing_spans)]
    return Song(tempo, bpb, key, mode, total, sections, chords, drums, groove, bass, others, lead, harmony)
