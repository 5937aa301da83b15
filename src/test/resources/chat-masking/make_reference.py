#!/usr/bin/env python3
"""Reference renders for MultiTurnMaskTest: a two-turn conversation rendered by Python jinja2 configured like
transformers' apply_chat_template, and the text that must carry the loss: each assistant turn from the end of its
header (where generation starts) through the template's end-of-turn marker after its content (headers and markers
written by hand below, from each model's card), plus, after the last turn, whatever the template writes at the
very end (phi-3's eos_token).

Run from the repository root:  python3 src/test/resources/chat-masking/make_reference.py
"""
import json
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import Extension, loopcontrols
from jinja2 import nodes

TEMPLATES = Path("src/test/resources/chat-templates")
OUT = Path("src/test/resources/chat-masking")

# the end-of-turn text each template writes after an assistant message's content
END_OF_TURN = {
    "qwen2.5": "<|im_end|>\n",
    "qwen3": "<|im_end|>\n",
    "phi-3-mini": "<|end|>\n",
    "smollm3": "<|im_end|>\n",
    "gpt-oss": "<|end|>",
}
# the text before an assistant turn's output: what add_generation_prompt writes
HEADER = {
    "qwen2.5": "<|im_start|>assistant\n",
    "qwen3": "<|im_start|>assistant\n",
    "phi-3-mini": "<|assistant|>\n",
    "smollm3": "<|im_start|>assistant\n",
    "gpt-oss": "<|start|>assistant",
}
BOS, EOS = "", "<|im_end|>"   # the tiny Qwen2 tokenizer the test loads: no BOS, <|im_end|> as EOS

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome."},
]


class Generation(Extension):
    """transformers' {% generation %} block, rendered unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def render(source, messages):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, Generation])
    env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
    env.globals["raise_exception"] = lambda m: (_ for _ in ()).throw(Exception(m))
    env.globals["strftime_now"] = lambda f: "26 Jul 2024"
    return env.from_string(source).render(messages=messages, add_generation_prompt=False, bos_token=BOS,
                                          eos_token=EOS)


def spans(text, name):
    out, at = [], 0
    assistants = [m for m in CONVERSATION if m["role"] == "assistant"]
    for k, m in enumerate(assistants):
        start = text.index(HEADER[name], at) + len(HEADER[name])
        content = text.index(m["content"], start)
        end = text.index(END_OF_TURN[name], content + len(m["content"])) + len(END_OF_TURN[name])
        if k == len(assistants) - 1:
            end = len(text)
        out.append(text[start:end])
        at = end
    return out


result = {"conversation": CONVERSATION, "templates": {}}
for name in END_OF_TURN:
    source = (TEMPLATES / f"{name}.chat_template.jinja").read_text()
    text = render(source, CONVERSATION)
    result["templates"][name] = {"text": text, "trained": spans(text, name)}
(OUT / "reference.json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
print("wrote", OUT / "reference.json")
