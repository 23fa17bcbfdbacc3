"""How models learn: loops, objectives and, later, distributed and parameter-efficient
training and alignment losses (Parts I–V).

- :mod:`~llmzero.training.loop`: the book's training loop, evaluation and checkpoints.
- :mod:`~llmzero.training.mlm`: BERT's masking and next-sentence-prediction pairs.
- :mod:`~llmzero.training.distributed`: processes that train together with
  ``torch.distributed`` (ring all-reduce, data parallelism, ZeRO, tensor parallelism).
- :mod:`~llmzero.training.parallelism`: distributed training on paper (ZeRO memory,
  all-reduce cost, pipeline schedules, launch scripts).
- :mod:`~llmzero.training.scaling`: FLOP and memory arithmetic, scaling-law fits.
- :mod:`~llmzero.training.pretrain`: the pretraining recipe's reusable pieces (optimizer
  groups, batches from token shards, bits per byte, FLOPs and MFU).
- :mod:`~llmzero.training.finetune`: fine-tuning a pretrained encoder for classification
  (mean-pooling head, freezing, the plain loop that ``transformers.Trainer`` matches).
- :mod:`~llmzero.training.sft`: supervised fine-tuning on chats (templates, the
  assistant-only loss mask, padding and packing, the SFT step, greedy exact-match scoring).
- :mod:`~llmzero.training.alignment`: preference and reward learning (sequence
  log-probabilities, the Bradley–Terry reward loss, DPO, group-baseline policy gradients).

Imports: any lower layer (:mod:`llmzero.models`, :mod:`llmzero.data`, :mod:`llmzero.text`,
:mod:`llmzero.core`); never :mod:`llmzero.evaluation` or :mod:`llmzero.book`.
"""
