"""Chat templates of the tiny models, in the format of each family's released checkpoints.

Real checkpoints ship their own template (``chat_template.jinja``), which fairvlm uses
as it is; these are only for models built by :func:`fairvlm.models.build_tiny_vlm`.
Every template renders one user turn (image, then text) and an optional assistant turn
closed by the family's end-of-turn token, so that the model learns to stop.
"""

from __future__ import annotations

# Jinja fragments: the text parts / image placeholders of a message's content.
_TEXT = "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"


def _images(placeholder: str) -> str:
    return (
        "{% for c in message['content'] %}{% if c['type'] == 'image' %}"
        f"{{{{ '{placeholder}' }}}}"
        "{% endif %}{% endfor %}"
    )


#: LLaVA-1.5: "USER: <image>\n{prompt} ASSISTANT: {answer}</s>".
LLAVA = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' }}" + _images("<image>\\n") + _TEXT + "{{ ' ' }}"
    "{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' }}" + _TEXT + "{{ eos_token }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

#: LLaVA-NeXT (Mistral-7B): "[INST] <image>\n{prompt} [/INST] {answer}</s>".
LLAVA_NEXT = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    + _images("<image>\\n")
    + _TEXT
    + "{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' }}" + _TEXT + "{{ eos_token }}"
    "{% endif %}{% endfor %}"
)

#: Qwen2-VL / Qwen2.5-VL: ChatML with a default system turn and vision markers.
QWEN2_VL = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    + _images("<|vision_start|><|image_pad|><|vision_end|>")
    + _TEXT
    + "{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _idefics_like(start: str) -> str:
    """Idefics3 / SmolVLM: "User:<image>{prompt}<end_of_utterance>\nAssistant: {answer}..."."""
    return (
        f"{{{{ '{start}' }}}}{{% for message in messages %}}"
        "{{ message['role'] | capitalize }}"
        "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
        "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}"
        "{% elif c['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
        "{{ '<end_of_utterance>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    )


IDEFICS3 = _idefics_like("<|begin_of_text|>")
SMOLVLM = _idefics_like("<|im_start|>")
