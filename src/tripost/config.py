"""The shape of params.yaml: every section, every key and its type, as typed classes.

`params.yaml` holds every value; these classes hold none (no defaults here): they say which keys
exist and what type each takes. `check(params, source)` walks a params mapping (or a profile's
overrides, `partial=True`) and raises `ConfigError` with one line naming the file and the dotted key
for an unknown key or a wrongly typed value, so a typo such as `model: {num_hidden_layer: 8}` fails
at once instead of being silently ignored. The top-level `per_task: {<task>: {<section>: {...}}}`
overrides are checked against the section's class.

To add a setting: add the field here (with its type) and its value in params.yaml.
"""

import dataclasses
import types
import typing
from dataclasses import dataclass


class ConfigError(ValueError):
    """A params file holds an unknown key or a value of the wrong type."""


Number = float  # an int is accepted where a float is expected


@dataclass
class Buckets:
    seen: list | None
    unseen: list | None


@dataclass
class Data:
    source: str
    seed: int
    train_size: int
    val_size: int
    test_seen_size: int
    test_unseen_size: int
    buckets: Buckets | None  # per task; null = the paper's buckets
    options: dict | None  # the task's own options (word_sorting: vocabulary_size; DU: option_letters)


@dataclass
class Lora:
    r: int
    alpha: int
    dropout: Number
    target_modules: list | str  # module names, or "all-linear" (every linear layer but the head)


@dataclass
class Model:
    name: str
    adapter: str
    lora: Lora
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    rope_theta: Number
    tie_word_embeddings: bool
    init_seed: int
    tokenizer: str
    # tiny-llama only: the scripted FBK's feedback on this many SFT questions (on the gold rationale and
    # on a planted mistake) joins the tokenizer's training texts, not the model's; 0 = off
    tokenizer_feedback_examples: int
    device: str  # auto | cpu | cuda: where every stage loads the model
    dtype: str  # auto (fp32 on CPU, bf16/fp16 on a GPU) | float32 | bfloat16 | float16


@dataclass
class Train:
    """Weighted SL (the `train` section, `sft` adds its own keys below)."""
    epochs: Number
    max_steps: int
    max_minutes: Number | None
    lr: Number
    batch_size: int
    grad_accum: int
    warmup_ratio: Number
    lr_scheduler: str
    weight_decay: Number
    adam_beta1: Number
    adam_beta2: Number
    max_grad_norm: Number
    section_weight: Number
    mask_prompt: bool
    loss_normalization: str  # example (each record's mean over its trained tokens) | token (every token alike)
    max_length: int
    group_by_length: bool
    save_steps: int
    logging_steps: int
    seed: int
    torch_compile: bool
    num_threads: int | None
    keep_checkpoints: bool


@dataclass
class Sft(Train):
    extra_examples: int
    eval_max_new_tokens: int
    eval_batch_size: int


@dataclass
class Generation:
    batch_size: int
    max_new_tokens: int
    max_input_tokens: int
    temperature: Number
    top_p: Number


@dataclass
class Interaction:
    temperature: Number
    top_p: Number
    do_sample: bool
    self_improve_do_sample: bool
    self_improve_temperature: Number
    max_new_tokens: int
    max_generation_calls: int
    batch_size: int
    chunk_size: int
    max_rounds: int
    max_attempt_words: int
    max_passes: int
    pass_seed: int
    max_data_length: int
    min_data_length: int
    pool_limit: int | None


@dataclass
class Price:
    prompt: Number | None
    completion: Number | None


@dataclass
class Llm:
    base_url: str
    model: str
    api: str
    api_key_env: str
    fbk_temperature: Number
    imp_temperature: Number
    max_tokens: int
    timeout: Number
    max_retries: int
    backoff_initial: Number
    backoff_max: Number
    max_in_flight: int
    requests_per_minute: Number | None
    price_per_million: Price  # USD per million prompt / completion tokens (null: cost not reported)
    n_shots: int
    shot_seed: int
    cache_dir: str


@dataclass
class FeedbackBackend:
    backend: str
    llm: Llm


@dataclass
class Processing:
    improvement_ratio: Number
    max_tokens: int | None
    layout: str  # paper | split


@dataclass
class Iteration:
    name: str
    t: int
    prev: str
    rebalance: bool


@dataclass
class InteractionSource:
    model: str
    t: int


@dataclass
class Pipeline:
    iterations: list[Iteration]
    interactions: list[InteractionSource]
    evaluate: list[str]


@dataclass
class Evaluation:
    max_generation_calls: int
    max_new_tokens: int
    batch_size: int
    seed: int


@dataclass
class SiDemo:
    section_weight: Number
    seed: int
    passes: int
    train: Train  # overrides of `train:` for this baseline


@dataclass
class Lmsi:
    k: int
    temperature: Number
    top_p: Number
    direct_answer: bool
    pool_limit: int | None
    seed: int
    max_new_tokens: int | None
    batch_size: int | None
    train: Train


@dataclass
class Baselines:
    si_demo: SiDemo
    lmsi: Lmsi


@dataclass
class Params:
    profile: str
    seed: int
    tasks: list[str]
    data: Data
    model: Model
    sft: Sft
    train: Train
    generation: Generation
    interaction: Interaction
    feedback_backend: FeedbackBackend
    processing: Processing
    pipeline: Pipeline
    evaluation: Evaluation
    baselines: Baselines
    per_task: dict  # {<task>: {<section>: {...overrides}}}, checked by _check_per_task


# Sections whose values a task may override (`per_task: {<task>: {<section>: {...}}}`).
PER_TASK = {"data": Data, "model": Model, "sft": Sft, "train": Train, "generation": Generation,
            "interaction": Interaction, "feedback_backend": FeedbackBackend, "processing": Processing,
            "evaluation": Evaluation, "baselines": Baselines}


def _type_name(tp) -> str:
    if tp is Number:
        return "a number"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        null = " or null" if type(None) in typing.get_args(tp) else ""
        return " or ".join(_type_name(a) for a in args) + null
    origin = typing.get_origin(tp) or tp
    if dataclasses.is_dataclass(origin):
        return "a mapping"
    return {int: "an integer", bool: "true or false", str: "a string", list: "a list", dict: "a mapping"}.get(
        origin, getattr(origin, "__name__", str(origin)))


def _fail(source: str, key: str, msg: str) -> typing.NoReturn:
    raise ConfigError(f"{source}: {key} {msg}")


def _check_value(value, tp, key: str, source: str) -> None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _check_value(value, inner[0], key, source)
        for alt in inner:  # a union of alternatives (e.g. list | str): the first that accepts the value
            try:
                return _check_value(value, alt, key, source)
            except ConfigError:
                continue
        _fail(source, key, f"must be {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            _fail(source, key, f"must be a mapping, got {value!r}")
        return _check_fields(value, tp, key, source)
    if origin is list or tp is list:
        if not isinstance(value, list):
            _fail(source, key, f"must be a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (None,)
        if item_tp is not None:
            for i, v in enumerate(value):
                _check_value(v, item_tp, f"{key}[{i}]", source)
        return
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        Number: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        dict: lambda v: isinstance(v, dict),
    }[tp]
    if not ok(value):
        _fail(source, key, f"must be {_type_name(tp)}, got {value!r}")


def _check_fields(mapping: dict, cls, prefix: str, source: str) -> None:
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for k, v in mapping.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k == "per_task" and cls is Params:
            _check_per_task(v, source)
            continue
        if k not in fields:
            if k == "per_task":
                _fail(source, key, "is not a known setting: per-task overrides live in the top-level "
                                   f"per_task.<task>.{prefix}")
            known = ", ".join(sorted(fields))
            _fail(source, key, f"is not a known setting (known here: {known})")
        _check_value(v, hints[k], key, source)
        if key == "tasks":
            for name in v:
                _check_task_name(name, key, source)


def _check_per_task(value, source: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        _fail(source, "per_task", f"must be a mapping of task -> section -> overrides, got {value!r}")
    for task, sections in value.items():
        _check_task_name(task, f"per_task.{task}", source)
        if sections is None:
            continue
        if not isinstance(sections, dict):
            _fail(source, f"per_task.{task}", f"must be a mapping of section -> overrides, got {sections!r}")
        for name, over in sections.items():
            key = f"per_task.{task}.{name}"
            if name not in PER_TASK:
                _fail(source, key, f"is not a section a task can override (these are: {', '.join(PER_TASK)})")
            if over is None:
                continue
            if not isinstance(over, dict):
                _fail(source, key, f"must be a mapping, got {over!r}")
            _check_fields(over, PER_TASK[name], key, source)


def _check_task_name(name, key: str, source: str) -> None:
    from tripost.tasks import registered_tasks

    if name not in registered_tasks():
        _fail(source, key, f"{name!r} is not a task: no src/tripost/tasks/{name}.py "
                           f"(registered: {', '.join(registered_tasks())})")


def check(params, source: str = "params.yaml") -> None:
    """Raise ConfigError (one line: file, dotted key, what is wrong) for an unknown key or a wrong type.
    Missing keys are not errors here: a profile holds only overrides."""
    if not isinstance(params, dict):
        raise ConfigError(f"{source}: must hold a mapping at top level")
    _check_fields(params, Params, "", source)
