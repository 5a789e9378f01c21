"""Evaluation: Recall@N, PR-AUC, the SAD baseline, plots and replay reports."""

from vprsnn_ros.eval.evaluation import evaluate, format_report, write_report

__all__ = ["evaluate", "format_report", "write_report"]
