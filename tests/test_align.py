import json

import librosa
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

from stemsplit import align
from stemsplit.cli import main
from stemsplit.data.dataset import ExampleSampler
from stemsplit.data.tracks import split_tracks

SR = 22050


def _material(seconds=12.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    t = np.arange(n) / SR
    voc = (np.sin(2 * np.pi * 300 * t + 3 * np.sin(2 * np.pi * 5 * t)) * (np.sin(2 * np.pi * 0.7 * t) > 0)
           + 0.3 * rng.standard_normal(n) * (np.sin(2 * np.pi * 0.3 * t) > 0.5))
    voc = sosfiltfilt(butter(8, 0.36 * SR, fs=SR, output="sos"), voc)  # real recordings are band-limited too
    acc = np.convolve(rng.standard_normal(n), np.ones(30) / 30, "same") + 0.5 * np.sin(2 * np.pi * 110 * t)
    return voc[None], acc[None] * 0.5


def _case(offset, gain, speed=1.0, stem_sr=SR):
    voc, acc = _material()
    placed = gain * align._shift(voc, offset, voc.shape[1])
    mix = acc + placed
    stem = voc
    if speed != 1.0:
        stem = librosa.resample(voc, orig_sr=SR, target_sr=SR / speed, res_type="soxr_vhq")
    if stem_sr != SR:
        stem = librosa.resample(stem, orig_sr=SR, target_sr=stem_sr, res_type="soxr_vhq")
    return mix.astype(np.float32), stem.astype(np.float32), placed


@pytest.mark.parametrize("offset,gain,speed,stem_sr", [
    (1234.3, 0.8, 1.0, SR),          # sub-sample offset
    (-3000.7, -0.5, 1.0, SR),        # negative offset, polarity flip
    pytest.param(30000.25, 1.3, 1.0, SR, marks=pytest.mark.slow),   # more than a second
    pytest.param(500.0, 0.9, 1.001, SR, marks=pytest.mark.slow),    # a re-timed release: 0.1 % slower
    pytest.param(-700.5, 0.7, 1.0, 48000, marks=pytest.mark.slow),  # the stem at another sample rate
])
def test_recovers_offset_gain_speed(offset, gain, speed, stem_sr):
    mix, stem, placed = _case(offset, gain, speed, stem_sr)
    al, track = align.align_pair(mix, SR, stem, stem_sr, kind="acapella")
    assert abs(al.offset - offset) < 1.0
    assert abs(al.gain_db - 20 * np.log10(abs(gain))) < 0.1 and np.sign(al.gain) == np.sign(gain)
    assert abs(al.speed - speed) < 1e-5
    start = int(np.clip(np.ceil(al.offset - 0.01), 0, mix.shape[1]))
    true = placed[:, start:start + track["vocals"].shape[1]]
    cancellation = 10 * np.log10(np.sum(true ** 2) / np.sum((track["vocals"] - true) ** 2))
    assert cancellation >= 30, cancellation
    np.testing.assert_allclose(track["vocals"] + track["accompaniment"], track["mixture"], atol=1e-5)


def test_instrumental_kind_gives_vocals_as_the_difference():
    voc, acc = _material()
    mix = (acc + voc).astype(np.float32)
    al, track = align.align_pair(mix, SR, acc.astype(np.float32), SR, kind="instrumental")
    assert abs(al.offset) < 0.1 and abs(al.gain_db) < 0.2
    start = int(np.clip(np.ceil(al.offset - 0.01), 0, None))
    true = voc[:, start:start + track["vocals"].shape[1]]
    assert 10 * np.log10(np.sum(true ** 2) / np.sum((track["vocals"] - true) ** 2)) > 20


def test_unrelated_audio_is_refused_unless_forced():
    voc, acc = _material()
    other, _ = _material(seed=5)
    unrelated = np.random.default_rng(3).standard_normal((1, SR * 8)).astype(np.float32)
    for stem in (unrelated, (other * 0 + np.roll(other, 12345)).astype(np.float32)):
        with pytest.raises(align.AlignmentRefused, match="does not line up"):
            align.align_pair((acc + voc).astype(np.float32), SR, stem, SR)
    al, _ = align.align_pair((acc + voc).astype(np.float32), SR, unrelated, SR, force=True)
    assert al.psr < align.MIN_PSR


def test_track_folder_trains(tmp_path):
    mix, stem, _ = _case(2000.5, 0.8)
    sf.write(tmp_path / "song.mix.wav", mix.T, SR, subtype="FLOAT")
    sf.write(tmp_path / "song.acapella.wav", stem.T, SR, subtype="FLOAT")
    al, folder = align.build_track(tmp_path / "song.mix.wav", tmp_path / "song.acapella.wav", tmp_path / "ds",
                                   "song")
    assert folder == tmp_path / "ds" / "train" / "song"
    assert {p.name for p in folder.iterdir()} == {"mixture.wav", "vocals.wav", "accompaniment.wav",
                                                 "alignment.json"}
    meta = json.loads((folder / "alignment.json").read_text())
    assert abs(meta["offset"] - 2000.5) < 1 and meta["polarity"] == "normal"
    train, _ = split_tracks([tmp_path / "ds"], is_wav=True)
    x, y = ExampleSampler(train, ["vocals"], frames=8).example(np.random.default_rng(0))
    assert x.shape == (32, 513) and 0 < y.mean() < 1


def test_batch_and_cli(tmp_path, capsys):
    src = tmp_path / "pairs"
    src.mkdir()
    mix, stem, _ = _case(800.0, 0.9)
    sf.write(src / "good.mix.wav", mix.T, SR, subtype="FLOAT")
    sf.write(src / "good.acapella.wav", stem.T, SR, subtype="FLOAT")
    sf.write(src / "bad.mix.wav", mix.T, SR, subtype="FLOAT")
    sf.write(src / "bad.instrumental.wav", np.random.default_rng(1).standard_normal(SR * 6), SR)
    assert main(["align", "--batch", str(src), "-o", str(tmp_path / "ds"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "1 accepted, 1 refused" in out and "refused   bad" in out
    assert (tmp_path / "ds" / "train" / "good" / "vocals.wav").exists()
    assert not (tmp_path / "ds" / "train" / "bad").exists()
    (src / "pairs.csv").write_text("mix,stem,kind,name\ngood.mix.wav,good.acapella.wav,acapella,viacsv\n")
    assert main(["align", "--batch", str(src / "pairs.csv"), "-o", str(tmp_path / "ds2"), "--split", "test",
                 "-q"]) == 0
    assert (tmp_path / "ds2" / "test" / "viacsv" / "mixture.wav").exists()
    assert main(["align", str(src / "good.mix.wav"), str(src / "good.acapella.wav"), "-o",
                 str(tmp_path / "ds3" / "one")]) == 0
    assert (tmp_path / "ds3" / "train" / "one" / "accompaniment.wav").exists()
    capsys.readouterr()
    assert main(["align", str(src / "bad.mix.wav"), str(src / "bad.instrumental.wav"), "--kind", "instrumental",
                 "-o", str(tmp_path / "ds4" / "x")]) == 2
    assert "--force" in capsys.readouterr().err and not (tmp_path / "ds4").exists()
    assert main(["align", str(src / "missing.wav"), str(src / "good.acapella.wav"), "-o", str(tmp_path / "x")]) == 2
