"""Evaluation of Navig: metrics, benchmark loaders, the eval runner, ROUGE, ablations, the paper's tables."""
