"""Built-in formatters (a plugin like any other). Imports nothing heavy: factories load lazily.

``system`` is a key every ``[template]`` table has (core schema); the schemas below only hold each
formatter's own options.
"""

from sftkit import hookimpl

_MODULE = "sftkit.templates.formatter"
_BUILTIN_NAMES = ["chatml", "llama3", "llama2", "mistral", "alpaca", "plain"]

_DOCS = {
    "chatml": "ChatML (<|im_start|>role\\n...<|im_end|>); trains answer + <|im_end|> + newline. Adds the tokens if missing.",
    "llama3": "Llama 3 (<|start_header_id|>role<|end_header_id|>); trains answer + <|eot_id|>. Adds the tokens if missing.",
    "llama2": "Llama 2 chat ([INST] <<SYS>>...<</SYS>> ... [/INST]); trains ' answer </s>'.",
    "mistral": "Mistral instruct ([INST] ... [/INST]); trains 'answer</s>'; system prompt opens the first user turn.",
    "alpaca": "Alpaca (### Instruction: / ### Response:); trains 'answer</s>'.",
    "plain": "Plain prompt/completion: prompt, separator, answer + EOS (answer + EOS trained).",
}


@hookimpl
def sftkit_register_formatters(register):
    register(
        "chat", f"{_MODULE}:chat_formatter",
        schema={
            "type": "object",
            "properties": {
                "fallback": {"enum": _BUILTIN_NAMES, "default": "chatml",
                             "description": "Template installed when the model has none (its tokens are added "
                                            "and the embeddings resized)."},
                "masking": {"enum": ["auto", "prefix"], "default": "auto",
                            "description": "How trained tokens are found. auto: the template's {% generation %} "
                                           "markers, else a known marked variant (sftkit's built-ins, TRL's "
                                           "training templates, as TRL's SFTTrainer does), else prefix renders "
                                           "of the model's own template. prefix: always prefix renders."},
            },
            "additionalProperties": False,
        },
        doc="The model's own chat template (saved with the model); a built-in one (chatml) when it has none.",
    )
    for name in _BUILTIN_NAMES:
        schema = {"type": "object", "properties": {}, "additionalProperties": False}
        if name == "plain":
            schema = {
                "type": "object",
                "properties": {
                    "separator": {"type": "string", "default": "\n",
                                  "description": "Text between the prompt and the answer."},
                },
                "additionalProperties": False,
            }
        register(name, f"{_MODULE}:{name}_formatter", schema=schema, doc=_DOCS[name])
