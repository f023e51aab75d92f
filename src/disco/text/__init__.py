"""Text: the byte-level BPE tokenizer of a text task, trained and loaded offline, and generation.

The text data itself (files, windows, the validation split) is in `disco.data.text`.
"""

from disco.text.generate import LogitsFn, generate, model_logits
from disco.text.tokenizer import (
    EOT,
    Tokenizer,
    attach_tokenizer,
    check_task_tokenizer,
    load_task_folder,
    save_task_folder,
    train_tokenizer,
)

__all__ = [
    "EOT",
    "LogitsFn",
    "Tokenizer",
    "attach_tokenizer",
    "check_task_tokenizer",
    "generate",
    "load_task_folder",
    "model_logits",
    "save_task_folder",
    "train_tokenizer",
]
