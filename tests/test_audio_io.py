"""audio_io: every WAV encoding, channels, resampling, errors, the clip-window rule.

Every file is written here by a small independent RIFF writer, so the reader
is checked against bytes laid out by hand rather than against itself.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from edge_monitor.audio import audio_io
from edge_monitor.audio.audio_io import AudioFileError, ClipTooShortError

# KSDATAFORMAT_SUBTYPE_{PCM,IEEE_FLOAT}: the format tag followed by a fixed GUID tail.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


def riff(fmt_tag: int, channels: int, rate: int, bits: int, payload: bytes, *,
         extensible: bool = False, extra_chunks: bytes = b"", data_size: int | None = None) -> bytes:
    """A WAV file's bytes, laid out by hand (independent of audio_io's writer)."""
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits,
                          22, bits, (1 << channels) - 1)
        fmt += struct.pack("<H", fmt_tag) + _GUID_TAIL
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks
    body += b"data" + struct.pack("<I", size) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def encode(x: np.ndarray, kind: str) -> tuple[int, int, bytes]:
    """``(format_tag, bits, interleaved bytes)`` for float samples in [-1, 1)."""
    if kind == "u8":
        return 1, 8, np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    if kind == "s16":
        return 1, 16, np.clip(np.round(x * 32768), -32768, 32767).astype("<i2").tobytes()
    if kind == "s24":
        v = np.clip(np.round(x * 2**23), -(2**23), 2**23 - 1).astype("<i4")
        return 1, 24, v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    if kind == "s32":
        return 1, 32, np.clip(np.round(x * 2.0**31), -(2**31), 2**31 - 1).astype("<i4").tobytes()
    if kind == "f32":
        return 3, 32, x.astype("<f4").tobytes()
    if kind == "f64":
        return 3, 64, x.astype("<f8").tobytes()
    raise AssertionError(kind)


# Quantisation step of each format: the reader must be within one of it.
TOLERANCE = {"u8": 1 / 128, "s16": 1 / 32768, "s24": 2**-23, "s32": 2**-30, "f32": 1e-7, "f64": 1e-7}


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t + phase)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spec)])


@pytest.mark.parametrize("kind", ["u8", "s16", "s24", "s32", "f32", "f64"])
@pytest.mark.parametrize("extensible", [False, True])
def test_reads_every_encoding(tmp_path: Path, kind: str, extensible: bool) -> None:
    x = tone(440, 16000, 0.25, amp=0.7)
    x[:4] = [-1.0, 0.999, 0.0, -0.5]  # full-scale negative and near-positive codes
    tag, bits, payload = encode(x, kind)
    path = tmp_path / f"{kind}.wav"
    path.write_bytes(riff(tag, 1, 16000, bits, payload, extensible=extensible))

    raw = audio_io.read_wav_raw(path)
    assert raw.samples.dtype == np.float32 and raw.samples.shape == (x.size, 1)
    assert (raw.sample_rate, raw.bits) == (16000, bits)
    assert raw.fmt == ("float" if kind.startswith("f") else "int")
    np.testing.assert_allclose(raw.samples[:, 0], x, atol=TOLERANCE[kind])
    assert raw.samples[0, 0] == -1.0  # most negative code is exactly -1

    mono = audio_io.read_wav(path)
    assert mono.dtype == np.float32 and mono.shape == (x.size,)
    np.testing.assert_allclose(mono, x, atol=TOLERANCE[kind])


def test_multichannel_extensible_downmix_and_pick(tmp_path: Path) -> None:
    """Raw MIMII recordings: 8 channels, 16-bit, WAVE_FORMAT_EXTENSIBLE."""
    n, ch = 4000, 8
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 0.5, size=(n, ch))
    tag, bits, payload = encode(x.reshape(-1), "s16")
    path = tmp_path / "mimii_8ch.wav"
    path.write_bytes(riff(tag, ch, 16000, bits, payload, extensible=True))

    raw = audio_io.read_wav_raw(path)
    assert raw.samples.shape == (n, ch) and raw.channels == ch
    np.testing.assert_allclose(raw.samples, x, atol=1 / 32768)
    np.testing.assert_allclose(audio_io.read_wav(path), x.mean(axis=1), atol=1 / 32768)
    np.testing.assert_allclose(audio_io.read_wav(path, channel=3), x[:, 3], atol=1 / 32768)
    np.testing.assert_allclose(audio_io.read_wav(path, channel=-1), x[:, 7], atol=1 / 32768)
    with pytest.raises(AudioFileError, match=r"mimii_8ch\.wav: channel 8 requested but the audio has 8"):
        audio_io.read_wav(path, channel=8)


def test_stereo_24bit_with_odd_sized_extra_chunk(tmp_path: Path) -> None:
    """Unknown chunks (LIST, odd length with its pad byte) before the data are skipped."""
    x = np.stack([tone(300, 16000, 0.1), tone(500, 16000, 0.1, amp=0.2)], axis=1)
    tag, bits, payload = encode(x.reshape(-1), "s24")
    extra = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"
    path = tmp_path / "stereo24.wav"
    path.write_bytes(riff(tag, 2, 16000, bits, payload, extra_chunks=extra))
    np.testing.assert_allclose(audio_io.read_wav_raw(path).samples, x, atol=2**-23)
    np.testing.assert_allclose(audio_io.read_wav(path, channel=1), x[:, 1], atol=2**-23)


@pytest.mark.parametrize("rate", [44100, 48000, 22050, 8000])
def test_resampling_keeps_the_tone(tmp_path: Path, rate: int) -> None:
    freq = 1000.0
    x = tone(freq, rate, 1.0)
    tag, bits, payload = encode(x, "s16")
    path = tmp_path / f"tone_{rate}.wav"
    path.write_bytes(riff(tag, 1, rate, bits, payload))
    y = audio_io.read_wav(path, sample_rate=16000)
    assert y.dtype == np.float32
    assert abs(y.size - 16000) <= 1
    assert abs(peak_hz(y, 16000) - freq) <= 1.0
    # Amplitude kept (away from the filter's edge transients).
    assert abs(np.sqrt(np.mean(y[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_resample_multichannel_and_identity() -> None:
    x = np.stack([tone(500, 48000, 0.5), tone(2000, 48000, 0.5)], axis=1).astype(np.float32)
    y = audio_io.resample(x, 48000, 16000)
    assert y.shape == (8000, 2) and y.dtype == np.float32
    assert abs(peak_hz(y[:, 0], 16000) - 500) <= 2 and abs(peak_hz(y[:, 1], 16000) - 2000) <= 2
    # An odd rate (a drifting sound card) is approximated with bounded filter size.
    odd = audio_io.resample(tone(1000, 44101, 1.0), 44101, 16000)
    assert abs(odd.size - 16000) <= 20 and abs(peak_hz(odd, 16000) - 1000) <= 1.0
    z = np.zeros(100, dtype=np.float32)
    assert audio_io.resample(z, 16000, 16000) is z
    with pytest.raises(ValueError, match="positive"):
        audio_io.resample(z, 0, 16000)


def test_write_wav_round_trip_and_clipping(tmp_path: Path) -> None:
    x = np.array([0.0, 0.5, -0.5, 1.5, -3.0, np.nan], dtype=np.float32)
    path = audio_io.write_wav(tmp_path / "out.wav", x, 16000)
    raw = audio_io.read_wav_raw(path)
    assert (raw.bits, raw.fmt, raw.sample_rate) == (16, "int", 16000)
    np.testing.assert_allclose(raw.samples[:, 0], [0, 0.5, -0.5, 32767 / 32768, -32767 / 32768, 0], atol=1 / 32768)
    # The bytes follow the canonical 44-byte PCM header.
    blob = path.read_bytes()
    assert blob[:4] == b"RIFF" and blob[8:16] == b"WAVEfmt " and len(blob) == 44 + 2 * x.size
    stereo = np.stack([np.linspace(-1, 1, 50), np.zeros(50)], axis=1)
    audio_io.write_wav(tmp_path / "st.wav", stereo, 8000)
    raw = audio_io.read_wav_raw(tmp_path / "st.wav")
    assert raw.samples.shape == (50, 2) and raw.sample_rate == 8000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # the umask applies, not a 0600 temp mode


def test_write_wav_error_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "missing_dir" / "x.wav"
    with pytest.raises(AudioFileError) as info:
        audio_io.write_wav(target, np.zeros(10))
    assert str(info.value).startswith(f"{target}: cannot write: ")


def test_clipped_fraction() -> None:
    raw = audio_io.RawAudio(np.array([[1.0], [-1.0], [0.2], [32767 / 32768]], dtype=np.float32), 16000, 16, "int")
    assert raw.clipped_fraction() == pytest.approx(0.75)
    flt = audio_io.RawAudio(np.array([[1.0], [0.999]], dtype=np.float32), 16000, 32, "float")
    assert flt.clipped_fraction() == pytest.approx(0.5)


def _good_wav() -> bytes:
    tag, bits, payload = encode(tone(440, 16000, 0.1), "s16")
    return riff(tag, 1, 16000, bits, payload)


def _bad_files() -> dict[str, tuple[bytes, str]]:
    good = _good_wav()
    tag, bits, payload = encode(tone(440, 16000, 0.01), "s16")
    return {
        "empty": (b"", "empty file"),
        "tiny": (b"RIFF", "truncated"),
        "text": (b"this is not audio at all, just text\n" * 4, "not a WAV file"),
        "mp3ish": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 100, "not a WAV file"),
        "truncated_data": (good[: len(good) // 2], "truncated: data chunk declares"),
        "header_only": (good[:44], "truncated: data chunk declares"),
        "no_data": (good[:36], "no data chunk"),
        "fmt_cut": (good[:30], "truncated"),
        "empty_data": (riff(tag, 1, 16000, bits, b""), "data chunk is empty"),
        "mulaw": (riff(7, 1, 8000, 8, b"\x00" * 100), "unsupported WAV encoding: format tag 0x0007 (mu-law)"),
        "adpcm_ext": (riff(2, 1, 8000, 8, b"\x00" * 100, extensible=True), "format tag 0x0002"),
        "pcm12": (riff(1, 1, 16000, 12, b"\x00" * 100), "12 bits per sample"),
        "pcm48": (riff(1, 1, 16000, 48, b"\x00" * 120), "48-bit integer PCM"),
        "float16": (riff(3, 1, 16000, 16, b"\x00" * 100), "16-bit float"),
        "zero_rate": (riff(1, 1, 0, 16, payload), "implausible sample rate 0 Hz"),
        "zero_channels": (riff(1, 0, 16000, 16, payload), "0 channels"),
        "rf64": (b"RF64" + good[4:], "RF64"),
    }


@pytest.mark.parametrize("case", sorted(_bad_files()))
def test_bad_file_gives_one_error_naming_the_file(tmp_path: Path, case: str) -> None:
    blob, reason = _bad_files()[case]
    path = tmp_path / f"{case}.wav"
    path.write_bytes(blob)
    for reader in (audio_io.read_wav_raw, audio_io.read_wav):
        with pytest.raises(AudioFileError) as info:
            reader(path)
        msg = str(info.value)
        assert msg.startswith(f"{path}: "), msg
        assert reason in msg, msg
        assert "\n" not in msg
        assert info.value.path == str(path)


def test_missing_directory_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match=r"nope\.wav: no such file"):
        audio_io.read_wav(tmp_path / "nope.wav")
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(AudioFileError, match=r"dir\.wav: is a directory"):
        audio_io.read_wav(tmp_path / "dir.wav")
    locked = tmp_path / "locked.wav"
    locked.write_bytes(_good_wav())
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # root reads anything: an OS error of another kind then
            target, reason = locked / "child.wav", "cannot read: Not a directory"
        else:
            target, reason = locked, "cannot read: permission denied"
        with pytest.raises(AudioFileError) as info:
            audio_io.read_wav(target)
        assert str(info.value) == f"{target}: {reason}"
    finally:
        locked.chmod(0o644)


def test_streaming_header_without_size_reads_to_end(tmp_path: Path) -> None:
    tag, bits, payload = encode(tone(440, 16000, 0.05), "s16")
    path = tmp_path / "stream.wav"
    path.write_bytes(riff(tag, 1, 16000, bits, payload, data_size=0xFFFFFFFF))
    assert audio_io.read_wav(path).size == len(payload) // 2


def test_partial_last_frame_is_dropped(tmp_path: Path) -> None:
    tag, bits, payload = encode(np.zeros(20), "s16")
    path = tmp_path / "odd.wav"
    path.write_bytes(riff(tag, 2, 16000, bits, payload[:-2]))  # 9.5 stereo frames
    assert audio_io.read_wav_raw(path).samples.shape == (9, 2)


# --- clip_windows -----------------------------------------------------------------------


def test_clip_windows_exact_and_long() -> None:
    w = 1000
    x = np.arange(w, dtype=np.float32)
    (only,) = audio_io.clip_windows(x, w)
    np.testing.assert_array_equal(only, x)

    # 11 "seconds" with 10 s windows: windows at 0 and at the end (1 s).
    x = np.arange(1100, dtype=np.float32)
    wins = audio_io.clip_windows(x, w)
    assert [int(v[0]) for v in wins] == [0, 100]
    assert all(v.shape == (w,) for v in wins) and int(wins[-1][-1]) == 1099

    # Hop: every full window, plus one aligned to the end when they fall short.
    x = np.arange(2600, dtype=np.float32)
    assert [int(v[0]) for v in audio_io.clip_windows(x, w, hop_samples=500)] == [0, 500, 1000, 1500, 1600]
    assert [int(v[0]) for v in audio_io.clip_windows(x[:2500], w, hop_samples=500)] == [0, 500, 1000, 1500]
    assert [int(v[0]) for v in audio_io.clip_windows(np.arange(3000.0), w)] == [0, 1000, 2000]
    # Views are read-only: scoring must not modify the caller's audio.
    with pytest.raises(ValueError):
        wins[0][0] = 5


def test_clip_windows_short_clip_wraps_its_start() -> None:
    x = np.arange(600, dtype=np.float32)
    (win,) = audio_io.clip_windows(x, 1000)
    assert win.shape == (1000,)
    np.testing.assert_array_equal(win[:600], x)
    np.testing.assert_array_equal(win[600:], x[:400])
    (win,) = audio_io.clip_windows(x[:500], 1000)  # exactly min_fraction
    np.testing.assert_array_equal(win, np.concatenate([x[:500], x[:500]]))
    (win,) = audio_io.clip_windows(x[:300], 1000, min_fraction=0.25)
    np.testing.assert_array_equal(win[:900], np.tile(x[:300], 3))


def test_clip_windows_too_short_and_bad_args() -> None:
    with pytest.raises(ClipTooShortError, match="499 samples is shorter than 0.5 of a 1000-sample window"):
        audio_io.clip_windows(np.zeros(499), 1000)
    assert issubclass(ClipTooShortError, ValueError)
    with pytest.raises(ClipTooShortError):
        audio_io.clip_windows(np.zeros(0), 1000)
    with pytest.raises(ValueError, match="mono"):
        audio_io.clip_windows(np.zeros((1000, 2)), 1000)
    with pytest.raises(ValueError, match="hop_samples"):
        audio_io.clip_windows(np.zeros(2000), 1000, hop_samples=0)


# --- real recordings -------------------------------------------------------------------


def test_reads_real_dcase_clips(real_samples: Path) -> None:
    slider = sorted((real_samples / "slider").glob("*.wav"))
    assert slider, "no slider clips"
    for path in slider:
        raw = audio_io.read_wav_raw(path)
        assert (raw.sample_rate, raw.bits, raw.fmt, raw.channels) == (16000, 16, "int", 1)
        x = audio_io.read_wav(path)
        assert x.shape == (160000,) and x.dtype == np.float32
        assert 1e-4 < float(np.sqrt(np.mean(x**2))) < 0.5  # real sound, not silence or garbage
        assert len(audio_io.clip_windows(x, 160000)) == 1
    toycar = real_samples / "ToyCar" / "normal_id_01_00000000.wav"
    x = audio_io.read_wav(toycar)
    assert x.shape == (176000,)  # 11 s
    wins = audio_io.clip_windows(x, 160000)
    assert len(wins) == 2
    np.testing.assert_array_equal(wins[0], x[:160000])
    np.testing.assert_array_equal(wins[1], x[16000:])  # the second window starts at 1 s
    # Our reader agrees with the standard library on plain PCM.
    import wave

    with wave.open(str(toycar)) as wf:
        ref = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2") / 32768.0
    np.testing.assert_array_equal(x, ref.astype(np.float32))


def test_no_raw_traceback_on_any_truncation_or_header_corruption(tmp_path: Path) -> None:
    """Every prefix of a file and random header bytes: a result or AudioFileError, nothing else."""
    tag, bits, payload = encode(tone(440, 16000, 0.002, amp=0.3), "s24")
    good = riff(tag, 2, 16000, bits, payload[: len(payload) // 6 * 6], extensible=True)
    path = tmp_path / "fuzz.wav"
    rng = np.random.default_rng(7)
    blobs = [good[:n] for n in range(len(good))]
    for _ in range(300):
        b = bytearray(good)
        for pos in rng.integers(0, 80, size=rng.integers(1, 4)):
            b[pos] = int(rng.integers(0, 256))
        blobs.append(bytes(b))
    errors = 0
    for blob in blobs:
        path.write_bytes(blob)
        try:
            x = audio_io.read_wav(path)
            assert x.dtype == np.float32 and x.ndim == 1
        except AudioFileError as exc:
            assert str(exc).startswith(f"{path}: ")
            errors += 1
    assert errors >= len(good)  # every proper prefix is refused


def test_runtime_path_does_not_import_scipy_signal(tmp_path: Path) -> None:
    """16 kHz input never loads scipy.signal (~78 MB RSS on the Pi); other rates load it lazily."""
    import subprocess
    import sys

    path16 = audio_io.write_wav(tmp_path / "a16.wav", tone(440, 16000, 1.0))
    path48 = audio_io.write_wav(tmp_path / "a48.wav", tone(440, 48000, 1.0), 48000)
    code = (
        "import sys\n"
        "from edge_monitor.audio import audio_io\n"
        "from edge_monitor.features import frontend as features\n"
        "from trainer import datasets  # noqa: F401\n"
        f"x = audio_io.read_wav({str(path16)!r})\n"
        "features.logmel(x)\n"
        "audio_io.clip_windows(x, 8000)\n"
        "print('scipy.signal' in sys.modules)\n"
        f"audio_io.read_wav({str(path48)!r})\n"
        "print('scipy.signal' in sys.modules)\n"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
