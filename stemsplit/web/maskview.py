"""The mask picture: which stem each time-frequency bin of a stretch of the song went to, over its spectrogram.

The stretch is analysed exactly as offline separation analyses it (the library's ``context_features`` reads
the frames with their model context, the Separator scores them and combines the scores into masks), so the
picture shows the masks that made the stems, not an approximation of them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..engine import context_features
from ..separate import Separator

__all__ = ["MaskView", "compute_mask_view", "render_mask_view", "STEM_COLORS", "stem_color"]

#: colours of the usual stems (the page uses the same ones, in app.js)
STEM_COLORS = {"vocals": "#e4572e", "drums": "#2a9df4", "bass": "#9b6dde", "other": "#4caf50",
               "accompaniment": "#2bb3a3", "residual": "#9aa0a6"}
_FALLBACK = ("#f2a541", "#d81e5b", "#3f88c5", "#44bba4", "#e9c46a", "#a1c181")


def stem_color(name: str, index: int) -> str:
    """A stem's colour: fixed for the usual names, else from a small palette by position."""
    return STEM_COLORS.get(name, _FALLBACK[index % len(_FALLBACK)])


class _FileReader:
    """Reads ``[start, stop)`` of a seekable sound file, zeros outside it (for ``context_features``)."""

    def __init__(self, f: sf.SoundFile):
        self.f, self.frames, self.channels = f, f.frames, f.channels

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((self.channels, stop - start), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
        if hi > lo:
            self.f.seek(lo)
            got = self.f.read(hi - lo, dtype="float32", always_2d=True).T
            out[:, lo - start:lo - start + got.shape[1]] = got
        return out


@dataclass(frozen=True)
class MaskView:
    """Masks and mixture magnitude for a stretch of a song.

    Attributes
    ----------
    stems : tuple of str
        Stem names, in the order of ``masks``.
    masks : np.ndarray
        ``(stems, bins, frames)``: each bin's share per stem (they sum to 1 over stems).
    magnitude : np.ndarray
        ``(bins, frames)``: the mixture's magnitude, averaged over channels.
    sr : int
        Sample rate of the song.
    n_fft : int
        Window length of its grid (bin ``k`` is at ``k * sr / n_fft`` Hz).
    start, stop : float
        Seconds of the song the frames cover.
    """

    stems: tuple[str, ...]
    masks: np.ndarray
    magnitude: np.ndarray
    sr: int
    n_fft: int
    start: float
    stop: float


def compute_mask_view(sep: Separator, mixture: str | Path, start: float, seconds: float) -> MaskView:
    """The masks ``sep`` gives a stretch of a song, with the mixture's magnitude.

    Parameters
    ----------
    sep : Separator
        The separator that made the stems (same targets and mask mode); it must keep the residual.
    mixture : path-like
        The song as a seekable file (the job's decoded ``mixture.wav``).
    start : float
        First second of the stretch (clamped into the song).
    seconds : float
        Length of the stretch.

    Returns
    -------
    MaskView
    """
    with sf.SoundFile(str(mixture)) as f:
        reader = _FileReader(f)
        grid = sep.frontend.grid(f.samplerate)
        total = grid.n_frames(reader.frames)
        span = max(1, int(round(seconds * grid.sr / grid.hop)))
        lo = int(np.clip(round(start * grid.sr / grid.hop), 0, max(0, total - span)))
        hi = min(total, lo + span)
        ctx = context_features(reader, grid, lo, hi, total, sep.runner.half_context)
    scores = sep.scores(ctx.features)
    masks, residual = sep.stem_masks(scores, grid.n_bins)
    own = ctx.spec[:, :, lo - ctx.first:hi - ctx.first]
    return MaskView(stems=tuple(sep.stem_names), masks=np.concatenate([masks, residual[None]]) if sep.residual
                    else masks, magnitude=np.abs(own).mean(axis=0), sr=grid.sr, n_fft=grid.n_fft,
                    start=lo * grid.hop / grid.sr, stop=hi * grid.hop / grid.sr)


def _rgb(color: str) -> np.ndarray:
    """``#rrggbb`` as three floats in [0, 1]."""
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32) / 255.0


def render_mask_view(view: MaskView, *, rows: int = 256, dynamic_range_db: float = 60.0) -> bytes:
    """Draw a :class:`MaskView` as a PNG: hue = the stems a bin went to, brightness = the mixture's level.

    Frequencies are drawn on a logarithmic axis from 50 Hz to 16 kHz (or Nyquist), as a musician hears them;
    each display row shows its nearest STFT bin, so the lowest octaves look blocky (bins are ~21.5 Hz apart).

    Returns
    -------
    bytes
        The PNG file.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    fmax = min(view.sr / 2.0, 16_000.0)
    freqs = np.geomspace(50.0, fmax, rows)
    idx = np.clip(np.round(freqs * view.n_fft / view.sr).astype(int), 0, view.magnitude.shape[0] - 1)
    db = 20.0 * np.log10(view.magnitude[idx] + 1e-9)
    light = np.clip((db - (db.max() - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)[..., None]
    colors = np.stack([_rgb(stem_color(s, i)) for i, s in enumerate(view.stems)])
    hue = np.einsum("kbf,kc->bfc", view.masks[:, idx], colors)
    image = np.clip(hue * light ** 0.8 * 1.15, 0.0, 1.0)

    fig = Figure(figsize=(10, 4.2), dpi=100, facecolor="white")
    ax = fig.add_axes((0.07, 0.13, 0.76, 0.8))
    ax.imshow(image, origin="lower", aspect="auto", interpolation="nearest",
              extent=(view.start, view.stop, 0, rows))
    ticks = [hz for hz in (100, 250, 500, 1000, 2000, 4000, 8000, 16000) if hz <= fmax]
    ax.set_yticks(np.interp(ticks, freqs, np.arange(rows)))
    ax.set_yticklabels([f"{hz // 1000}k" if hz >= 1000 else str(hz) for hz in ticks])
    ax.set_ylabel("Hz")
    ax.set_xlabel("seconds")
    handles = [Patch(color=stem_color(s, i), label=s) for i, s in enumerate(view.stems)]
    fig.legend(handles=handles, loc="center right", frameon=False, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
