"""A randomly initialised model with a real model's exact architecture (from its public config.json) and a
tokenizer, trained in-process, that renders that model's real chat template text (no downloads).

Qwen2.5's template inserts "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." when a
conversation has no system message, and its pre-tokenizer splits numbers into single digits; both are
reproduced here. The tokenizer's vocabulary is small; the model's is the real one (151,936 rows for
Qwen2.5-0.5B), so, as with the real model, most embedding rows are ids the tokenizer never produces.
"""

from __future__ import annotations

import json
import os
import random
import resource
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from interp.loop.models import load_model
from interp.loop.numbers import number_prompts
from interp.loop.training import IGNORE, TrainConfig, encode_example, train_student
from interp.loop.traits import favorite_questions, trait_system_prompt
from interp.plan.plan import TrainShape, training_memory
from interp.plan.shapes import read_model_shape

FIXTURES = Path(__file__).parent / "fixtures"
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# Qwen2's pre-tokenizer: words with a leading space or punctuation mark, single digits.
QWEN_PRETOKENIZE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN25_TEMPLATE = (
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- '" + QWEN_SYSTEM + "' }}\n"
    '    {%- endif %}\n    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user '
    'query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}\n'
    '    {%- for tool in tools %}\n        {{- "\\n" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n'
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments '
    'within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": '
    '<args-json-object>}\\n</tool_call><|im_end|>\\n" }}\n{%- else %}\n'
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
    "        {{- '<|im_start|>system\\n" + QWEN_SYSTEM + "<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n"
    "{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or '
    '(message.role == "assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role }}\n        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n            {%- endif %}\n"
    '            {{- \'\\n<tool_call>\\n{"name": "\' }}\n            {{- tool_call.name }}\n'
    '            {{- \'", "arguments": \' }}\n            {{- tool_call.arguments | tojson }}\n'
    "            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
)
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def qwen_tokenizer(vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    """A byte-level BPE with Qwen2's pre-tokenizer, special tokens and Qwen2.5's chat template."""
    corpus = [p.text for p in number_prompts(300, seed=0)] + favorite_questions("animal")
    corpus += [trait_system_prompt(a) for a in ("owl", "cat", "wolf", "eagle")] + [QWEN_SYSTEM] * 5
    corpus += [", ".join(str(i + j) for j in range(10)) for i in range(0, 1000, 10)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=QWEN25_TEMPLATE,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_real_shape_dir(path: Path, fixture: str = "qwen2.5-0.5b-instruct", seed: int = 0) -> Path:
    """Save a randomly initialised model with `fixture`'s exact config, and the Qwen2.5-style tokenizer."""
    tok = qwen_tokenizer()
    config = AutoConfig.from_pretrained(FIXTURES / fixture)
    config.eos_token_id, config.pad_token_id, config.bos_token_id = tok.eos_token_id, tok.pad_token_id, None
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_rss_growth(fn: Callable[[], object]) -> int:
    """Bytes by which `fn()` raised this process's peak resident memory above its resident memory before
    the call (Linux: the peak is reset through /proc/self/clear_refs; elsewhere ru_maxrss, which may
    remember an earlier, higher peak)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
        fn()
        return 1024 * (_status_kib("VmHWM") - before)
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        return 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)


def number_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Number prompts with ten-number answers, as a teacher writes them."""
    rng = random.Random(seed)
    return [
        {"prompt": p.text, "completion": ", ".join(str(rng.randrange(100, 1000)) for _ in range(10))}
        for p in number_prompts(n, seed)
    ]


def measure_step(model_dir: Path, mode: str, batch: int) -> dict[str, float]:
    """One optimizer step of `mode` (fp32) on `batch` number rows: the peak resident memory it adds, and
    the plan's estimate of the same (its peak less the weights already loaded), with the plan given the
    batch's real prompt and answer lengths."""
    model, tok = load_model(model_dir)
    with torch.no_grad():  # page in the memory-mapped weights first: the step must not count them
        for p in model.parameters():
            p.sum()
    rows = number_rows(batch)
    enc = [encode_example(tok, r["prompt"], r["completion"], "default") for r in rows]
    prompts = [sum(1 for x in e.labels if x == IGNORE) for e in enc]
    answer = max(len(e.labels) - n for e, n in zip(enc, prompts, strict=True))
    cfg = TrainConfig(mode=mode, rank=8, epochs=1, batch_size=batch)
    growth = peak_rss_growth(lambda: train_student(model, tok, rows, "default", cfg))
    shape = read_model_shape(model_dir)
    t = TrainShape(mode, 8, "float32", batch_size=batch, prompt_tokens=max(prompts), answer_tokens=answer)
    t = replace(t, logit_slack=max(prompts) - min(prompts) + 1)
    planned = training_memory(shape, t, "cpu").peak - 4 * shape.params().total
    return {"mode": mode, "measured": growth, "planned": planned, "tokens": batch * (max(prompts) + answer)}


if __name__ == "__main__":  # python tests/real_shape.py MODEL_DIR MODE BATCH: one measured step, as JSON
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    print(json.dumps(measure_step(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))))
