"""Spoken digits: synthetic training speech (espeak-ng, flite, festival) and the real asterisk recordings.

Synthetic clips are planned first (engine, voice, speed, pitch, word, channel seed), each plan
fixed by the dataset seed, then rendered in parallel subprocesses. espeak-ng, flite and festival
are deterministic for a given voice/speed/pitch, and all randomness after synthesis comes from a
per-clip numpy Generator, so a rebuild with the same seed yields the same samples bit for bit.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmbind import InputError
from mmbind_plugins.digits_world import channel

# The words the real recordings say, one list per language (index = digit).
WORDS: dict[str, list[str]] = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "es": ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"],
    "fr": ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"],
    "it": ["zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove"],
    "ru": ["ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"],
}
LANGUAGES = tuple(WORDS)

# espeak-ng accents per language (`espeak-ng --voices`).
ESPEAK_ACCENTS: dict[str, list[str]] = {
    "en": ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
           "en-gb-x-gbclan", "en-gb-x-gbcwmd"],
    "es": ["es", "es-419"],
    "fr": ["fr-fr", "fr-be", "fr-ch"],
    "it": ["it"],
    "ru": ["ru", "ru-lv"],
}
# espeak-ng voice variants (`espeak-ng --voices=variant`), curated: the growling, whispering and
# croaking ones are left out because no real recording sounds like them. Female variants are
# listed twice so that about half the clips are female, as four of the five real speakers are.
ESPEAK_FEMALE = ["f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty",
                 "belinda", "grandma", "linda", "steph", "steph2", "steph3", "shelby"]
ESPEAK_MALE = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy", "Denis", "Diogo",
               "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael",
               "Mike", "antonio", "benjamin", "boris", "caleb", "david", "ed", "edward",
               "edward2", "grandpa", "gustave", "iven", "iven2", "iven3", "iven4", "john",
               "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6",
               "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro",
               "quincy", "rob", "robert", "sandro", "travis", "victor", "robosoft4"]
# Held out for the synthetic "test" split: unseen voices.
ESPEAK_TEST = {"f4", "steph2", "linda", "m6", "Hugo", "klatt3", "iven2", "pedro", "edward2"}
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
FLITE_TEST = {"kal16"}
# Festival voices made from recordings of human speakers (diphone, unit-selection and HTS voices
# of Debian's festvox-* packages): they sound more natural than espeak-ng's formant synthesis, and
# they are the only synthetic Italian and Russian speakers besides espeak-ng. Training only (the
# synthetic test split keeps espeak-ng and flite voices never trained on).
FESTIVAL_VOICES: dict[str, list[str]] = {
    "en": ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"],
    "it": ["lp_diphone", "pc_diphone"],
    "ru": ["msu_ru_nsh_clunits"],
    "es": ["lp_diphone", "pc_diphone"],  # Italian voices reading Spanish respelled (SPELLING)
}
# Spanish has no festival voice; Italian spelling read by the Italian voices comes close to
# Latin-American Spanish ("cero" said "sero", "ocho" with the "ch" of Italian "ciò").
SPELLING: dict[str, list[str]] = {
    "es": ["sero", "uno", "dos", "tres", "cuatro", "sinco", "seis", "siete", "ocio", "nueve"],
}
# Share of each language's training clips spoken by festival.
FESTIVAL_SHARE = {"en": 0.2, "it": 0.45, "ru": 0.45, "es": 0.3}

# Extra espeak-ng variants made here ("dw000".."dw079"): random formant scalings, pitch ranges,
# flutter, roughness, breathiness, so the synthetic speakers cover more of the space real
# voices live in. Fixed by CUSTOM_SEED, so a name always means the same voice; the last
# CUSTOM_TEST of them are held out for the synthetic test split.
CUSTOM_SEED, CUSTOM_COUNT, CUSTOM_TEST = 20240611, 80, 16


def custom_variant(index: int) -> str:
    """The text of espeak-ng variant file dw<index> (see espeak-ng docs/voices.md)."""
    rng = np.random.default_rng([CUSTOM_SEED, index])
    female = index % 5 < 3  # 60% female, as most of the real speakers
    if female:
        base = int(rng.uniform(160, 230))
        pitch = (base, base + int(rng.uniform(40, 120)))
        scale = rng.uniform(1.08, 1.3)  # a shorter vocal tract: higher formants
    else:
        base = int(rng.uniform(70, 120))
        pitch = (base, base + int(rng.uniform(20, 70)))
        scale = rng.uniform(0.88, 1.08)
    lines = ["language variant", f"name dw{index:03d}", f"gender {'female' if female else 'male'}",
             f"pitch {pitch[0]} {pitch[1]}"]
    for k in range(9):
        freq = 100 if k == 0 else int(100 * scale * rng.uniform(0.93, 1.07))
        lines.append(f"formant {k} {freq} {int(rng.uniform(70, 130))} {int(rng.uniform(70, 140))}")
    lines += [f"flutter {int(rng.uniform(0, 8))}", f"roughness {int(rng.integers(0, 4))}",
              f"voicing {int(rng.uniform(70, 150))}",
              f"consonants {int(rng.uniform(60, 120))} {int(rng.uniform(40, 100))}"]
    if female and rng.random() < 0.5:
        b = int(rng.integers(1, 4))
        lines.append(f"breath 0 {b} {b + 1} {b + 1} {b + 1} {b + 1} {b + 1} {b}")
    return "\n".join(lines) + "\n"


def custom_variant_names(test: bool) -> list[str]:
    split = CUSTOM_COUNT - CUSTOM_TEST
    return [f"dw{i:03d}" for i in (range(split, CUSTOM_COUNT) if test else range(split))]


def espeak_data_dir() -> Path:
    """Where espeak-ng keeps its data (`espeak-ng --version` says 'Data at: ...')."""
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                         check=True).stdout
    if "Data at:" not in out:
        raise RuntimeError(f"cannot find espeak-ng's data folder in {out!r}")
    return Path(out.split("Data at:")[1].strip())


def make_espeak_data(folder: Path) -> Path:
    """A copy of espeak-ng's data folder made of symlinks, with only the five languages used
    and the variants plus the custom ones (espeak-ng lists at most 350 voices, and the full
    set plus ours is more). Pass the returned folder to `espeak-ng --path`."""
    system = espeak_data_dir()
    data = folder / "espeak-ng-data"
    (data / "voices" / "!v").mkdir(parents=True)
    for entry in system.iterdir():
        if entry.name not in ("voices", "lang"):
            (data / entry.name).symlink_to(entry)
    for entry in (system / "voices" / "!v").iterdir():
        (data / "voices" / "!v" / entry.name).symlink_to(entry)
    for i in range(CUSTOM_COUNT):
        (data / "voices" / "!v" / f"dw{i:03d}").write_text(custom_variant(i))
    for entry in (system / "lang").rglob("*"):
        if entry.is_file() and entry.name.lower().split("-")[0] in LANGUAGES:
            target = data / "lang" / entry.relative_to(system / "lang")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(entry)
    return folder


# The real recordings (Debian asterisk-core-sounds-*-wav, asterisk-prompt-it-menardi-wav).
ASTERISK_ROOT = Path("/usr/share/asterisk/sounds")
REAL_VOICES: dict[str, str] = {
    "en_US_f_Allison": "en", "es_MX_f_Allison": "es", "fr_CA_f_June": "fr",
    "it_IT_f_Menardi": "it", "it_IT_m_Carlo": "it", "ru_RU_f_IvrvoiceRU": "ru",
}


@dataclass(frozen=True)
class ClipPlan:
    """One synthetic clip: everything that determines its samples."""

    digit: int
    language: str
    engine: str  # "espeak-ng", "flite" or "festival"
    voice: str  # espeak "<accent>+<variant>", flite or festival voice name
    speed: float  # espeak words per minute; flite and festival duration stretch
    pitch: float  # espeak 0-99; flite target f0 in Hz
    text: str
    tract: float  # vocal tract length factor applied after synthesis
    clean: bool  # keep noise-free
    seed: int  # seeds the simulated channel


def plan_clips(n: int, split: str, seed: int) -> list[ClipPlan]:
    """n clips balanced over digits and languages; English shared by espeak-ng, flite and
    festival, Italian and Russian by espeak-ng and festival (training only)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, 7])
    test = split == "test"
    female = [v for v in ESPEAK_FEMALE if (v in ESPEAK_TEST) == test]
    male = [v for v in ESPEAK_MALE if (v in ESPEAK_TEST) == test]
    flite = [v for v in FLITE_VOICES if (v in FLITE_TEST) == test]
    custom = custom_variant_names(test)
    plans = []
    for i in range(n):
        digit = i % 10
        language = LANGUAGES[(i // 10) % len(LANGUAGES)]
        word = WORDS[language][digit]
        punct = str(rng.choice(["", ".", "!", "?", ","]))
        clip_seed = int(rng.integers(2**31))
        clean = bool(rng.random() < 0.15)
        tract = float(np.exp(rng.uniform(np.log(0.9), np.log(1.15))))
        if not test and rng.random() < FESTIVAL_SHARE.get(language, 0.0):
            spoken = SPELLING.get(language, WORDS[language])[digit]
            plans.append(ClipPlan(digit, language, "festival",
                                  str(rng.choice(FESTIVAL_VOICES[language])),
                                  round(float(rng.uniform(0.8, 1.5)), 2), 0.0, spoken + punct,
                                  tract, clean, clip_seed))
            continue
        if language == "en" and rng.random() < 0.5:
            voice = str(rng.choice(flite))
            # flite: duration stretch and target mean f0 (Hz) vary speed and pitch.
            plans.append(ClipPlan(digit, language, "flite", voice,
                                  round(float(rng.uniform(0.8, 1.6)), 2),
                                  round(float(rng.uniform(90, 260))), word + punct,
                                  tract, clean, clip_seed))
            continue
        if rng.random() < 0.5:
            variant = str(rng.choice(custom))
        else:
            variant = str(rng.choice(female if rng.random() < 0.6 else male))
        accent = str(rng.choice(ESPEAK_ACCENTS[language]))
        plans.append(ClipPlan(digit, language, "espeak-ng", f"{accent}+{variant}",
                              int(rng.integers(90, 200)), int(rng.integers(20, 90)),
                              word + punct, tract, clean, clip_seed))
    return plans


def _check_tool(engine: str) -> None:
    name = "text2wave" if engine == "festival" else engine
    if shutil.which(name) is None:
        raise RuntimeError(
            f"digits-world audio needs the {name!r} program (Debian package "
            f"{engine}); install it or build with audio_per_class=0")


def synthesize(plan: ClipPlan, espeak_path: Path | None = None) -> tuple[np.ndarray, int]:
    """Run the TTS engine; returns (float32 samples, sample rate). espeak_path: a folder made
    by make_espeak_data (needed for the custom dw* variants)."""
    import soundfile as sf

    if plan.engine == "espeak-ng":
        if "+dw" in plan.voice and espeak_path is None:
            raise ValueError(f"voice {plan.voice!r} is a custom variant: pass espeak_path")
        path_arg = [f"--path={espeak_path}"] if espeak_path is not None else []
        out = subprocess.run(
            ["espeak-ng", *path_arg, "-v", plan.voice, "-s", str(int(plan.speed)),
             "-p", str(int(plan.pitch)), "--stdout", plan.text],
            capture_output=True, check=True, timeout=60).stdout
        x, sr = sf.read(io.BytesIO(out), dtype="float32")
        return x, sr
    if plan.engine == "festival":
        return _festival(plan)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "clip.wav")
        subprocess.run(
            ["flite", "-voice", plan.voice, "--setf", f"duration_stretch={plan.speed}",
             "--setf", f"int_f0_target_mean={plan.pitch}", "-t", plan.text, "-o", path],
            capture_output=True, check=True, timeout=60)
        x, sr = sf.read(path, dtype="float32")
    return x, sr


def _festival(plan: ClipPlan) -> tuple[np.ndarray, int]:
    """festival's text2wave with the plan's voice and duration stretch; the word goes in on
    stdin (UTF-8, which the Russian voice reads)."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "clip.wav")
        subprocess.run(
            ["text2wave", "-eval", f"(voice_{plan.voice})",
             "-eval", f"(Parameter.set 'Duration_Stretch {plan.speed})", "-o", path],
            input=plan.text.encode("utf-8"), capture_output=True, check=True, timeout=60)
        x, sr = sf.read(path, dtype="float32")
    if not np.abs(x).max(initial=0.0) > 0:
        raise RuntimeError(f"festival voice {plan.voice!r} produced silence for {plan.text!r}; "
                           f"is its Debian festvox package installed?")
    return x, sr


def render(plan: ClipPlan, espeak_path: Path | None = None,
           **channel_options: float) -> tuple[np.ndarray, dict]:
    """Synthesise one planned clip and pass it through the simulated channel.
    Returns (16 kHz float32 samples, the channel steps applied)."""
    x, sr = synthesize(plan, espeak_path)
    if x.ndim > 1:
        x = x.mean(axis=1)
    x = channel.resample(x, sr, channel.RATE)
    x = channel.tract_length(x, plan.tract)
    return channel.degrade(x, np.random.default_rng(plan.seed), clean=plan.clean,
                           **channel_options)


def render_all(plans: list[ClipPlan], workers: int | None = None,
               **channel_options: float) -> list[tuple[np.ndarray, dict]]:
    """Render every plan with a thread pool (the work is in subprocesses and numpy/scipy)."""
    for tool in {p.engine for p in plans}:
        _check_tool(tool)
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        espeak_path = make_espeak_data(Path(tmp)) if "espeak-ng" in {p.engine for p in plans} \
            else None
        return list(pool.map(lambda p: render(p, espeak_path, **channel_options), plans))


def plan_meta(plan: ClipPlan, channel_info: dict) -> dict:
    meta = asdict(plan)
    meta.update(channel=channel_info, synthetic=True, sample_rate=channel.RATE)
    return meta


def real_clips(root: Path = ASTERISK_ROOT) -> list[tuple[str, int, dict]]:
    """The 60 real human recordings: (path, digit, meta). Raises if a file is missing."""
    clips = []
    for voice, language in REAL_VOICES.items():
        for digit in range(10):
            path = root / voice / "digits" / f"{digit}.wav"
            if not path.is_file():
                raise InputError(
                    f"{path}: missing real recording; digits-world needs the Debian packages "
                    f"asterisk-core-sounds-{{en,es,fr,it,ru}}-wav and "
                    f"asterisk-prompt-it-menardi-wav")
            speaker = voice.split("_")[-1]  # Allison speaks both en_US and es_MX
            clips.append((str(path), digit, {"speaker": speaker, "voice": voice,
                                             "language": language, "sample_rate": 8000,
                                             "source": "asterisk", "synthetic": False}))
    return clips
