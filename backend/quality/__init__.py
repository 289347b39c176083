"""Retrieval quality: pure metrics, leave-one-out evaluation, reports and fine-tuning."""
