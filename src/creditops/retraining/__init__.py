"""The retraining trigger: pure rules, the decision record, the retraining run."""
