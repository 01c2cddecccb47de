"""xdtutor — cross-domain transfer for sequential recommendation with pretrained language models.

The pipeline, in the order the book tells it:

1. collect        :mod:`xdtutor.data` (registry, download, loaders)
2. preprocess     :mod:`xdtutor.data` (k-core, splits, item text, statistics)
3. pretrain       :mod:`xdtutor.pretrain_source` (text-based recommender on the source)
4. extract        :mod:`xdtutor.extract_knowledge` (θ_s, item/user representations)
5. transfer       :mod:`xdtutor.transfer` (zero-shot, fine-tune, L2-SP, frozen+adaptor, LoRA, fusion, mapping)
6. fine-tune      :mod:`xdtutor.finetune_target`
7. validate       :mod:`xdtutor.train` (early stopping on validation NDCG@10)
8. evaluate       :mod:`xdtutor.evaluate` / :mod:`xdtutor.metrics` (full ranking, Recall/NDCG/MRR/HR@K)

:func:`xdtutor.pipeline.run_experiment` runs all of them from one config; under ``torchrun`` every
process runs it, sharing training and evaluation (:mod:`xdtutor.distributed`).
:mod:`xdtutor.sampled_metrics` reads full-ranking results under a sampled-negatives protocol.
"""

__version__ = "0.1.0"
